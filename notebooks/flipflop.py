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
# # The N-bit flip-flop task
#
# Each of N input channels is silent most of the time and now and then carries
# a pulse of +1 or -1. Output channel i must hold the sign of the last pulse
# on input i. A network that solves the task needs $2^N$ stable states, one
# per combination of remembered bits, so N is the task's complexity knob.
#
# This page shows the task, the trained networks' outputs and their training
# curves for every N the profile sweeps.

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
conds = experiment.conditions(prof, "flipflop")
trained = [experiment.get_trained(c) for c in conds]

# %% [markdown]
# ## Example trials
#
# One trial of the largest N. The first step pulses every channel, so every
# target is one of the $2^N$ memory states from the start (a choice recorded
# on the choices page).

# %% tags=["hide-input"]
cond = conds[-1]
task = cond.make_task()
batch = task.sample(1, torch.Generator().manual_seed(0))
fig, (ax_in, ax_out) = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
plots.trials(ax_in, ax_out, batch.inputs[0].numpy(), batch.targets[0].numpy())
fig.suptitle(f"{cond.task_config.n_bits}-bit flip-flop, one trial")
plt.show()

# %% [markdown]
# ## Trained networks on a trial twice as long
#
# The out-of-distribution test doubles the trial. Here is one converged
# network of each N on the same kind of trial, its output over the target.

# %% tags=["hide-input"]
for cond, tr in zip(conds, trained):
    ood = cond.make_task().ood()
    batch = ood.sample(1, torch.Generator().manual_seed(1))
    outputs, _ = tr.model.run(batch.inputs)
    k = analysis.example_network(tr)
    fig, (ax_in, ax_out) = plt.subplots(2, 1, figsize=(8, 3.2), sharex=True)
    plots.trials(
        ax_in,
        ax_out,
        batch.inputs[0].numpy(),
        batch.targets[0].numpy(),
        outputs[k, 0].numpy(),
    )
    fig.suptitle(f"N = {cond.task_config.n_bits}, network {k} (OOD trial)")
    plt.show()

# %% [markdown]
# ## Training
#
# Every network trains on its own data stream until its epoch-mean MSE drops
# below the threshold, then for a few more epochs, and then stops. Networks
# that never reach the threshold are left out of every measure; the table
# counts them.

# %% tags=["hide-input"]
entries = analysis.task_conditions(prof, "flipflop")
all_trained = [experiment.get_trained(e.condition) for e in entries]
Markdown(analysis.training_table(entries, all_trained))

# %% tags=["hide-input"]
plots.loss_curves(entries, all_trained)
plt.show()
