# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Behavioral degeneracy
#
# Networks that reach the same training loss can still generalise
# differently. Each converged network is run on the task's
# out-of-distribution variant (for the flip-flop, trials twice as long) and
# its MSE recorded; behavioral degeneracy is the population standard
# deviation of those losses across networks. The mean OOD loss is shown too.
# Intervals are 95% bootstrap intervals over networks.

# %% tags=["parameters", "remove-cell"]
profile = "default"
task = "flipflop"
factor = "complexity"

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown

from degen import analysis, plots
from degen.profile import load_profile

plots.use_style()
prof = load_profile(profile)
result = analysis.measure(prof, task, factor, "behavior")
xlabel = analysis.knob_label(prof, task, factor)
Markdown(f"{analysis.TASK_TITLES[task]}, along {xlabel}.")

# %% [markdown]
# ## OOD loss of every network

# %% tags=["hide-input"]
fig, (ax_pts, ax_sd) = plt.subplots(1, 2, figsize=(9, 3.2))
for x, r in zip(result.x, result.per_condition):
    losses = r["ood_loss"][r["usable"]]
    ax_pts.scatter(
        np.full(losses.size, x),
        losses,
        s=14,
        alpha=0.7,
        color=plots.LEVEL_COLORS["behavior"],
    )
if any((r["ood_loss"][r["usable"]] > 0).any() for r in result.per_condition):
    ax_pts.set_yscale("log")
ax_pts.set_xlabel(xlabel)
ax_pts.set_ylabel("OOD MSE")
ax_pts.set_xticks(result.x)
plots.level_vs_factor(ax_sd, result, xlabel)
plots.save(fig, f"book/generated/figures/behavior_{task}_{factor}.png")
plt.show()

# %% tags=["hide-input"]
rows = [
    f"| {xlabel} | networks used | mean OOD loss | s.d. (degeneracy) | 95% interval |",
    "|---|---|---|---|---|",
]
for x, r, v, lo, hi, n in zip(
    result.x, result.per_condition, result.value, result.lo, result.hi, result.n_usable
):
    mean = r["meta"]["mean"]
    rows.append(
        f"| {x:g} | {n} of {result.n_networks} | {mean:.3g} | {v:.3g} "
        f"| [{lo:.3g}, {hi:.3g}] |"
    )
t = result.trend
rows.append("")
rows.append(
    f"Trend along {xlabel}: **{t['direction']}** (slope {t['slope']:.3g}, "
    f"95% interval [{t['lo']:.3g}, {t['hi']:.3g}]); "
    f"the paper finds **{result.expected}**."
)
Markdown("\n".join(rows))
