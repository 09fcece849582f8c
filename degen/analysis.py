"""The three degeneracy levels, and the feature-learning diagnostics, along
one factor, with bootstrap intervals.

Shared by the level notebooks and the summary, so that the numbers a level
page shows and the summary table's arrows come from one computation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from degen import experiment, stats
from degen.profile import Profile
from degen.store import Store
from degen.tasks import TASKS

LEVELS = ("behavior", "dynamics", "weights")
# Feature-learning diagnostics, measured along a factor like a level: the
# mean over networks of each one's weight change or kernel alignment.
DIAGNOSTICS = ("weight_change", "kernel_alignment")
# Two more measures along a factor: the mean OOD loss (the paper reports it
# rising with feature learning) and SVCCA, the representational control
# beside DSA (1 - mean canonical correlation, averaged over pairs).
EXTRA_LEVELS = ("mean_ood_loss", "representation")
MEASURES = LEVELS + DIAGNOSTICS + EXTRA_LEVELS


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
    if level not in MEASURES:
        raise ValueError(f"level = {level!r}; valid levels: {list(MEASURES)}")
    store = store or experiment.default_store()
    conds = experiment.conditions(profile, task, factor)
    eval_config = profile.eval_for(task)
    x = np.asarray(profile.values(task, factor), dtype=np.float64)
    values, reps, raw, usable = [], [], [], []
    for i, cond in enumerate(conds):
        trained = experiment.get_trained(cond, store)
        usable.append(trained.n_usable)
        if level == "behavior":
            r = experiment.behavior(trained, eval_config, store)
            losses = r["ood_loss"][r["usable"]]
            values.append(losses.std() if losses.size >= 2 else np.nan)
            reps.append(stats.bootstrap_sd(losses, n_boot, seed=i))
        elif level == "mean_ood_loss":
            r = experiment.behavior(trained, eval_config, store)
            losses = r["ood_loss"][r["usable"]]
            values.append(losses.mean() if losses.size >= 2 else np.nan)
            reps.append(stats.bootstrap_mean(losses, n_boot, seed=i))
        elif level in DIAGNOSTICS:
            r = experiment.learning(trained, profile.probe, store)
            per_net = r[level][r["usable"]]
            values.append(per_net.mean() if per_net.size >= 2 else np.nan)
            reps.append(stats.bootstrap_mean(per_net, n_boot, seed=i))
        else:
            if level == "dynamics":
                cfg = experiment.dsa_config_for(profile, task)
                r = experiment.dynamics(trained, eval_config, cfg, store)
            elif level == "representation":
                cfg = profile.representation
                r = experiment.representation(trained, eval_config, cfg, store)
            else:
                cfg = experiment.weights_config_for(profile, task, factor)
                r = experiment.weights(trained, cfg, store)
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
        n_networks=len(profile.seeds_for(task, factor)),
        replicates=reps,
        per_condition=raw,
        trend=trend,
        expected=expected_direction(profile.factor(task, factor).row, level),
    )


def expected_direction(row: str, level: str) -> str:
    """The paper's direction for ``level`` along a factor of ``row``."""
    if level in LEVELS:
        return stats.EXPECTED[row][level]
    return stats.EXPECTED_DIAGNOSTICS.get(row, {}).get(level, stats.NOT_STATED)


def knob_label(profile: Profile, task: str, factor: str) -> str:
    """Axis label for a factor of a task."""
    spec = profile.factor(task, factor)
    if spec.label:
        return spec.label
    return KNOB_LABELS.get((task, spec.name), FIELD_LABELS.get(spec.field, spec.name))


KNOB_LABELS = {
    ("flipflop", "n_bits"): "N (bits)",
    ("sine", "n_channels"): "N (channels)",
    ("delayed", "n_channels"): "N (channels)",
    ("delayed", "delay_max"): "longest delay (steps)",
    ("delayed", "aux_output"): "auxiliary output",
    ("path", "n_dims"): "dimensions",
}

# Model and training fields any task can sweep.
FIELD_LABELS = {
    "model.gamma": "γ (feature learning)",
    "model.n_hidden": "width (units)",
    "train.nuclear_lambda": "λ (nuclear norm of W_h)",
    "train.l1_lambda": "λ (L1 of W_h)",
}

TASK_TITLES = {
    "flipflop": "Flip-flop",
    "sine": "Sine wave",
    "delayed": "Delayed discrimination",
    "path": "Path integration",
}


def complexity_factors(profile: Profile) -> list[tuple[str, str]]:
    """Every ``(task, factor)`` of ``profile`` that tests the complexity row
    of the paper's table, in the profile's order."""
    return [
        (task, name)
        for task in profile.tasks
        for name, spec in profile.factors(task).items()
        if spec.row == "complexity"
    ]


# -- the task pages ----------------------------------------------------------


@dataclass
class TaskCondition:
    """One distinct trained condition of a task, as a task page lists it."""

    factor: str
    value: object
    label: str  # e.g. "N (channels) = 2"
    condition: experiment.Condition


def value_text(value) -> str:
    """A factor value as the book prints it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def task_conditions(profile: Profile, task: str) -> list[TaskCondition]:
    """Every distinct condition of ``task`` over all its factors, complexity
    first; a condition two factors share (their common base) is listed once."""
    seen, out = set(), []
    for factor in profile.factors(task):
        label = knob_label(profile, task, factor)
        for value in profile.values(task, factor):
            cond = experiment.condition(profile, task, value, factor)
            key = repr(cond.to_dict())
            if key in seen:
                continue
            seen.add(key)
            out.append(
                TaskCondition(factor, value, f"{label} = {value_text(value)}", cond)
            )
    return out


def example_network(trained: experiment.Trained) -> int:
    """The first usable network of an ensemble (the first network if none is)."""
    usable = np.flatnonzero(trained.usable)
    return int(usable[0]) if usable.size else 0


def training_table(entries: list[TaskCondition], trained: list) -> str:
    """A Markdown table of how each condition trained, and a closing line with
    the convergence rate over all of them."""
    rows = [
        "| condition | converged | diverged | epochs (median) | wall time (s) |",
        "|---|---|---|---|---|",
    ]
    n_conv = n_all = 0
    for entry, tr in zip(entries, trained, strict=True):
        a = tr.arrays
        n = len(entry.condition.seeds)
        n_conv, n_all = n_conv + tr.n_usable, n_all + n
        rows.append(
            f"| {entry.label} | {tr.n_usable} of {n} | {int(a['diverged'].sum())} "
            f"| {int(np.median(a['epochs_trained']))} "
            f"| {tr.meta.get('wall_time_s', float('nan')):.0f} |"
        )
    rate = 100 * n_conv / max(n_all, 1)
    rows += [
        "",
        f"**Convergence:** {n_conv} of {n_all} networks ({rate:.0f}%) reached the "
        "threshold without diverging; only they are measured.",
    ]
    used = sorted({e.condition.task_config.threshold for e in entries})
    paper = {TASKS[e.condition.task][0]().threshold for e in entries}
    line = "Threshold: training MSE " + " or ".join(f"{t:g}" for t in used)
    if set(used) != paper:
        line += (
            " (the paper's: " + " or ".join(f"{t:g}" for t in sorted(paper)) + "; "
            "see the choices page)"
        )
    return "\n".join(rows + ["", line + "."])


def peak_frequency(signal_xt, dt: float, pad: int = 8) -> np.ndarray:
    """Frequency (Hz) of the largest peak of each signal's spectrum, the
    constant (0 Hz) part removed: ``signal_xt`` is ``[..., time]`` sampled
    every ``dt`` seconds; zero-padding to ``pad`` times the length refines
    the frequency grid."""
    x = np.asarray(signal_xt, dtype=np.float64)
    if x.shape[-1] < 2:
        raise ValueError(f"signals have {x.shape[-1]} samples; need at least 2")
    x = (x - x.mean(axis=-1, keepdims=True)) * np.hanning(x.shape[-1])
    n_fft = pad * x.shape[-1]
    spectrum = np.abs(np.fft.rfft(x, n=n_fft, axis=-1))
    return np.fft.rfftfreq(n_fft, dt)[spectrum.argmax(axis=-1)]


def decision_accuracy(outputs_kxbxtxo, targets_bxtxo, mask_bxtxo, n_channels: int):
    """Fraction of decisions each network gets right, ``[net]``: a channel's
    decision is the sign of its output averaged over the scored (response)
    steps, right when it equals the sign of the target there. Only the first
    ``n_channels`` outputs are decisions (an auxiliary output follows them)."""
    out = np.asarray(outputs_kxbxtxo, dtype=np.float64)[..., :n_channels]
    target = np.asarray(targets_bxtxo, dtype=np.float64)[..., :n_channels]
    mask = np.asarray(mask_bxtxo, dtype=np.float64)[..., :n_channels]
    steps = mask.sum(axis=-2)  # [batch, channel]
    if (steps == 0).any():
        raise ValueError("a trial's channel has no scored step to decide on")
    decided = (out * mask).sum(axis=-2) / steps  # [net, batch, channel]
    wanted = (target * mask).sum(axis=-2) / steps
    return (np.sign(decided) == np.sign(wanted)).mean(axis=(-2, -1))


def position_error(outputs_kxbxtxd, targets_bxtxd) -> np.ndarray:
    """Distance between output and true position at each step, averaged over
    trials: ``[net, time]``, in arena units."""
    out = np.asarray(outputs_kxbxtxd, dtype=np.float64)
    target = np.asarray(targets_bxtxd, dtype=np.float64)
    return np.linalg.norm(out - target, axis=-1).mean(axis=-2)


def nearest_frequency(freq_xn, table_nxf) -> np.ndarray:
    """The member of each channel's frequency set nearest to ``freq_xn``
    (``[..., channel]``); ``table_nxf`` holds the sets, ``[channel, n_freqs]``."""
    freq = np.asarray(freq_xn, dtype=np.float64)
    table = np.asarray(table_nxf, dtype=np.float64)
    if freq.shape[-1:] != table.shape[:1]:
        raise ValueError(
            f"frequencies have shape {freq.shape} and the sets {table.shape}; "
            "the last axis of the first must be the channels of the second"
        )
    index = np.abs(freq[..., None] - table).argmin(axis=-1)
    return table[np.arange(table.shape[0]), index]


# -- tables of directions ----------------------------------------------------

ARROWS = {"up": "↑", "down": "↓", "unclear": "–", stats.NOT_STATED: ""}


def measured_trend(r: LevelResult) -> bool:
    """Whether a trend was measured at all: two conditions or more with two
    usable networks each."""
    return bool(np.isfinite(r.trend["slope"]))


def direction_table(profile: Profile, results: list[LevelResult]) -> str:
    """A Markdown table: one row per result, its measured direction with the
    slope's 95% interval beside the paper's, and whether they agree."""
    rows = [
        "| task | varied | level | measured | slope (95% interval) | paper | agrees |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        t = r.trend
        if not measured_trend(r):
            measured, slope, agrees = "not measured", "–", "–"
        else:
            measured = f"{ARROWS[t['direction']]} {t['direction']}"
            slope = f"{t['slope']:.3g} [{t['lo']:.3g}, {t['hi']:.3g}]"
            agrees = "yes" if r.agrees else "no"
            if r.expected == stats.NOT_STATED:
                agrees = "–"
        rows.append(
            f"| {TASK_TITLES.get(r.task, r.task)} "
            f"| {knob_label(profile, r.task, r.factor)} "
            f"| {r.level.replace('_', ' ')} | {measured} | {slope} "
            f"| {ARROWS[r.expected]} {r.expected} | {agrees} |"
        )
    return "\n".join(rows)


def agreement_text(profile: Profile, results: list[LevelResult]) -> str:
    """One paragraph: how many measured results agree with the paper, and
    every one that does not, or could not be measured, by name."""

    def name(r):
        return (
            f"{TASK_TITLES.get(r.task, r.task).lower()} {r.level.replace('_', ' ')} "
            f"along {knob_label(profile, r.task, r.factor)}"
        )

    judged = [r for r in results if r.expected != stats.NOT_STATED]
    missing = [r for r in judged if not measured_trend(r)]
    judged = [r for r in judged if measured_trend(r)]
    agree = [r for r in judged if r.agrees]
    unclear = [r for r in judged if r.trend["direction"] == "unclear"]
    opposite = [r for r in judged if not r.agrees and r not in unclear]
    text = f"{len(agree)} of {len(judged)} agree with the paper."
    if opposite:
        text += " **Opposite to the paper:** " + "; ".join(
            f"{name(r)} ({r.trend['direction']}, paper {r.expected})" for r in opposite
        )
        text += "."
    if unclear:
        text += " **No clear direction** (the interval of the slope contains "
        text += "zero): " + "; ".join(name(r) for r in unclear) + "."
    if missing:
        text += " **Not measured** (fewer than two conditions with two converged "
        text += "networks): " + "; ".join(name(r) for r in missing) + "."
    return text


# -- the paper's table: one cell per factor row and level ---------------------

ROW_TITLES = {
    "complexity": "task complexity",
    "feature_learning": "feature learning (γ, muP)",
    "width": "width (muP)",
    "regularization": "regularization (λ)",
}
# The paper's reading of dynamics against weights for each row: covariant
# when they move together, contravariant when they move apart.
READINGS = {"same": "covariant", "opposite": "contravariant"}


@dataclass
class Cell:
    """One cell of the paper's table: a level along every factor of one row,
    over every task that sweeps such a factor, pooled."""

    row: str
    level: str
    results: list  # the LevelResults pooled
    slopes: np.ndarray  # pooled relative slope replicates [n_boot]
    trend: dict  # median, lo, hi, direction of the pooled slope
    expected: str

    @property
    def measured(self) -> bool:
        return bool(np.isfinite(self.trend["slope"]))

    @property
    def agrees(self) -> bool:
        return self.measured and self.trend["direction"] == self.expected

    @property
    def mark(self) -> str:
        """✓ agrees, ✗ opposite, – no clear direction, blank not measured."""
        if not self.measured:
            return ""
        if self.agrees:
            return "✓"
        return "–" if self.trend["direction"] == "unclear" else "✗"


def relative_slopes(r: LevelResult) -> np.ndarray | None:
    """``r``'s scale-free slope replicates (see :func:`stats.relative_slopes`)
    over the values with a measure, or None when fewer than two have one."""
    finite = np.isfinite(r.value)
    if np.unique(r.x[finite]).size < 2:
        return None
    return stats.relative_slopes(r.x[finite], r.replicates[finite])


def pooled_cell(row: str, level: str, results: list[LevelResult]) -> Cell:
    """Pool ``results`` (one level along the factors of one row) into a cell.

    Each result's slope is made scale-free (log of the measure against the
    position of the value in its sweep, see :func:`stats.relative_slopes`) so
    that tasks and factors on different scales can be averaged; the cell's
    slope is their mean, replicate by replicate, so its 95% interval still
    resamples networks. Results without a measured trend are left out.
    """
    slopes = [s for s in map(relative_slopes, results) if s is not None]
    if len({s.size for s in slopes}) > 1:
        raise ValueError(
            f"the results pooled into the {row} x {level} cell have "
            f"{sorted({s.size for s in slopes})} bootstrap replicates; measure "
            "them all with one n_boot"
        )
    if slopes:
        stacked = np.stack(slopes)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN replicate
            pooled = np.nanmean(stacked, axis=0)
        trend = stats.direction(pooled)
    else:
        pooled = np.full(1, np.nan)
        nan = float("nan")
        trend = {"slope": nan, "lo": nan, "hi": nan, "direction": "unclear"}
    return Cell(row, level, results, pooled, trend, stats.EXPECTED[row][level])


def paper_table(profile: Profile, results: dict) -> dict[tuple[str, str], Cell]:
    """The cells of the paper's table measured in ``profile``: ``results``
    maps (task, factor, level) to a :class:`LevelResult`; a row none of whose
    factors is swept gives cells that are not measured."""
    cells = {}
    for row in ROW_TITLES:
        for level in LEVELS:
            pooled = [
                r
                for (task, factor, lvl), r in results.items()
                if lvl == level and profile.factor(task, factor).row == row
            ]
            cells[row, level] = pooled_cell(row, level, pooled)
    return cells


def paper_table_markdown(cells: dict[tuple[str, str], Cell]) -> str:
    """The 4 x 3 table: each cell the measured direction, the pooled slope
    with its 95% interval, the mark for agreement and the paper's direction."""
    rows = [
        "| factor increased | " + " | ".join(LEVELS) + " |",
        "|---" * (len(LEVELS) + 1) + "|",
    ]
    for row, title in ROW_TITLES.items():
        texts = []
        for level in LEVELS:
            c = cells[row, level]
            paper = f"paper {c.expected}"
            if not c.measured:
                texts.append(f"not measured ({paper})")
                continue
            t = c.trend
            texts.append(
                f"{c.mark} {t['direction']} {t['slope']:+.2f} "
                f"[{t['lo']:+.2f}, {t['hi']:+.2f}] ({paper})"
            )
        rows.append(f"| {title} | " + " | ".join(texts) + " |")
    return "\n".join(rows)


def agreement_count(cells: dict[tuple[str, str], Cell]) -> tuple[int, int]:
    """(cells that agree with the paper, cells measured)."""
    measured = [c for c in cells.values() if c.measured]
    return sum(c.agrees for c in measured), len(measured)


def covariation(cells: dict[tuple[str, str], Cell]) -> list[dict]:
    """For each row: whether dynamics and weights move together (covariant)
    or apart (contravariant) as the factor rises, measured and in the paper,
    and the share of bootstrap replicates whose pooled slopes share a sign."""
    out = []
    for row in ROW_TITLES:
        dyn, wts = cells[row, "dynamics"], cells[row, "weights"]
        paper = "same" if dyn.expected == wts.expected else "opposite"
        entry = {"row": row, "paper": READINGS[paper], "measured": "not measured"}
        entry["same_sign_share"] = float("nan")
        if dyn.measured and wts.measured:
            n = min(dyn.slopes.size, wts.slopes.size)
            a, b = dyn.slopes[:n], wts.slopes[:n]
            ok = np.isfinite(a) & np.isfinite(b)
            if ok.any():
                same_sign = np.sign(a[ok]) == np.sign(b[ok])
                entry["same_sign_share"] = float(same_sign.mean())
            directions = {dyn.trend["direction"], wts.trend["direction"]}
            if "unclear" in directions:
                entry["measured"] = "undetermined"
            else:
                same = dyn.trend["direction"] == wts.trend["direction"]
                entry["measured"] = READINGS["same" if same else "opposite"]
        out.append(entry)
    return out
