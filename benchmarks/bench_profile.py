"""Projected time of a whole sweep profile on this machine, from measured speed.

For every distinct ensemble the profile trains, times a few optimizer steps of
an ensemble of the same size (networks, width, trial length, batch) on the
device and multiplies by the profile's step budget; for every condition, times
DSA (operator fits and comparisons) and the weight distance on a smaller
number of networks of the same width and scales by the number of pairs. The
training figure is an upper bound: networks that converge stop early and stop
costing compute.

    python benchmarks/bench_profile.py --profile paper --device auto

Prints the measured rates, then the projection per task and in total.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict

import numpy as np
import torch

from degen import experiment
from degen.metrics import dynamics as dsa
from degen.metrics import weights as wdist
from degen.model import Ensemble, resolve_device
from degen.profile import load_profile
from degen.train import train_ensemble

# Networks used to time DSA and the weight distance; the time scales with the
# number of pairs (comparisons) and of networks (operator fits).
PROBE_NETWORKS = 6
TRAIN_PROBE_STEPS = 3


def unique_conditions(profile):
    """Every distinct ensemble the profile trains, with its task."""
    seen = {}
    for task in profile.tasks:
        for factor in profile.factors(task):
            for cond in experiment.conditions(profile, task, factor):
                seen.setdefault(json.dumps(cond.to_dict(), sort_keys=True), cond)
    return list(seen.values())


def seconds_per_step(cond, device, cache) -> float:
    """Seconds per optimizer step of the whole ensemble of ``cond``."""
    task = cond.make_task()
    n_steps = cond.task_config.n_steps
    shape = (cond.task, cond.model, n_steps, len(cond.seeds), cond.train.batch_size)
    if shape in cache:
        return cache[shape]
    train = dataclasses.replace(cond.train, steps_per_epoch=1, max_epochs=1)
    model = Ensemble(cond.model, task.n_inputs, task.n_outputs, cond.seeds).to(device)
    train_ensemble(model, task, train, threshold=1e-30)  # warm-up
    probe = dataclasses.replace(train, steps_per_epoch=TRAIN_PROBE_STEPS)
    start = time.perf_counter()
    train_ensemble(model, task, probe, threshold=1e-30)  # never converges
    if device.type == "cuda":
        torch.cuda.synchronize()
    cache[shape] = (time.perf_counter() - start) / TRAIN_PROBE_STEPS
    return cache[shape]


def states_like(cond, eval_config, k, seed=0) -> np.ndarray:
    """Random hidden states of the shape DSA sees for ``cond``: [k, b, t, n]."""
    n_steps = cond.task_config.n_steps
    rng = np.random.default_rng(seed)
    shape = (k, eval_config.n_trials, n_steps, cond.model.n_hidden)
    return np.tanh(rng.standard_normal(shape)).astype(np.float32)


def measure_seconds(cond, profile, device, cache) -> tuple[float, float]:
    """(DSA, weight distance) seconds for the whole ensemble of ``cond``."""
    k = len(cond.seeds)
    eval_config = profile.eval_for(cond.task)
    dsa_config = experiment.dsa_config_for(profile, cond.task)
    n = cond.model.n_hidden
    key = (cond.task, n, eval_config, dsa_config, profile.weights)
    if key not in cache:
        m = PROBE_NETWORKS
        states = states_like(cond, eval_config, m)
        start = time.perf_counter()
        dsa.dsa(states, dsa_config, device=str(device))
        dsa_probe = time.perf_counter() - start
        rng = np.random.default_rng(1)
        w = rng.uniform(-1, 1, (m, n, n)) / np.sqrt(n)
        start = time.perf_counter()
        wdist.weight_distance_matrix(w, profile.weights)
        weights_probe = time.perf_counter() - start
        cache[key] = (dsa_probe, weights_probe)
    dsa_probe, weights_probe = cache[key]
    m = PROBE_NETWORKS
    probe_pairs, pairs = m * (m - 1) / 2, k * (k - 1) / 2
    # DSA: pairs plus the null's k comparisons, and twice the operator fits;
    # charging everything per comparison is the conservative reading.
    dsa_seconds = dsa_probe * (pairs + k) / probe_pairs
    return dsa_seconds, weights_probe * pairs / probe_pairs


def budget_used(store) -> dict[str, float]:
    """Per task, the mean fraction of the epoch budget the networks in the
    store actually trained for (converged networks stop early)."""
    fractions = defaultdict(list)
    for key in store.keys("ensemble"):
        entry = store.load("ensemble", key)
        if entry is None:
            continue
        max_epochs = entry.config["train"]["max_epochs"]
        used = np.asarray(entry.arrays["epochs_trained"]) / max_epochs
        fractions[entry.config["task"]].extend(used.tolist())
    return {task: float(np.mean(f)) for task, f in fractions.items()}


def hours(seconds: float) -> str:
    if seconds < 2 * 3600:
        return f"{seconds / 60:7.1f} min"
    return f"{seconds / 3600:9.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    profile = load_profile(args.profile)
    device = resolve_device(args.device)
    conds = unique_conditions(profile)
    print(
        f"profile {profile.name}: {len(conds)} ensembles, "
        f"{sum(len(c.seeds) for c in conds)} networks; device {device}, "
        f"torch threads {torch.get_num_threads()}"
    )
    used = budget_used(experiment.default_store())
    step_cache, measure_cache = {}, {}
    totals = defaultdict(lambda: np.zeros(3))
    for cond in conds:
        per_step = seconds_per_step(cond, device, step_cache)
        budget = cond.train.max_epochs * cond.train.steps_per_epoch
        dsa_s, weights_s = measure_seconds(cond, profile, device, measure_cache)
        totals[cond.task] += (per_step * budget, dsa_s, weights_s)
    head = ["training*", "training**", "DSA", "weights"]
    print(f"{'task':10s} " + " ".join(f"{h:>11s}" for h in head))
    grand = np.zeros(4)
    for task, (train_s, dsa_s, weights_s) in totals.items():
        row = np.array([train_s, train_s * used.get(task, 1.0), dsa_s, weights_s])
        grand += row
        print(f"{task:10s} " + " ".join(hours(x) for x in row))
    print(f"{'all':10s} " + " ".join(hours(x) for x in grand))
    print(f"projected total: {hours(grand[0] + grand[2:].sum()).strip()} at most,")
    print(f"about {hours(grand[1:].sum()).strip()} with the budget used so far")
    print("*  every network trained for the whole epoch budget (an upper bound)")
    print("** scaled by the share of the epoch budget that the networks already")
    print("   in the store used, per task:", {t: round(f, 3) for t, f in used.items()})


if __name__ == "__main__":
    main()
