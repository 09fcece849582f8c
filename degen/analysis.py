"""The three degeneracy levels along one factor, with bootstrap intervals.

Shared by the level notebooks and the summary, so that the numbers a level
page shows and the summary table's arrows come from one computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from degen import experiment, stats
from degen.profile import Profile
from degen.store import Store

LEVELS = ("behavior", "dynamics", "weights")


@dataclass
class LevelResult:
    """One level of one task along one factor."""

    task: str
    factor: str
    level: str
    x: np.ndarray  # factor values [m]
    value: np.ndarray  # the degeneracy at each value [m]
    lo: np.ndarray  # 95% bootstrap interval [m]
    hi: np.ndarray
    n_usable: np.ndarray  # converged networks per value [m]
    n_networks: int
    replicates: np.ndarray  # [m, n_boot]
    per_condition: list  # the raw measure of each condition
    trend: dict  # slope, lo, hi, direction
    expected: str  # the paper's direction

    @property
    def agrees(self) -> bool:
        return self.trend["direction"] == self.expected


def measure(
    profile: Profile,
    task: str,
    factor: str,
    level: str,
    store: Store | None = None,
    n_boot: int = 2000,
) -> LevelResult:
    """Compute (or load) ``level`` for every condition of ``task`` along
    ``factor`` and summarise it with bootstrap intervals over networks."""
    if level not in LEVELS:
        raise ValueError(f"level = {level!r}; valid levels: {list(LEVELS)}")
    store = store or experiment.default_store()
    conds = experiment.conditions(profile, task, factor)
    x = np.asarray(profile.values(task, factor), dtype=np.float64)
    values, reps, raw, usable = [], [], [], []
    for i, cond in enumerate(conds):
        trained = experiment.get_trained(cond, store)
        usable.append(trained.n_usable)
        if level == "behavior":
            r = experiment.behavior(trained, profile.eval, store)
            losses = r["ood_loss"][r["usable"]]
            values.append(losses.std() if losses.size >= 2 else np.nan)
            reps.append(stats.bootstrap_sd(losses, n_boot, seed=i))
        else:
            if level == "dynamics":
                cfg = experiment.dsa_config_for(profile, task)
                r = experiment.dynamics(trained, profile.eval, cfg, store)
            else:
                r = experiment.weights(trained, profile.weights, store)
            values.append(stats.pair_mean(r["distances"]))
            reps.append(stats.bootstrap_pair_mean(r["distances"], n_boot, seed=i))
        raw.append(r)
    reps = np.asarray(reps)
    bounds = np.array([stats.interval(rep) for rep in reps])
    finite = np.isfinite(values)
    if finite.sum() >= 2:
        trend = stats.trend(x[finite], reps[finite])
    else:
        nan = float("nan")
        trend = {"slope": nan, "lo": nan, "hi": nan, "direction": "unclear"}
    return LevelResult(
        task=task,
        factor=factor,
        level=level,
        x=x,
        value=np.asarray(values, dtype=np.float64),
        lo=bounds[:, 0],
        hi=bounds[:, 1],
        n_usable=np.asarray(usable),
        n_networks=len(profile.seeds),
        replicates=reps,
        per_condition=raw,
        trend=trend,
        expected=stats.EXPECTED[profile.factor(task, factor).row][level],
    )


def knob_label(profile: Profile, task: str, factor: str) -> str:
    """Axis label for a factor of a task."""
    spec = profile.factor(task, factor)
    if spec.label:
        return spec.label
    return KNOB_LABELS.get((task, spec.name), spec.name)


KNOB_LABELS = {
    ("flipflop", "n_bits"): "N (bits)",
    ("sine", "n_channels"): "N (channels)",
    ("delayed", "n_channels"): "N (channels)",
    ("delayed", "delay_max"): "longest delay (steps)",
    ("delayed", "aux_output"): "auxiliary output",
    ("path", "n_dims"): "dimensions",
}
