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
# # The path integration task
#
# An agent wanders through a box, $[-5, 5]$ on each axis, and bounces off its
# walls. At the first step the network is told where the agent starts; from
# then on it is told only the heading and the speed of every step, and its
# outputs must give the agent's position. A network that solves the task
# keeps a continuous map of the arena and moves along it with the velocity it
# is given. The number of dimensions (2 or 3) is the task's complexity knob.
#
# This page shows the task, the trained networks' reading of the path, how
# the position error grows over a trial twice as long as the training trials,
# and their training curves.

# %% tags=["parameters", "remove-cell"]
profile = "default"

# %%
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown

from degen import analysis, experiment, plots
from degen.profile import load_profile

plots.use_style()
prof = load_profile(profile)
conds = experiment.conditions(prof, "path")
trained = [experiment.get_trained(c) for c in conds]
cfg = conds[-1].task_config
Markdown(
    f"Trials of {cfg.n_steps} steps; speed drawn each step from "
    f"$U[0, {cfg.max_speed:g}]$; the heading turns by a random angle of s.d. "
    rf"{cfg.turn_sd:g} rad per step; walls at $\pm {cfg.half_width:g}$ reflect "
    "the path."
)

# %% [markdown]
# ## Example trial
#
# One trial of the largest dimension: the inputs (heading as cosines and
# sines, speed, and the start position at step 0 only) and the target
# coordinates.

# %% tags=["hide-input"]
cond = conds[-1]
batch = cond.make_task().sample(1, torch.Generator().manual_seed(0))
fig, (ax_in, ax_out) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
plots.trials(ax_in, ax_out, batch.inputs[0].numpy(), batch.targets[0].numpy())
ax_out.set_yticklabels(list("xyz"[: cfg.n_dims]))
fig.suptitle(f"path integration, {cfg.n_dims} dimensions, one trial")
plt.show()

# %% [markdown]
# ## True and integrated paths
#
# One converged network of each dimension on three trials twice as long as
# those it trained on (the out-of-distribution test): the true path in grey,
# the network's position read-out in red, the start as a dot. A 3-D path is
# drawn in two projections.

# %% tags=["hide-input"]
for cond, tr in zip(conds, trained):
    d = cond.task_config.n_dims
    batch = cond.make_task().ood().sample(3, torch.Generator().manual_seed(1))
    outputs, _ = tr.model.run(batch.inputs)
    k = analysis.example_network(tr)
    planes = [(0, 1)] if d == 2 else [(0, 1), (0, 2)]
    fig, axes = plt.subplots(
        len(planes), 3, figsize=(9, 3.1 * len(planes)), squeeze=False
    )
    for row, dims in zip(axes, planes):
        for trial, ax in enumerate(row):
            plots.paths(
                ax,
                batch.targets[trial].numpy(),
                outputs[k, trial].numpy(),
                dims,
                label=trial == 0,
            )
    axes[0, 0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{d} dimensions, network {k} (OOD trials)")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## How far off is the integrated position?
#
# The distance between the network's position and the true one at every
# step, averaged over the fixed evaluation trials, on trials twice as long
# as the training trials; one line per converged network. Errors of an
# integrator accumulate, so the interesting part is the second half, where
# no network was ever trained.

# %% tags=["hide-input"]
rows = [
    "| dimensions | networks | error at the last trained step "
    "| error at the last step (OOD) |",
    "|---|---|---|---|",
]
fig, axes = plt.subplots(
    1, len(conds), figsize=(4 * len(conds), 3), sharey=True, squeeze=False
)
for ax, cond, tr in zip(axes[0], conds, trained):
    batch = experiment.evaluation_batch(cond.make_task().ood(), prof.eval_for("path"))
    outputs, _ = tr.model.run(batch.inputs)
    err = analysis.position_error(outputs[tr.usable].numpy(), batch.targets.numpy())
    n_train = cond.task_config.n_steps
    ax.plot(err.T, lw=1, alpha=0.7)
    ax.axvline(n_train - 1, color="k", lw=0.8, ls=":")
    ax.set_title(f"{cond.task_config.n_dims} dimensions", fontsize=9)
    ax.set_xlabel("time step")
    if err.size:
        rows.append(
            f"| {cond.task_config.n_dims} | {int(tr.usable.sum())} "
            f"| {err[:, n_train - 1].mean():.2f} | {err[:, -1].mean():.2f} |"
        )
axes[0, 0].set_ylabel("position error (arena units)")
fig.tight_layout()
plt.show()
rows.append("")
rows.append(
    f"Errors are mean distances in arena units (the box is {2 * cfg.half_width:g} "
    "wide), averaged over networks."
)
Markdown("\n".join(rows))

# %% [markdown]
# ## Training
#
# Every network trains on its own data stream until its epoch-mean MSE drops
# below the threshold, then for a few more epochs, and then stops. Networks
# that never reach the threshold are left out of every measure; the table
# counts them.

# %% tags=["hide-input"]
entries = analysis.task_conditions(prof, "path")
all_trained = [experiment.get_trained(e.condition) for e in entries]
Markdown(analysis.training_table(entries, all_trained))

# %% tags=["hide-input"]
plots.loss_curves(entries, all_trained)
plt.show()
