"""One figure style and the figure helpers the notebooks share."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

LEVEL_COLORS = {
    "behavior": "#1b9e77",
    "dynamics": "#d95f02",
    "weights": "#7570b3",
    "weight_change": "#e7298a",
    "kernel_alignment": "#66a61e",
    "mean_ood_loss": "#1b9e77",
    "representation": "#a6761d",
}
LEVEL_TITLES = {
    "behavior": "Behavioral degeneracy (s.d. of OOD loss)",
    "dynamics": "Dynamical degeneracy (mean DSA distance)",
    "weights": "Weight degeneracy (mean permutation distance)",
    "weight_change": "Weight change (mean of ||W_T - W_0||_F)",
    "kernel_alignment": "Kernel alignment (mean, NTK end vs start)",
    "mean_ood_loss": "Mean OOD loss (over networks)",
    "representation": "Representational degeneracy (mean SVCCA distance)",
}


def use_style() -> None:
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "font.size": 10,
            "legend.frameon": False,
        }
    )


def level_vs_factor(ax, result, xlabel: str, title_prefix: str = ""):
    """A level's degeneracy against a factor, with its 95% interval."""
    color = LEVEL_COLORS[result.level]
    err = np.vstack([result.value - result.lo, result.hi - result.value])
    ax.errorbar(
        result.x,
        result.value,
        yerr=np.nan_to_num(err),
        marker="o",
        color=color,
        capsize=3,
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(LEVEL_TITLES[result.level].split(" (")[0])
    trend = result.trend
    name = result.level.replace("_", " ")
    ax.set_title(
        f"{title_prefix}{name}: {trend['direction']} (paper: {result.expected})",
        fontsize=10,
    )
    ax.set_xticks(result.x)
    return ax


def level_grid(rows: list, xlabels: list[str], row_titles: list[str]):
    """One row of panels per entry of ``rows`` (each a list of results of
    :func:`degen.analysis.measure` along one factor), one column per level."""
    n_cols = max(len(results) for results in rows)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(3.4 * n_cols, 2.9 * len(rows)), squeeze=False
    )
    for ax_row, results, xlabel, title in zip(
        axes, rows, xlabels, row_titles, strict=True
    ):
        for ax, result in zip(ax_row, results, strict=False):
            level_vs_factor(ax, result, xlabel, title_prefix=f"{title}\n")
            ax.set_ylabel(ax.get_ylabel(), fontsize=8)
        for ax in ax_row[len(results) :]:
            ax.set_visible(False)
    fig.tight_layout()
    return fig


def mds_row(axes, points, titles, color=None):
    """One 2-D embedding per panel (``points``: a list of ``[net, 2]``), on
    shared axis limits so that tighter clusters look tighter."""
    finite = [xy[np.isfinite(xy).all(axis=1)] for xy in points]
    spread = max((np.abs(xy).max() for xy in finite if xy.size), default=1.0)
    lim = 1.1 * spread if spread > 0 else 1.0
    for ax, xy, title in zip(axes, finite, titles, strict=True):
        ax.scatter(xy[:, 0], xy[:, 1], s=18, color=color or LEVEL_COLORS["dynamics"])
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)


def trials(ax_in, ax_out, inputs_txc, targets_txc, outputs_txc=None, mask_txc=None):
    """Inputs above, targets (and outputs) below, one offset line per channel;
    inputs and outputs may have different numbers of channels. With
    ``mask_txc`` the target is drawn only where it is scored."""
    steps = np.arange(inputs_txc.shape[0])
    n_in, n_out = inputs_txc.shape[1], targets_txc.shape[1]
    targets = np.asarray(targets_txc, dtype=float)
    if mask_txc is not None:
        targets = np.where(np.asarray(mask_txc) > 0, targets, np.nan)
    # Channels three units apart, or further when the values span more.
    gap_in = max(3.0, 1.1 * float(np.ptp(inputs_txc)))
    gap_out = max(3.0, 1.1 * float(np.nanmax(targets) - np.nanmin(targets)))
    for c in range(n_in):
        ax_in.plot(steps, inputs_txc[:, c] + gap_in * c, lw=1)
    for c in range(n_out):
        ax_out.plot(
            steps,
            targets[:, c] + gap_out * c,
            lw=2,
            color="0.6",
            label="target" if c == 0 else None,
        )
        if outputs_txc is not None:
            ax_out.plot(
                steps,
                outputs_txc[:, c] + gap_out * c,
                lw=1,
                color="C3",
                label="output" if c == 0 else None,
            )
    # Room for a +-1 swing around every channel, even one drawn only in part.
    shown = [targets] if outputs_txc is None else [targets, outputs_txc]
    lo = min(-1.2, min(float(np.nanmin(v)) for v in shown)) - 0.3
    hi = max(1.2, max(float(np.nanmax(v)) for v in shown)) + 0.3
    ax_out.set_ylim(lo, gap_out * (n_out - 1) + hi)
    ax_in.set_ylabel("input channel")
    ax_out.set_ylabel("output channel")
    ax_out.set_xlabel("time step")
    for ax, n, gap in ((ax_in, n_in, gap_in), (ax_out, n_out, gap_out)):
        ax.set_yticks(gap * np.arange(n), [str(c + 1) for c in range(n)])
    if outputs_txc is not None:
        ax_out.legend(loc="upper right")


def loss_curves(entries, trained, per_row: int = 4):
    """Every network's epoch-mean training loss, one panel per condition,
    with the task's threshold dashed. ``entries`` are the conditions'
    :class:`degen.analysis.TaskCondition`."""
    n = len(entries)
    cols = min(n, per_row)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3 * cols, 2.6 * rows), sharey=True, squeeze=False
    )
    for ax, entry, tr in zip(axes.flat[:n], entries, trained, strict=True):
        loss = tr.arrays["epoch_loss"]
        ax.semilogy(np.arange(1, loss.shape[1] + 1), loss.T, lw=1, alpha=0.8)
        ax.axhline(entry.condition.task_config.threshold, color="k", ls="--", lw=1)
        ax.set_title(entry.label, fontsize=9)
        ax.set_xlabel("epoch")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("training MSE")
    fig.tight_layout()
    return fig


def paths(ax, targets_txd, outputs_txd=None, dims=(0, 1), label=True):
    """A path in the plane of two coordinates: the true one and, if given,
    the network's reading of it; the start is marked."""
    i, j = dims
    ax.plot(
        targets_txd[:, i],
        targets_txd[:, j],
        color="0.6",
        lw=2,
        label="true" if label else None,
    )
    ax.plot(targets_txd[0, i], targets_txd[0, j], "o", color="0.3", ms=4)
    if outputs_txd is not None:
        ax.plot(
            outputs_txd[:, i],
            outputs_txd[:, j],
            color="C3",
            lw=1,
            label="network" if label else None,
        )
    ax.set_xlabel("xyz"[i])
    ax.set_ylabel("xyz"[j])
    ax.set_aspect("equal", adjustable="datalim")


def save(fig, path: str | Path) -> Path:
    """Save a figure where a text page can include it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
