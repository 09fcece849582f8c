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
# direction in which degeneracy moves as the factor rises, with the 95%
# bootstrap interval of the slope across networks, beside what the paper
# reports. "unclear" means the interval contains zero. Every entry is
# computed from the stored results of this run; nothing is typed in.

# %% tags=["parameters", "remove-cell"]
profile = "default"

# %%
from IPython.display import Markdown

from degen import analysis, plots
from degen.profile import load_profile

plots.use_style()
prof = load_profile(profile)
results = {
    (task, factor, level): analysis.measure(prof, task, factor, level)
    for task in prof.tasks
    for factor in prof.factors(task)
    for level in analysis.LEVELS
}

# %% [markdown]
# ## Measured directions against the paper's
#
# One row per task, factor and level, grouped by the row of the paper's
# table the factor tests.

# %% tags=["hide-input"]
arrows = {"up": "↑", "down": "↓", "unclear": "–"}
rows = [
    "| paper's factor | task | swept | level | measured | slope (95% interval) "
    "| paper | agrees |",
    "|---|---|---|---|---|---|---|---|",
]
agree = 0
ordered = sorted(results.items(), key=lambda kv: prof.factor(kv[0][0], kv[0][1]).row)
for (task, factor, level), r in ordered:
    t = r.trend
    agree += r.agrees
    row = prof.factor(task, factor).row.replace("_", " ")
    rows.append(
        f"| {row} | {task} | {analysis.knob_label(prof, task, factor)} | {level} "
        f"| {arrows[t['direction']]} {t['direction']} "
        f"| {t['slope']:.3g} [{t['lo']:.3g}, {t['hi']:.3g}] "
        f"| {arrows[r.expected]} {r.expected} | {'yes' if r.agrees else 'no'} |"
    )
rows.append("")
sizes = sorted({len(prof.seeds_for(task)) for task in prof.tasks})
rows.append(
    f"{agree} of {len(results)} cells agree with the paper in the "
    f"`{prof.name}` profile ({' or '.join(map(str, sizes))} networks of "
    f"{prof.model.n_hidden} units per condition)."
)
Markdown("\n".join(rows))
