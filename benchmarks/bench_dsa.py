"""DSA: degen against the dsa-metric package (2.0.2), on all pairs of one ensemble.

Hidden states come from a degen ensemble trained briefly on the 3-bit
flip-flop. Two timings, each with degen and dsa-metric back to back:

* the whole of DSA on the states (operator fits and all pairwise
  comparisons): ``degen.metrics.dynamics.dsa`` against ``DSA.DSA(...)
  .fit_score()``, with the same delays, rank, score and optimiser steps;
* the operator comparison alone, on degen's operators for both, so that the
  objectives can be compared: ``||A - C B C^T||^2`` over orthogonal C for
  unit-norm operators (Procrustes over vector fields), degen's at its best C
  against dsa-metric's at its ``C_star``, both recomputed in float64.

dsa-metric's score must be chosen: its default is a Wasserstein distance
between eigenvalues, not this Procrustes distance, so ``score_method`` is
pinned to ``"angular"`` (arccos of the normalised inner product at the best C).
It optimises C with Adam (``lr``, default 5e-3) from two starts, one in each
component of O(r); ``--ref-iters`` defaults to degen's ``n_iters`` (300), the
"same iterations" (dsa-metric's own default is 1500).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np
import torch
from _shared import load, trained_flipflop

from degen.metrics.dynamics import DSAConfig, dsa, procrustes_vf
from degen.model import resolve_device

try:
    from DSA import DSA as ReferenceDSA
    from DSA.simdist import SimilarityTransformDist
except ImportError as error:  # pragma: no cover - depends on the environment
    sys.exit(
        f"dsa-metric is not installed or fails to import ({error}); install it "
        "with `pip install -e .[bench]` (dsa-metric==2.0.2)"
    )

TOL = 1e-3  # "no worse" allows this much in the squared objective


def hidden_states(k, n, epochs, steps, trials, seed=0):
    """[k, trials, time, n] states of an ensemble trained ``epochs * steps``."""
    task, model = trained_flipflop(k, n, epochs, steps)
    batch = task.sample(trials, torch.Generator().manual_seed(seed))
    _, hidden = model.run(batch.inputs)
    return hidden.double().numpy()


def objective(a_rxr, b_rxr, c_rxr) -> float:
    """``||A/|A| - C B/|B| C^T||_F^2`` in float64."""
    a = np.asarray(a_rxr, dtype=np.float64)
    b = np.asarray(b_rxr, dtype=np.float64)
    c = np.asarray(c_rxr, dtype=np.float64)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    return float(np.sum((a - c @ b @ c.T) ** 2))


def reference_pairs(ops, pairs, iters, lr):
    """dsa-metric's Procrustes fit on every pair: (objectives, seconds)."""
    values = []
    start = time.perf_counter()
    for i, j in pairs:
        fit = SimilarityTransformDist(iters=iters, score_method="angular", lr=lr)
        # fit() normalises its inputs in place: give it copies.
        a = torch.tensor(ops[i], dtype=torch.float32)
        b = torch.tensor(ops[j], dtype=torch.float32)
        fit.fit_score(a, b)
        values.append(fit.C_star.numpy())
    seconds = time.perf_counter() - start
    return np.array(
        [objective(ops[i], ops[j], c) for (i, j), c in zip(pairs, values, strict=True)]
    ), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--networks", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    # dsa-metric needs trials * (time - delays + 1) >= n * delays samples.
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--ref-iters", type=int, default=DSAConfig().n_iters)
    parser.add_argument("--ref-lr", type=float, default=5e-3)  # DSA.DSA's default
    parser.add_argument(
        "--device",
        default="cpu",
        help="accepted for `degen bench`; this benchmark runs on the CPU, where "
        "its reference runs",
    )
    args = parser.parse_args()
    if resolve_device(args.device).type != "cpu":
        print(f"--device {args.device}: this benchmark runs on the CPU only")
    config = DSAConfig()
    k = args.networks
    torch.set_num_threads(1)  # both sides single-threaded
    print(f"cpu cores {os.cpu_count()}, torch threads {torch.get_num_threads()}")
    print(f"degen {config}")
    print(
        f"dsa-metric 2.0.2: score_method='angular', n_delays={config.n_delays}, "
        f"delay_interval={config.delay_interval}, rank={config.rank}, "
        f"iters={args.ref_iters} per start (2 starts), lr={args.ref_lr}"
    )
    print(f"{load()} (before)")
    states = hidden_states(
        k, args.hidden, args.epochs, args.steps_per_epoch, args.trials
    )
    pairs = list(itertools.combinations(range(k), 2))
    print(
        f"sizes: {k} networks, n={args.hidden}, states {list(states.shape)} "
        f"[net, trial, time, unit], {len(pairs)} pairs"
    )

    # Whole DSA on the states.
    dsa(states[:2], config)  # warm-up
    start = time.perf_counter()
    ours = dsa(states, config)
    our_full = time.perf_counter() - start
    start = time.perf_counter()
    reference = ReferenceDSA(
        list(states),
        n_delays=config.n_delays,
        delay_interval=config.delay_interval,
        rank=config.rank,
        score_method="angular",
        iters=args.ref_iters,
        lr=args.ref_lr,
    )
    reference.fit_score()
    ref_full = time.perf_counter() - start
    print(
        f"whole DSA  : dsa-metric {ref_full:7.2f} s, degen {our_full:7.2f} s, "
        f"ratio {ref_full / our_full:.1f}x"
    )

    # The operator comparison alone, on degen's operators.
    ops = ours.operators
    i, j = np.array(pairs).T
    start = time.perf_counter()
    fit = procrustes_vf(ops[i], ops[j], config)
    our_pairs = time.perf_counter() - start
    ours_obj = np.array(
        [
            objective(ops[a], ops[b], c)
            for a, b, c in zip(i, j, fit["rotation"], strict=True)
        ]
    )
    ref_obj, ref_pairs = reference_pairs(ops, pairs, args.ref_iters, args.ref_lr)
    print(
        f"comparison : dsa-metric {ref_pairs:7.2f} s, degen {our_pairs:7.2f} s, "
        f"ratio {ref_pairs / our_pairs:.1f}x"
    )
    gap = ours_obj - ref_obj
    no_worse = np.mean(gap <= TOL)
    print(
        f"objective ||A - C B C^T||^2: degen no worse (within {TOL:g}) on "
        f"{100 * no_worse:.1f}% of pairs; degen lower on "
        f"{100 * np.mean(gap < -TOL):.1f}%; largest excess {gap.max():+.2e}; "
        f"median degen {np.median(ours_obj):.4f}, dsa-metric {np.median(ref_obj):.4f}"
    )
    print(f"target (>= 95% no worse): {'met' if no_worse >= 0.95 else 'NOT met'}")
    print(f"{load()} (after)")


if __name__ == "__main__":
    main()
