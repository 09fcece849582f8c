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
# # Summary: what moves degeneracy
#
# The paper's table, measured here: for each factor and each level, the
# direction in which degeneracy moves as the factor rises, beside what the
# paper reports. Every entry is computed from the stored results of this run;
# nothing is typed in.
#
# **How a cell is computed.** A row of the table pools every task and every
# factor of that kind the profile sweeps (the complexity row, for instance,
# holds each task's number of channels and delayed discrimination's longer
# delay and auxiliary output). Each (task, factor) gives a scale-free slope:
# the least-squares slope of the logarithm of the measure against the
# position of the value in its sweep (lowest 0, highest 1), so +0.5 means
# the measure grows by a factor $e^{0.5} \approx 1.65$ from the lowest value
# swept to the highest. The cell's slope is the mean of these over the row,
# and its 95% interval comes from the same bootstrap over networks that every
# level page uses (replicate by replicate, so networks stay the resampled
# unit). A cell is **up** or **down** when its interval excludes zero and
# **unclear** (–) when it does not; ✓ marks agreement with the paper, ✗ the
# opposite direction.

# %% tags=["parameters", "remove-cell"]
profile = "default"

# %%
import numpy as np
from IPython.display import Markdown, display

from degen import analysis, plots
from degen.profile import load_profile

plots.use_style()
prof = load_profile(profile)
pairs = [(task, factor) for task in prof.tasks for factor in prof.factors(task)]
results = {
    (task, factor, level): analysis.measure(prof, task, factor, level)
    for task, factor in pairs
    for level in analysis.LEVELS
}
cells = analysis.paper_table(prof, results)
n_agree, n_measured = analysis.agreement_count(cells)
sizes = sorted({len(prof.seeds_for(t, f)) for t, f in pairs})

# %% [markdown]
# ## The paper's table, measured

# %% tags=["hide-input"]
Markdown(
    analysis.paper_table_markdown(cells)
    + f"\n\n**{n_agree} of {len(cells)} cells agree with the paper** in the "
    f"`{prof.name}` profile ({n_measured} measured; "
    f"{' or '.join(map(str, sizes))} networks per condition). Each cell: "
    "mark, measured direction, pooled slope [95% interval], and the paper's "
    "direction."
)

# %% [markdown]
# ## Dynamics against weights: covariant or contravariant
#
# The paper reads its table in pairs: for task complexity and feature
# learning, dynamics and weights move in **opposite** directions
# (contravariant: networks that agree more in their dynamics differ more in
# their weights), while width and regularization move both the **same** way
# (covariant). Here is that reading of the measured cells, with the share of
# bootstrap replicates in which the two pooled slopes have the same sign
# (near 1: covariant, near 0: contravariant).

# %% tags=["hide-input"]
lines = [
    "| factor increased | dynamics | weights | measured reading | paper "
    "| same-sign share |",
    "|---|---|---|---|---|---|",
]
for entry in analysis.covariation(cells):
    row = entry["row"]
    dyn, wts = cells[row, "dynamics"], cells[row, "weights"]

    def shown(c):
        if not c.measured:
            return "not measured"
        return f"{analysis.ARROWS[c.trend['direction']]} {c.trend['direction']}"

    share = entry["same_sign_share"]
    lines.append(
        f"| {analysis.ROW_TITLES[row]} | {shown(dyn)} | {shown(wts)} "
        f"| {entry['measured']} | {entry['paper']} "
        f"| {'–' if np.isnan(share) else f'{share:.2f}'} |"
    )
Markdown("\n".join(lines))

# %% [markdown]
# ## Mean OOD loss under feature learning
#
# Beside its spread, the paper reports that the **mean** OOD loss rises with
# gamma: richer feature learning fits the training distribution with
# solutions that generalize worse and differ more from one another.

# %% tags=["hide-input"]
fl_pairs = [(t, f) for t, f in pairs if prof.factor(t, f).row == "feature_learning"]
if not fl_pairs:
    display(Markdown("This profile sweeps no feature-learning factor."))
else:
    ood = [analysis.measure(prof, t, f, "mean_ood_loss") for t, f in fl_pairs]
    pooled = analysis.pooled_cell("feature_learning", "behavior", ood)
    t = pooled.trend
    display(
        Markdown(
            analysis.direction_table(prof, ood)
            + "\n\n"
            + analysis.agreement_text(prof, ood)
            + f" Pooled over tasks: **{t['direction']}** (relative slope "
            f"{t['slope']:+.2f}, 95% interval [{t['lo']:+.2f}, {t['hi']:+.2f}])."
        )
    )

# %% [markdown]
# ## Representations are not dynamics: SVCCA beside DSA
#
# SVCCA compares where the hidden states sit (their leading subspace, up to
# a linear map), DSA how they move. The paper uses SVCCA as a control: it
# does not follow the trends DSA shows. Each row below gives both directions
# along one factor of one task; the last column says whether they match.

# %% tags=["hide-input"]
rep = {(t, f): analysis.measure(prof, t, f, "representation") for t, f in pairs}
lines = [
    "| task | varied | DSA | SVCCA distance | same direction |",
    "|---|---|---|---|---|",
]
same = 0
for (task, factor), r in rep.items():
    d = results[task, factor, "dynamics"]
    dd, rd = d.trend["direction"], r.trend["direction"]
    match = dd == rd and dd != "unclear"
    same += match
    lines.append(
        f"| {analysis.TASK_TITLES[task]} | {analysis.knob_label(prof, task, factor)} "
        f"| {analysis.ARROWS[dd]} {dd} | {analysis.ARROWS[rd]} {rd} "
        f"| {'yes' if match else 'no'} |"
    )
lines += [
    "",
    f"SVCCA and DSA move in the same clear direction along {same} of "
    f"{len(rep)} factors.",
]
Markdown("\n".join(lines))

# %% [markdown]
# ## Every task and factor
#
# The cells above, unpooled: one row per task, factor and level, with the
# slope in the factor's own units (the level pages show each one).

# %% tags=["hide-input"]
ordered = sorted(
    results.values(),
    key=lambda r: list(analysis.ROW_TITLES).index(prof.factor(r.task, r.factor).row),
)
Markdown(
    analysis.direction_table(prof, ordered)
    + "\n\n"
    + analysis.agreement_text(prof, ordered)
)
