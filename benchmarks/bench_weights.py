"""Weight distance: degen's batched matcher against scipy's FAQ with 5 restarts
(the barycenter and 4 random starts), on every pair of the same networks.

The networks are the recurrent weights of a degen ensemble trained briefly on
the 3-bit flip-flop (random U(-1/sqrt(n), 1/sqrt(n)) initial weights moved by
a few epochs of training), so the pairs look like the ones the book compares.
Prints sizes, machine load, both timings and their ratio, and how degen's
distances compare with the reference's on each pair; ``--all-pairs`` also times
degen alone on every pair of a larger ensemble (50 networks by default).

Both sides get the same worker threads (one per core) and one BLAS thread
each, so neither gains from oversubscribing a shared machine.
"""

from __future__ import annotations

import os

# Before NumPy loads: one OpenBLAS thread per worker (the reference's products
# run on OpenBLAS; degen keeps torch to one thread itself).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _shared import load, trained_flipflop  # noqa: E402
from scipy.optimize import quadratic_assignment  # noqa: E402

from degen.metrics.weights import (  # noqa: E402
    WeightDistanceConfig,
    _n_cores,
    weight_distance_matrix,
)
from degen.model import resolve_device  # noqa: E402


def trained_weights(k: int, n: int, epochs: int, steps: int) -> np.ndarray:
    """``w_h`` [k, n, n] of an ensemble trained for ``epochs * steps`` steps."""
    _, model = trained_flipflop(k, n, epochs, steps)
    return model.w_h.detach().double().numpy()


def faq5(a: np.ndarray, b: np.ndarray, seed: int) -> float:
    """Best distance of scipy FAQ from the barycenter and 4 random starts."""
    rng = np.random.default_rng(seed)
    best = np.inf
    for p0 in ["barycenter"] + ["randomized"] * 4:
        options = {"maximize": True, "P0": p0, "rng": rng}
        perm = quadratic_assignment(a, b, method="faq", options=options).col_ind
        best = min(best, float(np.linalg.norm(a - b[np.ix_(perm, perm)])))
    return best


def reference(w: np.ndarray, workers: int) -> tuple[np.ndarray, float]:
    """scipy FAQ x 5 on every pair, spread over ``workers`` threads."""
    pairs = list(itertools.combinations(range(len(w)), 2))
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        dists = list(
            pool.map(
                lambda ij: faq5(w[ij[0]], w[ij[1]], 1000 + ij[0] * len(w) + ij[1]),
                pairs,
            )
        )
    return np.array(dists), time.perf_counter() - start


def ours(w: np.ndarray, config: WeightDistanceConfig) -> tuple[np.ndarray, float]:
    """degen's weight distance on every pair: (distances [pairs], seconds)."""
    start = time.perf_counter()
    dist_kxk = weight_distance_matrix(w, config)
    wall = time.perf_counter() - start
    i, j = np.triu_indices(len(w), 1)
    return dist_kxk[i, j], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--networks", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument(
        "--tabu-iters", type=int, default=WeightDistanceConfig.tabu_iters
    )
    parser.add_argument(
        "--all-pairs",
        action="store_true",
        help="also time degen alone on --all-networks",
    )
    parser.add_argument("--all-networks", type=int, default=50)
    parser.add_argument(
        "--device",
        default="cpu",
        help="accepted for `degen bench`; this benchmark runs on the CPU, where "
        "its reference runs",
    )
    args = parser.parse_args()
    if resolve_device(args.device).type != "cpu":
        print(f"--device {args.device}: this benchmark runs on the CPU only")
    k, n = args.networks, args.hidden
    config = WeightDistanceConfig(tabu_iters=args.tabu_iters)
    workers = _n_cores()
    blas = os.environ["OPENBLAS_NUM_THREADS"]
    print(
        f"cpu cores {os.cpu_count()}, workers {workers}, torch threads "
        f"{torch.get_num_threads()}, OPENBLAS_NUM_THREADS={blas}"
    )
    print(
        f"networks: degen ensemble, flipflop n_bits=3, trained {args.epochs} x "
        f"{args.steps_per_epoch} steps (batch 32)"
    )
    print(f"config: {config}")
    print(f"{load()} (before)")
    w = trained_weights(k, n, args.epochs, args.steps_per_epoch)
    ours(w[:3], config)  # warm-up
    n_pairs = k * (k - 1) // 2
    ref_d, ref_s = reference(w, workers)
    our_d, our_s = ours(w, config)
    print(f"sizes: {k} networks, n={n}, {n_pairs} pairs")
    print(f"scipy FAQ x5 : {ref_s:8.2f} s ({1e3 * ref_s / n_pairs:.0f} ms/pair)")
    print(f"degen        : {our_s:8.2f} s ({1e3 * our_s / n_pairs:.0f} ms/pair)")
    print(f"ratio (scipy / degen): {ref_s / our_s:.2f}x")
    gap = our_d / ref_d - 1
    no_worse = np.mean(gap <= 1e-12)
    print(
        f"objective: degen no worse on {100 * no_worse:.1f}% of pairs "
        f"({int((gap > 1e-12).sum())} worse); worst relative gap "
        f"{100 * gap.max():+.3f}%, "
        f"median {100 * np.median(gap):+.3f}%"
    )
    print(
        f"target (>= 99% no worse, never worse by > 1%): "
        f"{'met' if no_worse >= 0.99 and gap.max() <= 0.01 else 'NOT met'}"
    )
    print(f"{load()} (after comparison)")
    if args.all_pairs:
        big = args.all_networks
        w_big = trained_weights(big, n, args.epochs, args.steps_per_epoch)
        _, big_s = ours(w_big, config)
        m = big * (big - 1) // 2
        print(
            f"all pairs: {big} networks, n={n}, {m} pairs: degen {big_s:.1f} s "
            f"({1e3 * big_s / m:.0f} ms/pair); target < 120 s: "
            f"{'met' if big_s < 120 else 'NOT met'}"
        )
        print(f"{load()} (after all pairs)")


if __name__ == "__main__":
    main()
