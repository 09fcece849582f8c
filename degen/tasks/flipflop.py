"""N-bit flip-flop: remember the sign of each channel's last pulse.

Each of the N input channels is 0 most of the time and, with probability
``p_switch`` per step, carries a pulse of +1 or -1. Output channel i holds the
sign of the last pulse on input i. The network needs 2^N stable states.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from degen.config import check_range, check_types
from degen.tasks.base import Batch


@dataclass(frozen=True)
class FlipFlopConfig:
    """The N-bit flip-flop task; ``n_bits`` is its complexity knob."""

    n_bits: int = 3
    n_steps: int = 50  # trial length (steps)
    p_switch: float = 0.05  # pulse probability per channel and step
    # A pulse on every channel at step 0, so that every target is one of the
    # 2^N memory states (without it, outputs must also sit at 0 until a
    # channel first pulses, which trains far more slowly).
    first_pulse: bool = True
    input_noise: float = 0.0  # s.d. of Gaussian noise added to the inputs
    threshold: float = 1e-3  # training MSE that counts as converged

    def __post_init__(self):
        check_types(self)
        name = type(self).__name__
        check_range(name, "n_bits", self.n_bits, 1, 64)
        check_range(name, "n_steps", self.n_steps, 2, 100_000)
        check_range(name, "p_switch", self.p_switch, 0.0, 1.0, low_open=True)
        check_range(name, "input_noise", self.input_noise, 0.0)
        check_range(name, "threshold", self.threshold, 0.0, low_open=True)


class FlipFlop:
    """Sampler for :class:`FlipFlopConfig` trials."""

    name = "flipflop"
    complexity = "n_bits"

    def __init__(self, config: FlipFlopConfig):
        self.config = config

    @property
    def n_inputs(self) -> int:
        return self.config.n_bits

    @property
    def n_outputs(self) -> int:
        return self.config.n_bits

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def ood(self) -> FlipFlop:
        """The out-of-distribution variant: trials twice as long."""
        return FlipFlop(
            dataclasses.replace(self.config, n_steps=2 * self.config.n_steps)
        )

    def sample(self, n_batch: int, generator: torch.Generator) -> Batch:
        """Draw ``n_batch`` trials; the same generator state gives the same trials."""
        c = self.config
        shape = (n_batch, c.n_steps, c.n_bits)

        # Pulse times and signs.
        pulse = torch.rand(shape, generator=generator) < c.p_switch
        if c.first_pulse:
            pulse[:, 0, :] = True
        sign = torch.where(torch.rand(shape, generator=generator) < 0.5, -1.0, 1.0)
        inputs = torch.where(pulse, sign, 0.0)  # [batch, time, n_bits]

        # Target: the last pulse carried forward (0 before the first pulse).
        # The index of the last pulse at or before t is a running maximum.
        steps = torch.arange(c.n_steps).view(1, -1, 1).expand(shape)
        last = torch.where(pulse, steps, torch.full_like(steps, -1)).cummax(dim=1)
        held = torch.gather(inputs, 1, last.values.clamp_min(0))
        targets = torch.where(last.values >= 0, held, torch.zeros_like(held))

        noise = torch.randn(shape, generator=generator) * c.input_noise
        mask = torch.ones_like(targets)
        return Batch(inputs + noise, targets, mask)
