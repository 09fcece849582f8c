"""Behavioral degeneracy: how much networks differ in out-of-distribution loss."""

from __future__ import annotations

import numpy as np


def mse_per_network(outputs_kxbxtxo, targets_bxtxo, mask_bxtxo) -> np.ndarray:
    """Loss, 0 means perfect: masked mean squared error of each network, ``[net]``.

    ``outputs`` is ``[net, batch, time, out]``; targets and mask are the shared
    trials ``[batch, time, out]`` (or already carry the network axis).
    """
    outputs = np.asarray(outputs_kxbxtxo, dtype=np.float64)
    targets = np.asarray(targets_bxtxo, dtype=np.float64)
    mask = np.broadcast_to(np.asarray(mask_bxtxo, dtype=np.float64), outputs.shape)
    if outputs.ndim != 4:
        raise ValueError(
            f"outputs have shape {outputs.shape}; expected [net, batch, time, out]"
        )
    err = (outputs - targets) ** 2 * mask
    return err.reshape(len(outputs), -1).sum(1) / np.maximum(
        mask.reshape(len(outputs), -1).sum(1), 1
    )


def degeneracy(losses) -> dict[str, float]:
    """Spread, 0 means every network behaves alike: the population standard
    deviation (ddof = 0) of the OOD losses, with their mean and count.

    Non-finite losses are an error: leave diverged networks out first.
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1:
        raise ValueError(f"losses have shape {losses.shape}; expected [net]")
    if not np.isfinite(losses).all():
        bad = np.flatnonzero(~np.isfinite(losses)).tolist()
        raise ValueError(
            f"losses of networks {bad} are not finite; exclude diverged networks"
        )
    if losses.size == 0:
        return {"sd": float("nan"), "mean": float("nan"), "n": 0}
    return {
        "sd": float(losses.std()),
        "mean": float(losses.mean()),
        "n": int(losses.size),
    }
