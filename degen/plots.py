"""One figure style and the figure helpers the notebooks share."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

LEVEL_COLORS = {"behavior": "#1b9e77", "dynamics": "#d95f02", "weights": "#7570b3"}
LEVEL_TITLES = {
    "behavior": "Behavioral degeneracy (s.d. of OOD loss)",
    "dynamics": "Dynamical degeneracy (mean DSA distance)",
    "weights": "Weight degeneracy (mean permutation distance)",
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


def level_vs_factor(ax, result, xlabel: str):
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
    ax.set_title(
        f"{result.level}: {trend['direction']} (paper: {result.expected})", fontsize=10
    )
    ax.set_xticks(result.x)
    return ax


def trials(ax_in, ax_out, inputs_txc, targets_txc, outputs_txc=None):
    """Inputs above, targets (and outputs) below, one offset line per channel."""
    n = inputs_txc.shape[1]
    steps = np.arange(inputs_txc.shape[0])
    for c in range(n):
        ax_in.plot(steps, inputs_txc[:, c] + 3 * c, lw=1)
        ax_out.plot(
            steps,
            targets_txc[:, c] + 3 * c,
            lw=2,
            color="0.6",
            label="target" if c == 0 else None,
        )
        if outputs_txc is not None:
            ax_out.plot(
                steps,
                outputs_txc[:, c] + 3 * c,
                lw=1,
                color="C3",
                label="output" if c == 0 else None,
            )
    ax_in.set_ylabel("input channel")
    ax_out.set_ylabel("output channel")
    ax_out.set_xlabel("time step")
    for ax in (ax_in, ax_out):
        ax.set_yticks(3 * np.arange(n), [str(c + 1) for c in range(n)])
    if outputs_txc is not None:
        ax_out.legend(loc="upper right")


def save(fig, path: str | Path) -> Path:
    """Save a figure where a text page can include it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
