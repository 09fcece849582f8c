"""Uncertainty across networks: bootstrap intervals and trend directions.

Networks, not pairs, are the independent units: every interval here resamples
networks with replacement and recomputes the statistic on the resample.
"""

from __future__ import annotations

import numpy as np

from degen.config import check_range

# The paper's findings (PAPER.md), "up" = more degenerate as the factor rises.
EXPECTED = {
    "complexity": {"behavior": "down", "dynamics": "down", "weights": "up"},
    "feature_learning": {"behavior": "up", "dynamics": "down", "weights": "up"},
    "width": {"behavior": "down", "dynamics": "down", "weights": "down"},
    "regularization": {"behavior": "down", "dynamics": "down", "weights": "down"},
}
# The paper's feature-learning diagnostics: more complex tasks move the
# weights further and leave the kernel less aligned with its start.
# Under feature learning the mean OOD loss rises too.
EXPECTED_DIAGNOSTICS = {
    "complexity": {"weight_change": "up", "kernel_alignment": "down"},
    "feature_learning": {"mean_ood_loss": "up"},
}
NOT_STATED = "not stated"  # the paper gives no direction for this cell


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    check_range("bootstrap", "n_boot", n_boot, 1)
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_sd(values, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the population s.d. of ``values``: ``[n_boot]``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return np.full(n_boot, np.nan)
    idx = _resamples(values.size, n_boot, seed)
    return values[idx].std(axis=1)


def bootstrap_mean(values, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the mean of ``values``: ``[n_boot]``."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return np.full(n_boot, np.nan)
    idx = _resamples(values.size, n_boot, seed)
    return values[idx].mean(axis=1)


def bootstrap_pair_mean(distances, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the mean pairwise distance: ``[n_boot]``.

    Each replicate draws networks with replacement and averages the distances
    between draws of *different* networks (a network drawn twice is not
    compared with itself, which would add spurious zeros).
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distances have shape {d.shape}; expected a square matrix")
    n = d.shape[0]
    if n < 2:
        return np.full(n_boot, np.nan)
    idx = _resamples(n, n_boot, seed)
    sub = d[idx[:, :, None], idx[:, None, :]]  # [boot, n, n]
    distinct = idx[:, :, None] != idx[:, None, :]
    counts = distinct.sum(axis=(1, 2))
    sums = np.where(distinct, sub, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def pair_mean(distances) -> float:
    """Mean of the off-diagonal entries of a square distance matrix."""
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distances have shape {d.shape}; expected a square matrix")
    n = d.shape[0]
    if n < 2:
        return float("nan")
    return float(d[~np.eye(n, dtype=bool)].mean())


def interval(samples, level: float = 0.95) -> tuple[float, float]:
    """Central percentile interval of bootstrap ``samples`` (NaNs ignored)."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return (float("nan"), float("nan"))
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(samples, [tail, 100 - tail])
    return float(lo), float(hi)


def trend(x, replicates, level: float = 0.95) -> dict:
    """Direction of a measure along a factor, with an interval.

    ``x``: the factor values ``[m]``; ``replicates``: bootstrap replicates of
    the measure at each value, ``[m, n_boot]`` (drawn independently per value).
    The slope of a least-squares line through the replicates gives the
    interval; the direction is "up" or "down" when the interval excludes 0,
    else "unclear".
    """
    return direction(slope_replicates(x, replicates), level)


def slope_replicates(x, replicates) -> np.ndarray:
    """The least-squares slope of each bootstrap replicate against ``x``:
    ``x`` is ``[m]``, ``replicates`` ``[m, n_boot]``; returns ``[n_boot]``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(replicates, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] != x.size:
        raise ValueError(
            f"replicates have shape {y.shape}; expected [{x.size}, n_boot]"
        )
    if x.size < 2:
        raise ValueError(f"a trend needs at least two factor values, got {x.size}")
    xc = x - x.mean()
    return (xc[:, None] * (y - y.mean(axis=0))).sum(axis=0) / (xc**2).sum()


def direction(slopes, level: float = 0.95) -> dict:
    """The median of bootstrap ``slopes``, their central interval, and the
    direction: "up" or "down" when the interval excludes 0, else "unclear"."""
    slopes = np.asarray(slopes, dtype=np.float64)
    lo, hi = interval(slopes, level)
    if lo > 0:
        sign = "up"
    elif hi < 0:
        sign = "down"
    else:
        sign = "unclear"
    median = float(np.nanmedian(slopes)) if np.isfinite(slopes).any() else float("nan")
    return {"slope": median, "lo": lo, "hi": hi, "direction": sign}


def relative_slopes(x, replicates) -> np.ndarray:
    """Scale-free slopes, to pool factors and tasks measured on different
    scales: the slope of log(measure) against the position of each factor
    value in the sweep (lowest 0, highest 1, ties sharing a position), per
    bootstrap replicate, ``[n_boot]``. A value of 0.5 means the measure
    grows by a factor e^0.5 from the lowest to the highest value swept.
    Replicates that are not positive give NaN."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2 or np.unique(x).size < 2:
        raise ValueError(f"a trend needs at least two distinct values, got {x}")
    order = np.unique(x, return_inverse=True)[1].astype(np.float64)
    position = order / order.max()
    y = np.asarray(replicates, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(y > 0, np.log(np.where(y > 0, y, 1.0)), np.nan)
    return slope_replicates(position, logs)
