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
# # Weight degeneracy
#
# Two networks can implement the same function with their hidden units in a
# different order, so weights are compared up to a relabelling: the distance
# between recurrent matrices is
# $\min_P \lVert W_1 - P^\top W_2 P \rVert_F$ over permutations $P$, a
# quadratic assignment problem solved approximately (several candidate
# permutations, each scored exactly, the best kept). Weight degeneracy is the
# mean over all pairs of converged networks.

# %% tags=["parameters", "remove-cell"]
profile = "default"
task = "flipflop"
factor = "complexity"

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown

from degen import analysis, plots
from degen.profile import load_profile

plots.use_style()
prof = load_profile(profile)
result = analysis.measure(prof, task, factor, "weights")
xlabel = analysis.knob_label(prof, task, factor)
Markdown(f"{analysis.TASK_TITLES[task]}, along {xlabel}.")

# %% [markdown]
# ## Pairwise distances

# %% tags=["hide-input"]
n = len(result.per_condition)
fig, axes = plt.subplots(1, n + 1, figsize=(2.6 * (n + 1), 2.8), squeeze=False)
for ax, x, r in zip(axes[0], result.x, result.per_condition):
    im = ax.imshow(r["distances"], cmap="viridis")
    ax.set_title(f"{xlabel} = {x:g}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046)
plots.level_vs_factor(axes[0, -1], result, xlabel)
fig.tight_layout()
plots.save(fig, f"book/generated/figures/weights_{task}_{factor}.png")
plt.show()

# %% tags=["hide-input"]
rows = [
    f"| {xlabel} | networks used | mean distance | 95% interval |",
    "|---|---|---|---|",
]
for x, v, lo, hi, k in zip(
    result.x, result.value, result.lo, result.hi, result.n_usable
):
    rows.append(
        f"| {x:g} | {k} of {result.n_networks} | {v:.4g} | [{lo:.4g}, {hi:.4g}] |"
    )
t = result.trend
rows.append("")
rows.append(
    f"Trend along {xlabel}: **{t['direction']}** (slope {t['slope']:.3g}, "
    f"95% interval [{t['lo']:.3g}, {t['hi']:.3g}]); "
    f"the paper finds **{result.expected}**."
)
Markdown("\n".join(rows))
