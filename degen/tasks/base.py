"""What every task shares: the batch it samples and a small interface."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Batch:
    """One batch of trials, every tensor laid out ``[batch, time, channels]``.

    ``mask`` is 1 where the output is scored and 0 where it is not; the loss is
    the masked mean squared error.
    """

    inputs: torch.Tensor  # [batch, time, n_inputs]
    targets: torch.Tensor  # [batch, time, n_outputs]
    mask: torch.Tensor  # [batch, time, n_outputs]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.inputs.to(device), self.targets.to(device), self.mask.to(device)
        )


def masked_mse(
    outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean squared error over the scored entries of each trial set.

    The last three axes (batch, time, out) are reduced; any leading axes are
    kept, so ``[net, batch, time, out]`` outputs give one loss per network.
    ``targets`` and ``mask`` broadcast against ``outputs``.
    """
    mask = mask.expand_as(outputs)
    err = (outputs - targets) ** 2 * mask
    return err.flatten(-3).sum(-1) / mask.flatten(-3).sum(-1).clamp_min(1)
