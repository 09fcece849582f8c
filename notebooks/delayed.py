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
# # The delayed discrimination task
#
# On each of N input channels a pulse of height $f_1$ is followed, after a
# delay, by a pulse of height $f_2$, both drawn between 2 and 10. Right after
# the second pulse, the channel's output must give $\mathrm{sign}(f_2 - f_1)$
# for a short response window; outside the windows the output is not scored.
# The network must hold $f_1$ through the delay, on a line of fixed points
# per channel, so the number of channels N is the task's complexity knob.
# The paper raises complexity two more ways, each swept here when the profile
# asks for it: a longer delay, and an auxiliary second output per channel
# giving $|f_2 - f_1|$.
#
# This page shows the task, the trained networks' outputs, how often their
# decisions are right, and their training curves.

# %% tags=["parameters", "remove-cell"]
profile = "default"

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown

from degen import analysis, experiment, plots
from degen.profile import load_profile

plots.use_style()
prof = load_profile(profile)
entries = analysis.task_conditions(prof, "delayed")
trained = [experiment.get_trained(e.condition) for e in entries]
cfg = entries[0].condition.task_config
Markdown(
    f"Pulses of {cfg.pulse_steps} step(s), delays of {cfg.delay_min} to "
    f"{cfg.delay_max} steps, a response window of {cfg.response_steps} steps; "
    f"inputs are $f / {cfg.f_max:g}$."
)


# %% tags=["hide-input"]
def show_trial(entry, tr, ood=False, seed=1):
    """One trial on the inputs' and the outputs' axes, the scored window
    shaded; the network's output if ``tr`` is given."""
    task = entry.condition.make_task()
    task = task.ood() if ood else task
    batch = task.sample(1, torch.Generator().manual_seed(seed))
    outputs = None
    if tr is not None:
        k = analysis.example_network(tr)
        outputs = tr.model.run(batch.inputs)[0][k, 0].numpy()
    fig, (ax_in, ax_out) = plt.subplots(2, 1, figsize=(8, 3.4), sharex=True)
    mask = batch.mask[0].numpy()  # [time, out]
    plots.trials(
        ax_in, ax_out, batch.inputs[0].numpy(), batch.targets[0].numpy(), outputs, mask
    )
    for c in range(mask.shape[1]):
        on = np.flatnonzero(mask[:, c])
        if on.size:
            ax_out.axvspan(on[0] - 0.5, on[-1] + 0.5, color="C0", alpha=0.08)
    return fig


# %% [markdown]
# ## Example trials
#
# One trial of each condition the profile trains. Inputs are above, targets
# below, drawn only in the response window (shaded), the only scored stretch.
# With the auxiliary output, outputs N+1 to 2N give $|f_2 - f_1|$ divided by
# the range of $f$.

# %% tags=["hide-input"]
for entry in entries:
    fig = show_trial(entry, None, seed=0)
    fig.suptitle(f"delayed discrimination, {entry.label}")
    plt.show()

# %% [markdown]
# ## Trained networks on twice the delay
#
# The out-of-distribution test doubles every delay. One converged network of
# each condition, its output over the target.

# %% tags=["hide-input"]
for entry, tr in zip(entries, trained):
    fig = show_trial(entry, tr, ood=True)
    fig.suptitle(f"{entry.label}, network {analysis.example_network(tr)} (OOD)")
    plt.show()

# %% [markdown]
# ## How often is the decision right?
#
# A channel's decision is the sign of its output averaged over the response
# window; it is right when it matches $\mathrm{sign}(f_2 - f_1)$. The table
# gives the fraction of right decisions on the fixed evaluation trials, and
# on the same kind of trials with the delay doubled, averaged over the
# converged networks (worst network in brackets). Pairs with $f_1$ close to
# $f_2$ are the hard ones, so a converged network can still miss a few.

# %% tags=["hide-input"]
rows = [
    "| condition | networks | right (trained delays) | right (doubled delays) |",
    "|---|---|---|---|",
]
for entry, tr in zip(entries, trained):
    task = entry.condition.make_task()
    usable = tr.usable
    cells = []
    for variant in (task, task.ood()):
        batch = experiment.evaluation_batch(variant, prof.eval_for("delayed"))
        outputs, _ = tr.model.run(batch.inputs)
        acc = analysis.decision_accuracy(
            outputs[usable].numpy(),
            batch.targets.numpy(),
            batch.mask.numpy(),
            entry.condition.task_config.n_channels,
        )
        cells.append(
            f"{100 * acc.mean():.1f}% ({100 * acc.min():.1f}%)" if acc.size else "–"
        )
    rows.append(f"| {entry.label} | {int(usable.sum())} | {cells[0]} | {cells[1]} |")
Markdown("\n".join(rows))

# %% [markdown]
# ## Training
#
# Every network trains on its own data stream until its epoch-mean MSE drops
# below the threshold, then for a few more epochs, and then stops. Networks
# that never reach the threshold are left out of every measure; the table
# counts them.

# %% tags=["hide-input"]
Markdown(analysis.training_table(entries, trained))

# %% tags=["hide-input"]
plots.loss_curves(entries, trained)
plt.show()
