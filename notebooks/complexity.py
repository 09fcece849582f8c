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
# # Task complexity
#
# The paper's first finding: as a task grows more complex, networks trained
# on it agree more in behavior and in dynamics and less in weights.
# Complexity rises with the number of independent channels of every task,
# and, for delayed discrimination, with a longer delay and with an auxiliary
# output. The paper also reports that more complex tasks move the weights
# further from their start and change the network's tangent kernel more, and
# that the networks' dynamics cluster more tightly.
#
# This chapter sets each of those claims beside the networks trained here.
# Every direction is the sign of the slope of a straight line through the
# measure against the factor, with a 95% bootstrap interval over networks;
# "unclear" means the interval contains zero. Each direction is computed from
# the results store of this run and compared with the paper's in code.

# %% tags=["parameters", "remove-cell"]
profile = "default"

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from degen import analysis, plots
from degen.profile import load_profile

plots.use_style()
prof = load_profile(profile)
pairs = analysis.complexity_factors(prof)
knobs = [(task, f) for task, f in pairs if f == "complexity"]
others = [(task, f) for task, f in pairs if f != "complexity"]
results = {
    (task, f, level): analysis.measure(prof, task, f, level)
    for task, f in pairs
    for level in analysis.LEVELS
}


def row_of(task, factor, levels=analysis.LEVELS):
    return [results[task, factor, level] for level in levels]


def title_of(task, factor):
    return analysis.TASK_TITLES[task]  # one row per task and factor


def show_levels(pairs, empty_text):
    """The three levels against each (task, factor) of ``pairs``, one row of
    panels each, then their directions and agreement with the paper."""
    if not pairs:
        display(Markdown(empty_text))
        return
    plots.level_grid(
        [row_of(*p) for p in pairs],
        [analysis.knob_label(prof, *p) for p in pairs],
        [title_of(*p) for p in pairs],
    )
    plt.show()
    flat = [r for p in pairs for r in row_of(*p)]
    display(
        Markdown(
            analysis.direction_table(prof, flat)
            + "\n\n"
            + analysis.agreement_text(prof, flat)
        )
    )


# %% [markdown]
# ## Every task against its number of channels
#
# One row per task, one column per level: degeneracy against the task's
# complexity knob, with 95% intervals across networks. The paper finds
# behavior and dynamics **down** and weights **up**.

# %% tags=["hide-input"]
show_levels(knobs, "This profile sweeps no task's complexity knob.")

# %% [markdown]
# ## A longer delay and an auxiliary output
#
# Delayed discrimination can be made harder without adding channels: by
# lengthening the delay the network must bridge, or by asking for a second
# output per channel, $|f_2 - f_1|$, besides the decision. The paper counts
# both as more complexity. Two caveats for the auxiliary output: the loss,
# and so the convergence threshold, is the mean over all outputs, half of
# them the auxiliary one, which is easier than the decision, so these
# networks reach the threshold sooner and with less accurate decisions (the
# delayed task's page shows both); and the OOD loss includes the auxiliary
# output's error, so behavior there compares two different losses.

# %% tags=["hide-input"]
show_levels(others, "This profile sweeps no other complexity factor.")

# %% [markdown]
# ## The networks' dynamics in two dimensions
#
# Classical multidimensional scaling of each condition's DSA distances, one
# point per converged network, one row per task. Panels of a row share their
# axes, so a tighter cluster means networks whose dynamics are closer; the
# paper reports clusters tightening as complexity rises. Each panel's title
# gives the mean DSA distance of its condition.

# %% tags=["hide-input"]
for task, factor in pairs:
    result = results[task, factor, "dynamics"]
    label = analysis.knob_label(prof, task, factor)
    n = len(result.x)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.8), squeeze=False)
    plots.mds_row(
        axes[0],
        [r["mds"] for r in result.per_condition],
        [
            f"{label} = {analysis.value_text(v)}\nmean {d:.3g}"
            for v, d in zip(prof.values(task, factor), result.value)
        ],
    )
    fig.suptitle(analysis.TASK_TITLES[task], fontsize=10)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## Weight change and kernel alignment
#
# How far training moved each network: the change of its recurrent weights,
# $\lVert W_T - W_0 \rVert_F$, and the alignment of its empirical neural
# tangent kernel at the end of training with the one at the start,
# $\mathrm{Tr}(K_T K_0) / (\lVert K_T \rVert_F \lVert K_0 \rVert_F)$, on a
# fixed probe batch (1 means the kernel kept its shape; lower means more
# feature learning). Points are means over converged networks with 95%
# bootstrap intervals. The paper finds more complex tasks give a **larger**
# weight change and a **lower** alignment.

# %% tags=["hide-input"]
diagnostics = {
    (task, f, level): analysis.measure(prof, task, f, level)
    for task, f in pairs
    for level in analysis.DIAGNOSTICS
}
rows = [
    [diagnostics[task, f, level] for level in analysis.DIAGNOSTICS] for task, f in pairs
]
if pairs:
    plots.level_grid(
        rows,
        [analysis.knob_label(prof, *p) for p in pairs],
        [title_of(*p) for p in pairs],
    )
    plt.show()
flat = [r for row in rows for r in row]
Markdown(
    analysis.direction_table(prof, flat) + "\n\n" + analysis.agreement_text(prof, flat)
)

# %% [markdown]
# ## In short
#
# All of this chapter's cells at once: the three levels for every way the
# profile raises complexity, then the two learning diagnostics.

# %% tags=["hide-input"]
everything = list(results.values()) + list(diagnostics.values())
stated = [r for r in everything if r.expected in ("up", "down")]
judged = [r for r in stated if analysis.measured_trend(r)]
n_agree = sum(r.agrees for r in judged)
Markdown(
    f"In the `{prof.name}` profile, {n_agree} of {len(judged)} measured "
    f"directions agree with the paper ({len(stated) - len(judged)} could not be "
    "measured). Networks per condition: "
    + ", ".join(
        f"{analysis.TASK_TITLES[t]} {len(prof.seeds_for(t))}"
        for t in dict.fromkeys(t for t, _ in pairs)
    )
    + f", of {prof.model.n_hidden} units."
)
