"""Sine wave generation: a static input per channel selects a frequency.

Each of the N channels draws one of ``n_freqs`` frequencies per trial; its
input holds a level coding that frequency for the whole trial, and its output
must follow ``sin(2 pi f t)``. The network needs one limit cycle per frequency.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from degen.config import check_choice, check_range, check_types
from degen.tasks.base import Batch

FREQ_SETS = ("shared", "interleaved")


@dataclass(frozen=True)
class SineConfig:
    """The sine wave task; ``n_channels`` is its complexity knob.

    Frequencies are in Hz and ``dt`` in seconds, so step ``t`` is at time
    ``t * dt`` and channel output is ``sin(2 pi f t dt)``.
    """

    n_channels: int = 2
    n_freqs: int = 4  # frequencies each channel chooses from
    freq_min: float = 1.0  # Hz
    freq_max: float = 30.0  # Hz
    # "shared": every channel uses linspace(freq_min, freq_max, n_freqs).
    # "interleaved": linspace(freq_min, freq_max, N * n_freqs) is dealt out
    # round-robin, channel c taking every N-th value from the c-th, so the
    # channels' sets are disjoint and each still spans the range evenly.
    freq_sets: str = "shared"
    # 5 ms: the fastest (30 Hz) cycle gets 6.7 samples, well above Nyquist.
    dt: float = 0.005
    # 1 s: the slowest (1 Hz) frequency completes a full cycle, so every
    # target is an oscillation rather than a ramp.
    n_steps: int = 200
    # The first steps are not scored: the network starts at rest (h = 0) and
    # needs a few steps to reach its limit cycle; 10 steps = 50 ms.
    transient_steps: int = 10
    input_noise: float = 0.0  # s.d. of Gaussian noise added to the inputs
    threshold: float = 0.05  # training MSE that counts as converged

    def __post_init__(self):
        check_types(self)
        name = type(self).__name__
        check_range(name, "n_channels", self.n_channels, 1, 64)
        check_range(name, "n_freqs", self.n_freqs, 1, 1000)
        check_range(name, "freq_min", self.freq_min, 0.0, low_open=True)
        check_range(name, "freq_max", self.freq_max, self.freq_min, low_open=True)
        check_choice(name, "freq_sets", self.freq_sets, FREQ_SETS)
        # Below the Nyquist step of the fastest frequency.
        nyquist_dt = 1.0 / (2.0 * self.freq_max)
        check_range(name, "dt", self.dt, 0.0, nyquist_dt, low_open=True, high_open=True)
        check_range(name, "n_steps", self.n_steps, 2, 100_000)
        check_range(name, "transient_steps", self.transient_steps, 0, self.n_steps - 1)
        check_range(name, "input_noise", self.input_noise, 0.0)
        check_range(name, "threshold", self.threshold, 0.0, low_open=True)


class Sine:
    """Sampler for :class:`SineConfig` trials."""

    name = "sine"
    complexity = "n_channels"

    def __init__(self, config: SineConfig):
        self.config = config

    @property
    def n_inputs(self) -> int:
        return self.config.n_channels

    @property
    def n_outputs(self) -> int:
        return self.config.n_channels

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def ood(self) -> Sine:
        """The out-of-distribution variant: trials twice as long."""
        return Sine(dataclasses.replace(self.config, n_steps=2 * self.config.n_steps))

    def frequencies(self) -> torch.Tensor:
        """Each channel's frequency set in Hz, ``[n_channels, n_freqs]``."""
        c = self.config
        if c.freq_sets == "shared":
            grid = torch.linspace(
                c.freq_min, c.freq_max, c.n_freqs, dtype=torch.float64
            )
            return grid.expand(c.n_channels, c.n_freqs)
        n_all = c.n_channels * c.n_freqs
        grid = torch.linspace(c.freq_min, c.freq_max, n_all, dtype=torch.float64)
        return grid.view(c.n_freqs, c.n_channels).T  # row c = grid[c::N]

    def sample(self, n_batch: int, generator: torch.Generator) -> Batch:
        """Draw ``n_batch`` trials; the same generator state gives the same trials."""
        c = self.config
        shape = (n_batch, c.n_steps, c.n_channels)

        # Each channel's frequency.
        table_nxf = self.frequencies()
        pick_bxn = torch.randint(
            c.n_freqs, (n_batch, c.n_channels), generator=generator
        )
        freq_bxn = table_nxf[torch.arange(c.n_channels), pick_bxn]  # Hz

        # Input: f / freq_max held for the whole trial. One scalar level per
        # channel (not a one-hot) keeps n_inputs = N whatever n_freqs is, and
        # orders the frequencies; dividing by freq_max (not mapping freq_min
        # to 0) keeps every level non-zero, so no frequency reads as "no input".
        level_bxn = freq_bxn / c.freq_max
        inputs = level_bxn[:, None, :].expand(shape).float()  # [batch, time, N]

        # Target: sin(2 pi f t dt), phase 0 at step 0 (float64 for the phase).
        time_s = torch.arange(c.n_steps, dtype=torch.float64) * c.dt
        phase = 2 * math.pi * freq_bxn[:, None, :] * time_s[None, :, None]
        targets = torch.sin(phase).float()  # [batch, time, N]

        mask = torch.ones(shape)
        mask[:, : c.transient_steps] = 0.0
        noise = torch.randn(shape, generator=generator) * c.input_noise
        return Batch(inputs + noise, targets, mask)
