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
# # The sine wave task
#
# Each of N input channels holds a constant level for the whole trial, and
# the level selects one of a few frequencies between 1 and 30 Hz. Output
# channel i must oscillate as $\sin(2 \pi f_i t)$ at its channel's frequency,
# starting in phase at the first step. A network that solves the task needs a
# limit cycle for every combination of frequencies it is asked for, so the
# number of channels N is the task's complexity knob.
#
# This page shows the task, the trained networks' outputs, a check that
# their output oscillates at the frequency it was asked for, and their
# training curves.

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
conds = experiment.conditions(prof, "sine")
trained = [experiment.get_trained(c) for c in conds]
sine_cfg = conds[-1].task_config
Markdown(
    f"Frequencies: {sine_cfg.n_freqs} per channel from {sine_cfg.freq_min:g} to "
    f"{sine_cfg.freq_max:g} Hz; the input level is $f / {sine_cfg.freq_max:g}$. "
    f"Time step {1000 * sine_cfg.dt:g} ms, trials of {sine_cfg.n_steps} steps "
    f"({sine_cfg.n_steps * sine_cfg.dt:g} s); the first "
    f"{sine_cfg.transient_steps} steps are not scored."
)

# %% [markdown]
# ## Example trial
#
# One trial of the largest N: the constant inputs above, the target sines
# below.

# %% tags=["hide-input"]
cond = conds[-1]
batch = cond.make_task().sample(1, torch.Generator().manual_seed(0))
fig, (ax_in, ax_out) = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
plots.trials(ax_in, ax_out, batch.inputs[0].numpy(), batch.targets[0].numpy())
fig.suptitle(f"sine wave, N = {cond.task_config.n_channels}, one trial")
plt.show()

# %% [markdown]
# ## Trained networks on a trial twice as long
#
# The out-of-distribution test doubles the trial: the network must keep
# oscillating past the point where training stopped scoring it. One
# converged network of each N, its output over the target.

# %% tags=["hide-input"]
for cond, tr in zip(conds, trained):
    batch = cond.make_task().ood().sample(1, torch.Generator().manual_seed(1))
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
    ax_out.axvline(cond.task_config.n_steps, color="k", lw=0.8, ls=":")
    fig.suptitle(f"N = {cond.task_config.n_channels}, network {k} (OOD trial)")
    plt.show()

# %% [markdown]
# ## Does the output oscillate at the requested frequency?
#
# For every converged network, every evaluation trial and every channel, the
# output after the unscored transient is windowed and Fourier transformed;
# the frequency of the largest peak is compared with the one the input
# asked for. A peak counts as right when the requested frequency is the
# nearest of the channel's frequency set, so a network that confuses two
# frequencies is caught while the spectrum's finite resolution is not held
# against it. A frequency that completes less than one cycle within the
# analysed stretch has no peak to find and is left out of the check (its fit
# to the target is part of the training loss).

# %% tags=["hide-input"]
rows = [
    "| N | networks | channel-trials checked | right frequency (mean over "
    "networks) | worst network | median error (Hz) |",
    "|---|---|---|---|---|---|",
]
fig, axes = plt.subplots(
    1, len(conds), figsize=(3 * len(conds), 3), sharey=True, squeeze=False
)
for ax, cond, tr in zip(axes[0], conds, trained):
    c = cond.task_config
    task = cond.make_task()
    batch = experiment.evaluation_batch(task, prof.eval_for("sine"))
    outputs, _ = tr.model.run(batch.inputs)
    usable = tr.usable
    start = c.transient_steps
    # [net, trial, channel]: the peak of each output, and the frequency the
    # input asked for (its level times freq_max, snapped to the set)
    peak = analysis.peak_frequency(
        outputs[usable, :, start:].numpy().transpose(0, 1, 3, 2), c.dt
    )
    table = task.frequencies().numpy()  # [N, n_freqs]
    level = batch.inputs.mean(dim=1).numpy().astype(np.float64)  # [trial, N]
    wanted = analysis.nearest_frequency(level * c.freq_max, table)
    window_s = (c.n_steps - start) * c.dt
    checked = np.broadcast_to(wanted * window_s >= 1.0, peak.shape)  # a full cycle
    right = analysis.nearest_frequency(peak, table) == wanted[None]
    if usable.any() and checked.any():
        share = (right & checked).sum(axis=(1, 2)) / checked.sum(axis=(1, 2))
        error = np.abs(peak - wanted[None])[checked]
        rows.append(
            f"| {c.n_channels} | {int(usable.sum())} "
            f"| {int(checked[0].sum())} of {checked[0].size} "
            f"| {100 * share.mean():.1f}% | {100 * share.min():.1f}% "
            f"| {np.median(error):.2f} |"
        )
        jitter = np.random.default_rng(0).normal(0, 0.3, int(checked.sum()))
        ax.scatter(
            np.broadcast_to(wanted[None], peak.shape)[checked] + jitter,
            peak[checked],
            s=6,
            alpha=0.3,
        )
    else:
        rows.append(f"| {c.n_channels} | {int(usable.sum())} | – | – | – | – |")
    lim = [0, c.freq_max * 1.1]
    ax.plot(lim, lim, color="k", lw=0.8, ls="--")
    ax.set_title(f"N = {c.n_channels}", fontsize=9)
    ax.set_xlabel("requested frequency (Hz)")
axes[0, 0].set_ylabel("output peak (Hz)")
fig.tight_layout()
plt.show()
rows.append("")
rows.append(
    f"Analysed stretch: {window_s:g} s per trial, so frequencies below "
    f"{1 / window_s:.2g} Hz are not checked."
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
entries = analysis.task_conditions(prof, "sine")
all_trained = [experiment.get_trained(e.condition) for e in entries]
Markdown(analysis.training_table(entries, all_trained))

# %% tags=["hide-input"]
plots.loss_curves(entries, all_trained)
plt.show()
