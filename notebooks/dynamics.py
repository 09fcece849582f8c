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
# # Dynamical degeneracy
#
# Dynamical Similarity Analysis (DSA; Ostrow et al., 2023) compares how the
# hidden state *evolves*, not where it sits. Per network: delay-embed the
# hidden trajectories, reduce them with an SVD and fit a linear next-step
# operator $A$ of fixed rank. Per pair: the Procrustes distance over vector
# fields, $\min_{C \in O(r)} \lVert A_x - C A_y C^\top \rVert_F$ on unit-norm
# operators, reflections included. Dynamical degeneracy is the mean over all
# pairs. Two checks come with it: the same-network null (two independent
# trial samples of one network must be far closer than two networks) and a
# sensitivity check over the embedding's delays and rank.

# %% tags=["parameters", "remove-cell"]
profile = "default"
task = "flipflop"
factor = "complexity"
# Recompute the trend under other embedding settings (4 DSA runs per
# condition); by default only along the complexity knob.
sensitivity = None

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown

from degen import analysis, experiment, plots, stats
from degen.profile import load_profile

plots.use_style()
prof = load_profile(profile)
dsa_config = experiment.dsa_config_for(prof, task)
result = analysis.measure(prof, task, factor, "dynamics")
xlabel = analysis.knob_label(prof, task, factor)
Markdown(
    f"{analysis.TASK_TITLES[task]}, along {xlabel}. "
    f"DSA settings: {dsa_config.n_delays} delays (interval "
    f"{dsa_config.delay_interval}), rank {dsa_config.rank}, "
    f"{dsa_config.score} score."
)

# %% [markdown]
# ## Degeneracy against the factor, and the same-network null

# %% tags=["hide-input"]
fig, (ax_l, ax_n) = plt.subplots(1, 2, figsize=(9, 3.2))
plots.level_vs_factor(ax_l, result, xlabel)
for x, r in zip(result.x, result.per_condition):
    d = r["distances"]
    off = d[~np.eye(len(d), dtype=bool)]
    ax_n.scatter(
        np.full(off.size, x) - 0.08,
        off,
        s=8,
        alpha=0.5,
        color=plots.LEVEL_COLORS["dynamics"],
        label="across networks" if x == result.x[0] else None,
    )
    ax_n.scatter(
        np.full(r["null"].size, x) + 0.08,
        r["null"],
        s=8,
        alpha=0.8,
        color="0.3",
        label="same network" if x == result.x[0] else None,
    )
ax_n.set_xlabel(xlabel)
ax_n.set_ylabel(f"DSA ({dsa_config.score})")
ax_n.set_xticks(result.x)
ax_n.legend()
plots.save(fig, f"book/generated/figures/dynamics_{task}_{factor}.png")
plt.show()

# %% tags=["hide-input"]
rows = [
    f"| {xlabel} | networks used | mean DSA | 95% interval "
    "| same-network null (mean) |",
    "|---|---|---|---|---|",
]
for x, v, lo, hi, k, r in zip(
    result.x, result.value, result.lo, result.hi, result.n_usable, result.per_condition
):
    null = np.nanmean(r["null"]) if r["null"].size else float("nan")
    rows.append(
        f"| {x:g} | {k} of {result.n_networks} | {v:.4g} "
        f"| [{lo:.4g}, {hi:.4g}] | {null:.3g} |"
    )
t = result.trend
rows.append("")
rows.append(
    f"Trend along {xlabel}: **{t['direction']}** (slope {t['slope']:.3g}, "
    f"95% interval [{t['lo']:.3g}, {t['hi']:.3g}]); "
    f"the paper finds **{result.expected}**."
)
Markdown("\n".join(rows))

# %% [markdown]
# ## The networks in two dimensions
#
# Classical MDS of each condition's DSA matrix: one point per network. The
# paper reports that clusters tighten as the task grows more complex.

# %% tags=["hide-input"]
n = len(result.per_condition)
fig, axes = plt.subplots(1, n, figsize=(2.8 * n, 2.8), squeeze=False)
for ax, x, r in zip(axes[0], result.x, result.per_condition):
    xy = r["mds"]
    ax.scatter(xy[:, 0], xy[:, 1], s=20, color=plots.LEVEL_COLORS["dynamics"])
    ax.set_title(f"{xlabel} = {x:g}", fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Representational similarity: SVCCA beside DSA
#
# SVCCA (mean canonical correlation of the leading directions of two
# networks' hidden states) asks whether the states *sit* in the same
# subspace, up to a linear map; DSA whether they *move* the same way. The
# paper's control: SVCCA distances (1 - similarity) need not follow DSA's
# trend.

# %% tags=["hide-input"]
rep = analysis.measure(prof, task, factor, "representation")
fig, (ax_d, ax_r) = plt.subplots(1, 2, figsize=(9, 3.2))
plots.level_vs_factor(ax_d, result, xlabel)
plots.level_vs_factor(ax_r, rep, xlabel)
ax_r.set_ylabel("SVCCA distance")
fig.tight_layout()
plt.show()
Markdown(
    f"Along {xlabel}: DSA **{result.trend['direction']}**, SVCCA distance "
    f"**{rep.trend['direction']}** (slope {rep.trend['slope']:.3g}, 95% interval "
    f"[{rep.trend['lo']:.3g}, {rep.trend['hi']:.3g}]). SVCCA keeps the leading "
    f"directions holding {prof.representation.variance_kept:.0%} of each "
    "network's variance."
)

# %% [markdown]
# ## Sensitivity to the embedding
#
# The delay count and rank are choices. The trend should not hinge on them:
# here it is recomputed with fewer and more delays and a lower and a higher
# rank. The check runs along the complexity knob unless the notebook's
# `sensitivity` parameter asks for it along another factor.

# %% tags=["hide-input"]
run_check = factor == "complexity" if sensitivity is None else bool(sensitivity)
variants = {
    "as chosen": dsa_config,
    "half the delays": dataclasses.replace(
        dsa_config, n_delays=max(1, dsa_config.n_delays // 2)
    ),
    "lower rank": dataclasses.replace(dsa_config, rank=max(2, dsa_config.rank // 2)),
    "higher rank": dataclasses.replace(dsa_config, rank=dsa_config.rank * 2),
}
conds = experiment.conditions(prof, task, factor)
rows = [
    "| setting | " + " | ".join(f"{xlabel} = {x:g}" for x in result.x) + " | trend |",
    "|---" * (len(result.x) + 2) + "|",
]
for name, cfg in variants.items() if run_check else ():
    means, reps = [], []
    for i, cond in enumerate(conds):
        tr = experiment.get_trained(cond)
        d = experiment.dynamics(tr, prof.eval_for(task), cfg)["distances"]
        means.append(stats.pair_mean(d))
        reps.append(stats.bootstrap_pair_mean(d, 500, seed=i))
    finite = np.isfinite(means)
    trend = (
        stats.trend(result.x[finite], np.asarray(reps)[finite])["direction"]
        if finite.sum() >= 2
        else "unclear"
    )
    rows.append(
        f"| {name} | " + " | ".join(f"{m:.3g}" for m in means) + f" | {trend} |"
    )
Markdown(
    "\n".join(rows)
    if run_check
    else "Not run along this factor (see the complexity pages of each task)."
)
