"""Path integration: track position from heading and speed.

An agent starts at a random point of the arena ``[-L, L]^d`` (L =
``half_width``) and moves with a slowly turning heading and a random speed
each step. The network is told the start position at step 0 and the heading
and speed at every step; its outputs must give the position. It needs a
continuous map of the arena.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from degen.config import check_choice, check_range, check_types
from degen.tasks.base import Batch


@dataclass(frozen=True)
class PathConfig:
    """The path integration task; ``n_dims`` (2 or 3) is its complexity knob.

    Lengths are in arena units, angles in radians, time in steps.
    """

    n_dims: int = 2
    # 50 steps: at a mean speed of 0.2 the path is about one arena width long,
    # so most trials meet a wall, at the flip-flop's CPU cost.
    n_steps: int = 50
    max_speed: float = 0.4  # speed drawn each step from U[0, max_speed]
    # Heading is a random walk with this s.d. per step (about 17 degrees), so
    # paths are smooth and keep a direction for ~20 steps.
    turn_sd: float = 0.3
    half_width: float = 5.0  # the arena is [-half_width, half_width]^n_dims
    input_noise: float = 0.0  # s.d. of Gaussian noise added to the inputs
    threshold: float = 0.05  # training MSE that counts as converged

    def __post_init__(self):
        check_types(self)
        name = type(self).__name__
        check_choice(name, "n_dims", self.n_dims, (2, 3))
        check_range(name, "n_steps", self.n_steps, 2, 100_000)
        check_range(name, "max_speed", self.max_speed, 0.0, low_open=True)
        check_range(name, "turn_sd", self.turn_sd, 0.0)
        check_range(name, "half_width", self.half_width, 0.0, low_open=True)
        check_range(name, "input_noise", self.input_noise, 0.0)
        check_range(name, "threshold", self.threshold, 0.0, low_open=True)


def reflect(position: torch.Tensor, half_width: float) -> torch.Tensor:
    """Fold unbounded coordinates into ``[-L, L]`` as a path bouncing off walls."""
    period = 4 * half_width
    q = torch.remainder(position + half_width, period)  # in [0, 4L)
    return torch.where(q > 2 * half_width, period - q, q) - half_width


class Path:
    """Sampler for :class:`PathConfig` trials.

    Inputs per step: the heading (2D: cos, sin of the angle; 3D: cos, sin of
    the azimuth then of the elevation), the speed divided by ``max_speed``,
    then the start position divided by ``half_width`` (non-zero at step 0
    only). Outputs: the position after the step, in arena units.
    """

    name = "path"
    complexity = "n_dims"

    def __init__(self, config: PathConfig):
        self.config = config

    @property
    def n_heading(self) -> int:
        """Heading input channels: cos and sin of each angle."""
        return 2 if self.config.n_dims == 2 else 4

    @property
    def n_inputs(self) -> int:
        return self.n_heading + 1 + self.config.n_dims

    @property
    def n_outputs(self) -> int:
        return self.config.n_dims

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def ood(self) -> Path:
        """The out-of-distribution variant: trials twice as long."""
        return Path(dataclasses.replace(self.config, n_steps=2 * self.config.n_steps))

    def sample(self, n_batch: int, generator: torch.Generator) -> Batch:
        """Draw ``n_batch`` trials; the same generator state gives the same trials."""
        c = self.config
        L, d, n_t = c.half_width, c.n_dims, c.n_steps

        # Trial variables: start, heading walk, speeds (float64 so that the
        # target is the running sum of the given velocity to float32 rounding).
        f64 = dict(generator=generator, dtype=torch.float64)
        start_bxd = L * (2 * torch.rand(n_batch, d, **f64) - 1)
        azimuth = 2 * math.pi * torch.rand(n_batch, 1, **f64)
        azimuth = azimuth + c.turn_sd * torch.randn(n_batch, n_t, **f64).cumsum(1)
        speed = c.max_speed * torch.rand(n_batch, n_t, 1, **f64)
        if d == 2:
            unit = torch.stack([azimuth.cos(), azimuth.sin()], -1)
        else:
            # Elevation walks too, folded at the poles to stay in [-pi/2, pi/2].
            elevation = math.pi / 2 * (2 * torch.rand(n_batch, 1, **f64) - 1)
            walk = c.turn_sd * torch.randn(n_batch, n_t, **f64).cumsum(1)
            elevation = reflect(elevation + walk, math.pi / 2)
            unit = torch.stack(
                [
                    elevation.cos() * azimuth.cos(),
                    elevation.cos() * azimuth.sin(),
                    elevation.sin(),
                ],
                -1,
            )
        free_bxtxd = start_bxd[:, None] + (speed * unit).cumsum(1)  # no walls

        # Walls reflect the path. The velocity the network is given is the
        # displacement actually made, so the target stays exactly the start
        # plus the running sum of the given velocity. Reflection rather than
        # clipping: a clipped agent sticks to the wall while its heading
        # still points into it, a reflected one keeps moving.
        position = reflect(free_bxtxd, L)  # [batch, time, d]
        before = torch.cat([start_bxd[:, None], position[:, :-1]], 1)
        step = position - before
        moved = step.norm(dim=-1, keepdim=True)
        # A step that bounced back to where it began has no direction; it
        # keeps the drawn heading, which its zero speed makes irrelevant.
        heading = torch.where(moved > 1e-9, step / moved.clamp_min(1e-9), unit)

        # Inputs by channel group: heading, speed, start.
        if d == 2:
            angles = heading  # (cos, sin) of the heading angle
        else:
            horizontal = heading[..., :2].norm(dim=-1, keepdim=True)
            azimuth_cs = torch.where(
                horizontal > 1e-9,
                heading[..., :2] / horizontal.clamp_min(1e-9),
                torch.tensor([1.0, 0.0], dtype=torch.float64),
            )
            angles = torch.cat([azimuth_cs, horizontal, heading[..., 2:]], -1)
        start_in = torch.zeros(n_batch, n_t, d, dtype=torch.float64)
        start_in[:, 0] = start_bxd / L
        inputs = torch.cat([angles, moved / c.max_speed, start_in], -1).float()

        targets = position.float()  # [batch, time, d]
        mask = torch.ones_like(targets)
        noise = torch.randn(inputs.shape, generator=generator) * c.input_noise
        return Batch(inputs + noise, targets, mask)
