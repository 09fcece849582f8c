"""Delayed discrimination: compare two pulses separated by a delay.

On each of the N channels a pulse of size f1 is followed, after a delay, by a
pulse of size f2; right after f2 the channel's output must give
sign(f2 - f1) for a short response window. Each channel draws its own f1, f2
and delay. The network must hold f1 through the delay (fixed points along f1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from degen.config import check_range, check_types
from degen.tasks.base import Batch


@dataclass(frozen=True)
class DelayedConfig:
    """The delayed discrimination task; ``n_channels`` is its complexity knob.

    A channel's timeline (steps): f1 pulse at ``[0, w)``, delay ``d``, f2 pulse
    at ``[w + d, 2w + d)``, response window of ``response_steps`` right after;
    ``w = pulse_steps`` and ``d`` is drawn per trial and channel from
    ``[delay_min, delay_max]``. Every trial lasts
    ``2 w + delay_max + response_steps`` steps.
    """

    n_channels: int = 2
    f_min: float = 2.0  # pulse values f1, f2 are drawn from U[f_min, f_max]
    f_max: float = 10.0
    delay_min: int = 5  # steps between the end of f1 and the start of f2
    delay_max: int = 20
    # One step, as the flip-flop's pulses: all the memory is in the delay.
    pulse_steps: int = 1
    # Five steps: the decision must be held, not just flashed, while most of
    # the trial is still memory.
    response_steps: int = 5
    # A second output per channel giving |f2 - f1| / (f_max - f_min), in
    # [0, 1] like the sign output, during the response window.
    aux_output: bool = False
    input_noise: float = 0.0  # s.d. of Gaussian noise added to the inputs
    threshold: float = 0.01  # training MSE that counts as converged

    def __post_init__(self):
        check_types(self)
        name = type(self).__name__
        check_range(name, "n_channels", self.n_channels, 1, 64)
        check_range(name, "f_min", self.f_min, 0.0, low_open=True)
        check_range(name, "f_max", self.f_max, self.f_min, low_open=True)
        # A delay of 0 would merge the two pulses into one.
        check_range(name, "delay_min", self.delay_min, 1, 100_000)
        check_range(name, "delay_max", self.delay_max, self.delay_min, 100_000)
        check_range(name, "pulse_steps", self.pulse_steps, 1, 1000)
        check_range(name, "response_steps", self.response_steps, 1, 100_000)
        check_range(name, "input_noise", self.input_noise, 0.0)
        check_range(name, "threshold", self.threshold, 0.0, low_open=True)

    @property
    def n_steps(self) -> int:
        """Trial length: room for the longest delay."""
        return 2 * self.pulse_steps + self.delay_max + self.response_steps


class Delayed:
    """Sampler for :class:`DelayedConfig` trials.

    Outputs: channel i's decision is output i; with ``aux_output`` the
    |f2 - f1| outputs follow as outputs N..2N-1, so output i means the same
    with or without them.
    """

    name = "delayed"
    complexity = "n_channels"

    def __init__(self, config: DelayedConfig):
        self.config = config

    @property
    def n_inputs(self) -> int:
        return self.config.n_channels

    @property
    def n_outputs(self) -> int:
        return self.config.n_channels * (2 if self.config.aux_output else 1)

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def ood(self) -> Delayed:
        """The out-of-distribution variant: delays twice as long."""
        c = self.config
        return Delayed(
            dataclasses.replace(c, delay_min=2 * c.delay_min, delay_max=2 * c.delay_max)
        )

    def sample(self, n_batch: int, generator: torch.Generator) -> Batch:
        """Draw ``n_batch`` trials; the same generator state gives the same trials."""
        c = self.config
        w = c.pulse_steps
        shape = (n_batch, c.n_steps, c.n_channels)

        # Trial variables, one per trial and channel: [batch, 1, N].
        span = c.f_max - c.f_min
        f1 = c.f_min + span * torch.rand(n_batch, 1, c.n_channels, generator=generator)
        f2 = c.f_min + span * torch.rand(n_batch, 1, c.n_channels, generator=generator)
        delay = torch.randint(
            c.delay_min,
            c.delay_max + 1,
            (n_batch, 1, c.n_channels),
            generator=generator,
        )

        # Periods as boolean masks over [batch, time, N].
        t = torch.arange(c.n_steps).view(1, -1, 1)
        f1_on = t < w
        f2_start = w + delay
        f2_on = (t >= f2_start) & (t < f2_start + w)
        respond = (t >= f2_start + w) & (t < f2_start + w + c.response_steps)

        # Inputs: pulse heights divided by f_max, so the largest is 1 like the
        # flip-flop's pulses and the same initial weights suit both tasks.
        inputs = (f1_on * f1 + f2_on * f2) / c.f_max  # [batch, time, N]

        # Target: sign(f2 - f1) in the response window, unscored elsewhere, so
        # the loss is the decision alone and the delay activity is left free.
        targets = torch.where(respond, torch.sign(f2 - f1), 0.0)
        mask = respond.float()
        if c.aux_output:
            size = torch.where(respond, (f2 - f1).abs() / span, 0.0)
            targets = torch.cat([targets, size], dim=2)
            mask = torch.cat([mask, mask], dim=2)

        noise = torch.randn(shape, generator=generator) * c.input_noise
        return Batch(inputs + noise, targets, mask)
