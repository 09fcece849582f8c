"""Permutation-invariant distance between recurrent weight matrices.

``d(W1, W2) = min over permutations P of ||W1 - P^T W2 P||_F``: one
permutation relabels both the rows and the columns of ``W2`` (hidden units
have no fixed order), so finding it is a quadratic assignment problem (QAP),
NP-hard in general. We solve it approximately: several solvers each propose a
permutation, optionally polished by 2-opt label swaps; a tabu search over label
swaps then starts from the best of them; every proposal is scored by the exact
objective and the best is kept. The result is therefore an upper bound on the
true distance, never below it, and never above the identity match
``||W1 - W2||_F`` when ``"identity"`` is among the methods.

All pairs of an ensemble are solved in batches: the FAQ steps and the swap
searches are array operations over a batch of pairs, the per-pair linear
assignments the only per-pair calls; large jobs spread the batches over one
worker process per CPU core (torch is kept to one thread meanwhile and
restored afterwards). At n = 128 a pair takes about 0.1 s of one core, of
which the tabu search is two thirds and FAQ most of the rest.

A permutation is an index array ``perm``; the relabelled ``W2`` is
``W2[np.ix_(perm, perm)]``, i.e. unit ``i`` of ``W1`` is matched to unit
``perm[i]`` of ``W2``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment, quadratic_assignment
from scipy.spatial.distance import cdist
from tqdm.auto import tqdm

from degen.config import ConfigError, check_choice, check_range

logger = logging.getLogger(__name__)

METHODS = ("identity", "signature", "faq", "gw")
# GW costs ~0.5 s per pair at n = 128 and never won there (it is close to FAQ
# from the barycenter), so it is available but not a default.
DEFAULT_METHODS = ("identity", "signature", "faq")
# Conditional-gradient steps for GW: it converges in tens of steps on most
# pairs but can cycle to POT's default cap of 10,000 (seconds even at n = 6).
GW_MAX_ITER = 200
BRUTE_FORCE_MAX_N = 8  # 8! = 40,320 permutations; 9! is already 362,880
FAQ_MAX_ITER, FAQ_TOL = 30, 0.03  # scipy's defaults for method="faq"
# Pairs per batch: fewer pay more Python overhead per pair, more push the
# arrays each swap step sweeps (G and H, 128 KB per pair at n = 128) out of
# cache; 16 to 48 ran alike.
BATCH_PAIRS = 32
# Pairs x n^2 x search steps above which weight_distance_matrix uses worker
# processes: about a second of work (30 pairs at n = 128 and 2000 steps).
POOL_MIN_WORK = 1e9
RESYNC_EVERY = 256  # swap steps between recomputations; float32 drift stays ~1e-6
# Steps a swapped unit may not take its old label back: [low, high), drawn anew
# each step. On 240 pairs at n = 128 and 1000 steps, [12, 20) was no worse
# than scipy's best of 5 FAQ runs on 98.8% of them; [6, 12), [8, 16),
# [16, 28) and [20, 40) on 96-98%.
TABU_TENURE = (12, 20)
# The cap on tabu steps per unit: 2000 steps at n = 128 are needed, but at
# n = 6 (720 labellings) a few hundred already find the optimum.
TABU_STEPS_PER_UNIT = 25
# The gain of a swap that may not be taken: finite, because -inf in the gains
# made the rank-6 update 60% slower.
_NO_SWAP = np.float32(-1e30)


@dataclass(frozen=True)
class WeightDistanceConfig:
    """Which QAP solvers propose permutations, and how hard to search from them.

    methods: candidate sources, each scored by the exact objective. ``"faq"``
        starts from the best earlier candidate (``faq_seeded``), or from the
        barycenter (``faq``) when it is the only method.
    faq_restarts: extra FAQ runs from random doubly stochastic starts.
    two_opt_passes: the 2-opt polish of each candidate makes at most
        ``passes * n`` swaps; 0 turns the polish off.
    tabu_iters: steps of the tabu search from the best candidate, at most
        ``TABU_STEPS_PER_UNIT * n`` (small matrices need few); 0 turns it
        off. On 240 pairs of trained flip-flop networks (n = 128) the result
        was no worse than the best of 5 scipy FAQ runs on 99.6% of pairs with
        2000 steps (98.8% with 1000, 51% with FAQ alone).
    normalize: divide distances by ``n * n`` (PAPER: when widths differ).
    seed: seeds the random FAQ starts and the tabu tenures; the same seed gives
        the same result.
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    faq_restarts: int = 0
    two_opt_passes: int = 0
    tabu_iters: int = 2000
    normalize: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        owner = "WeightDistanceConfig"
        if isinstance(self.methods, str) or not self.methods:
            raise ConfigError(
                f"{owner}.methods = {self.methods!r}; it must be a non-empty "
                f"tuple of names from {list(METHODS)}"
            )
        # A list from YAML is accepted; the frozen config stores a tuple.
        object.__setattr__(self, "methods", tuple(self.methods))
        for method in self.methods:
            check_choice(owner, "methods", method, METHODS)
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(
                f"{owner}.methods = {self.methods!r} names a method twice"
            )
        check_range(owner, "faq_restarts", self.faq_restarts, 0)
        check_range(owner, "two_opt_passes", self.two_opt_passes, 0)
        check_range(owner, "tabu_iters", self.tabu_iters, 0)
        check_range(owner, "seed", self.seed, 0)


# eq=False: dataclass equality would compare the perm arrays with ``==``,
# which is ambiguous for NumPy arrays.
@dataclass(frozen=True, eq=False)
class PermutationMatch:
    """The best permutation found and how it was found.

    distance: ``||W1 - W2[np.ix_(perm, perm)]||_F`` (divided by ``n * n``
        when the config says normalize).
    perm: read-only index array, unit ``i`` of W1 <-> unit ``perm[i]`` of W2.
    method: the candidate that won, with ``"+2opt"`` when the polish helped
        and ``"+tabu"`` when the tabu search did.
    candidates: every candidate's distance, in the same units as distance.
    """

    distance: float
    perm: np.ndarray
    method: str
    candidates: dict[str, float]


def permutation_distance(
    w1_nxn: Any,
    w2_nxn: Any,
    config: WeightDistanceConfig | None = None,
) -> PermutationMatch:
    """Permutation-invariant Frobenius distance, 0 means identical up to relabelling.

    Inputs are NumPy arrays or CPU torch tensors of any float or integer dtype,
    computed in float64 and never modified. The distance is an upper bound on
    the exact minimum (a heuristic), so it is not exactly symmetric: when the
    solvers miss the optimum in one direction, ``d(W1, W2)`` and ``d(W2, W1)``
    differ. On random Gaussian pairs most agree to rounding; the largest gaps
    we measured were 5% of the distance at n = 6 and 2% at n = 16 to 32.
    """
    config = WeightDistanceConfig() if config is None else config
    a_nxn, b_nxn = _as_pair(w1_nxn, w2_nxn)
    with _one_torch_thread():
        return _match_batch(a_nxn[None], b_nxn[None], config)[0]


def weight_distance_matrix(
    w_kxnxn: Any,
    config: WeightDistanceConfig | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Pairwise permutation distances [k, k], 0 means identical up to relabelling.

    ``w_kxnxn`` is a stack of k recurrent matrices (array, tensor, or sequence
    of [n, n] matrices). Each unordered pair is solved once, as
    ``permutation_distance(w[i], w[j])`` with ``i < j`` (with the same result),
    and mirrored, so the result is exactly symmetric with a zero diagonal.
    Large jobs run in one worker process per CPU core; the result does not
    depend on how many. Outside Linux the workers are spawned, which re-imports
    the calling script: call it under ``if __name__ == "__main__":`` there.
    """
    config = WeightDistanceConfig() if config is None else config
    mats = np.stack(_as_stack(w_kxnxn))
    k, n = mats.shape[:2]
    dist_kxk = np.zeros((k, k))
    pairs = list(itertools.combinations(range(k), 2))
    batches = [pairs[s : s + BATCH_PAIRS] for s in range(0, len(pairs), BATCH_PAIRS)]
    workers = min(_n_cores(), len(batches))
    steps = max(
        min(config.tabu_iters, TABU_STEPS_PER_UNIT * n), config.two_opt_passes * n
    )
    work = len(pairs) * n * n * max(steps, 1)
    bar = tqdm(total=len(pairs), desc="weight distance", disable=not progress)
    with _one_torch_thread():
        if workers > 1 and work >= POOL_MIN_WORK:
            results = _solve_in_processes(mats, batches, config, workers)
        else:
            results = (_solve_batch(mats, batch, config) for batch in batches)
        for batch, dists in zip(batches, results, strict=True):
            i, j = np.array(batch).T
            dist_kxk[i, j] = dist_kxk[j, i] = dists
            bar.update(len(batch))
    bar.close()
    return dist_kxk


def brute_force_distance(w1_nxn: Any, w2_nxn: Any) -> PermutationMatch:
    """Exact permutation distance by trying all n! relabellings, 0 means identical.

    The slow reference for ``permutation_distance``; refuses n > 8.
    Ties go to the permutation that comes first in lexicographic order.
    """
    a_nxn, b_nxn = _as_pair(w1_nxn, w2_nxn)
    n = a_nxn.shape[0]
    if n > BRUTE_FORCE_MAX_N:
        raise ValueError(
            f"brute_force_distance tries all n! permutations; n = {n} gives "
            f"{math.factorial(n):,}. Use n <= {BRUTE_FORCE_MAX_N}, or "
            "permutation_distance for larger matrices"
        )
    best_dist, best_perm = math.inf, np.arange(n)
    for perm_tuple in itertools.permutations(range(n)):
        perm = np.array(perm_tuple, dtype=np.intp)
        dist = float(np.linalg.norm(a_nxn - b_nxn[np.ix_(perm, perm)]))
        if dist < best_dist:
            best_dist, best_perm = dist, perm
    best_perm.flags.writeable = False
    return PermutationMatch(
        distance=best_dist,
        perm=best_perm,
        method="brute_force",
        candidates={"brute_force": best_dist},
    )


# --- threads and processes ----------------------------------------------------


def _n_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch at one intra-op thread, restored on exit.

    The batched matrix products are small (n = 128); with two OpenMP threads
    on two cores that other work also uses, each product waited on the slower
    thread and ran 3x slower than on one (and elementwise ops 40x). The
    worker processes of ``weight_distance_matrix`` use the cores instead.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _solve_batch(mats_kxnxn, batch, config) -> np.ndarray:
    """Distances [len(batch)] of the pairs (i, j) in ``batch``."""
    i, j = np.array(batch).T
    return np.array(
        [m.distance for m in _match_batch(mats_kxnxn[i], mats_kxnxn[j], config)]
    )


_worker_mats: np.ndarray | None = None  # the stack, in a worker process


def _start_worker(mats_kxnxn: np.ndarray) -> None:
    global _worker_mats
    _worker_mats = mats_kxnxn
    torch.set_num_threads(1)


def _solve_in_worker(batch, config) -> np.ndarray:
    return _solve_batch(_worker_mats, batch, config)


def _solve_in_processes(mats_kxnxn, batches, config, workers) -> Iterator[np.ndarray]:
    """Each batch's distances, in order, from ``workers`` processes.

    Processes, not threads: the swap search is many small NumPy operations
    that hold the GIL, and two threads ran it no faster than one (two
    processes: twice as fast). Linux forks (no start-up cost); elsewhere the
    workers are spawned, which re-imports the calling script: guard it with
    ``if __name__ == "__main__":``.
    """
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_start_worker,
        initargs=(mats_kxnxn,),
    )
    with pool:
        yield from pool.map(_solve_in_worker, batches, itertools.repeat(config))


# --- the matcher ------------------------------------------------------------


def _match_batch(
    a_pxnxn: np.ndarray, b_pxnxn: np.ndarray, config: WeightDistanceConfig
) -> list[PermutationMatch]:
    """Best permutation over all candidates for each of p pairs (float64 inputs).

    Every step treats each pair on its own, so a pair's result does not depend
    on which other pairs share the batch.
    """
    n_pairs, n = a_pxnxn.shape[:2]
    perms: dict[str, np.ndarray] = {}  # name -> [p, n]
    if n <= 1:
        # One labelling only; the solvers have nothing to choose.
        perms["identity"] = np.zeros((n_pairs, n), dtype=np.intp)
    else:
        if "identity" in config.methods:
            perms["identity"] = np.tile(np.arange(n), (n_pairs, 1))
        if "signature" in config.methods:
            perms["signature"] = np.stack(
                [_signature_perm(a, b) for a, b in zip(a_pxnxn, b_pxnxn, strict=True)]
            )
        if "faq" in config.methods:
            perms.update(_faq_candidates(a_pxnxn, b_pxnxn, perms, config))
        if "gw" in config.methods:
            perms["gw"] = np.stack(
                [_gw_perm(a, b) for a, b in zip(a_pxnxn, b_pxnxn, strict=True)]
            )
    sq = {name: _sq_batch(a_pxnxn, b_pxnxn, perm) for name, perm in perms.items()}

    if n > 1 and config.two_opt_passes > 0:
        # Polishing every candidate, not only the best, finds the exact optimum
        # far more often (37 versus 23 of 40 random 6 x 6 pairs). All
        # candidates of all pairs go through one batched descent.
        names = list(perms)
        polished = _swap_search(
            np.tile(a_pxnxn, (len(names), 1, 1)),
            np.tile(b_pxnxn, (len(names), 1, 1)),
            np.concatenate([perms[name] for name in names]),
            config.two_opt_passes * n,
            tabu=False,
        ).reshape(len(names), n_pairs, n)
        for name, perm in zip(names, polished, strict=True):
            perms[f"{name}+2opt"] = perm
            sq[f"{name}+2opt"] = _sq_batch(a_pxnxn, b_pxnxn, perm)

    # Per pair: candidate name -> (squared distance, perm), in insertion order.
    per_pair = [
        {name: (sq[name][q], perms[name][q]) for name in perms} for q in range(n_pairs)
    ]
    if n > 1 and config.tabu_iters > 0:
        # min() keeps the first of equal scores, as the final choice does.
        starts = [min(cands, key=lambda k, c=cands: c[k][0]) for cands in per_pair]
        start_pxn = np.stack(
            [cands[s][1] for cands, s in zip(per_pair, starts, strict=True)]
        )
        found = _swap_search(
            a_pxnxn,
            b_pxnxn,
            start_pxn,
            min(config.tabu_iters, TABU_STEPS_PER_UNIT * n),
            tabu=True,
            seed=config.seed,
        )
        found_sq = _sq_batch(a_pxnxn, b_pxnxn, found)
        for q, (cands, start) in enumerate(zip(per_pair, starts, strict=True)):
            cands[f"{start}+tabu"] = (found_sq[q], found[q])

    scale = 1.0 / (n * n) if config.normalize and n > 0 else 1.0
    return [_to_match(cands, scale) for cands in per_pair]


def _to_match(cands: dict[str, tuple[float, np.ndarray]], scale: float):
    # min() keeps the first of equal scores: unpolished before polished.
    method = min(cands, key=lambda name: cands[name][0])
    candidates = {name: math.sqrt(v) * scale for name, (v, _) in cands.items()}
    logger.debug("weight distance candidates %s; kept %s", candidates, method)
    perm = np.array(cands[method][1], dtype=np.intp)
    perm.flags.writeable = False
    return PermutationMatch(
        distance=candidates[method], perm=perm, method=method, candidates=candidates
    )


def _gather(b_pxnxn: np.ndarray, perm_pxn: np.ndarray) -> np.ndarray:
    """Each pair's relabelled matrix ``B[perm][:, perm]``, [p, n, n]."""
    rows = np.arange(len(perm_pxn))[:, None, None]
    return b_pxnxn[rows, perm_pxn[:, :, None], perm_pxn[:, None, :]]


def _sq_batch(a_pxnxn, b_pxnxn, perm_pxn) -> np.ndarray:
    """The exact objective, squared, per pair [p] (float64)."""
    diff = a_pxnxn - _gather(b_pxnxn, perm_pxn)
    return np.einsum("pij,pij->p", diff, diff)


def _sq(a_nxn: np.ndarray, b_nxn: np.ndarray, perm: np.ndarray) -> float:
    """The exact objective, squared: ``||A - B[perm][:, perm]||_F^2``."""
    return float(np.sum((a_nxn - b_nxn[np.ix_(perm, perm)]) ** 2))


def _signature_perm(a_nxn: np.ndarray, b_nxn: np.ndarray) -> np.ndarray:
    """Match units by label-free signatures with a linear assignment."""
    cost_nxn = cdist(_signatures(a_nxn), _signatures(b_nxn))
    _, perm = linear_sum_assignment(cost_nxn)
    return perm


def _signatures(w_nxn: np.ndarray) -> np.ndarray:
    """Per-unit features [n, 2n - 1] that a relabelling cannot change.

    Self-weight, then the sorted off-diagonal incoming weights (row) and
    outgoing weights (column): relabelling permutes the entries of each but
    sorting forgets the order, so a relabelled copy has the same signatures.
    """
    n = w_nxn.shape[0]
    off_nxn = ~np.eye(n, dtype=bool)
    rows_nxm = np.sort(w_nxn[off_nxn].reshape(n, n - 1), axis=1)
    cols_nxm = np.sort(w_nxn.T[off_nxn].reshape(n, n - 1), axis=1)
    return np.concatenate([np.diag(w_nxn)[:, None], rows_nxm, cols_nxm], axis=1)


# --- FAQ, batched -------------------------------------------------------------


def _faq_candidates(
    a_pxnxn: np.ndarray,
    b_pxnxn: np.ndarray,
    perms: dict[str, np.ndarray],
    config: WeightDistanceConfig,
) -> dict[str, np.ndarray]:
    """FAQ (Vogelstein et al. 2015) from the best earlier candidate, or from
    the barycenter when there is none, and from random starts: name -> [p, n].

    Minimising ``||A - B[p][:, p]||^2`` is maximising ``sum_ij A_ij B_{p_i p_j}``
    (the two squared norms do not depend on p), which is scipy's objective
    ``trace(A^T P B P^T)`` with ``P = I[p]``; scipy's ``col_ind`` is our p.
    """
    n_pairs, n = a_pxnxn.shape[:2]
    starts: dict[str, np.ndarray] = {}  # name -> start [p, n, n] or [n, n]
    if perms:
        sq_cxp = np.stack([_sq_batch(a_pxnxn, b_pxnxn, p) for p in perms.values()])
        perm_cxpxn = np.stack(list(perms.values()))
        # argmin keeps the first of equal scores.
        seed_pxn = perm_cxpxn[sq_cxp.argmin(0), np.arange(n_pairs)]
        starts["faq_seeded"] = np.eye(n)[seed_pxn]  # P0[i, seed[i]] = 1
    else:
        starts["faq"] = np.full((n, n), 1.0 / n)
    rng = np.random.default_rng(config.seed)
    for r in range(config.faq_restarts):
        # scipy's "randomized" start: halfway between J and a random doubly
        # stochastic matrix. One draw per restart, shared by all pairs.
        k_nxn = _doubly_stochastic(rng.uniform(size=(n, n)))
        starts[f"faq_random{r}"] = (np.full((n, n), 1.0 / n) + k_nxn) / 2
    p0_mxnxn = np.concatenate(
        [np.broadcast_to(s, (n_pairs, n, n)) for s in starts.values()]
    )
    n_starts = len(starts)
    found = _faq_batch(
        np.tile(a_pxnxn, (n_starts, 1, 1)), np.tile(b_pxnxn, (n_starts, 1, 1)), p0_mxnxn
    )
    return {
        name: found[i * n_pairs : (i + 1) * n_pairs] for i, name in enumerate(starts)
    }


def _doubly_stochastic(p_nxn: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Sinkhorn scaling of a positive matrix until rows and columns sum to 1."""
    col = 1.0 / p_nxn.sum(0)
    row = 1.0 / (p_nxn @ col)
    out = p_nxn
    for _ in range(1000):
        if (np.abs(out.sum(1) - 1) < tol).all() and (
            np.abs(out.sum(0) - 1) < tol
        ).all():
            break
        col = 1.0 / (row @ p_nxn)
        row = 1.0 / (p_nxn @ col)
        out = row[:, None] * p_nxn * col
    return out


def _faq_batch(
    a_mxnxn: np.ndarray,
    b_mxnxn: np.ndarray,
    p0_mxnxn: np.ndarray,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """FAQ on m problems at once from doubly stochastic starts: perms [m, n].

    scipy's algorithm, step size and stopping rule (``maxiter=30``,
    ``tol=0.03``), maximising ``trace(A^T P B P^T)``; the linear assignments
    are the only per-problem calls. ``M = A P B^T`` and ``N = A^T P B`` (the
    gradient is ``M + N``) are linear in P, so they follow P through each
    convex step and a step costs two products instead of four.
    """
    m, n = a_mxnxn.shape[:2]
    a = torch.from_numpy(a_mxnxn).to(dtype)
    b = torch.from_numpy(b_mxnxn).to(dtype)
    at, bt = a.transpose(1, 2), b.transpose(1, 2).contiguous()
    x = torch.from_numpy(np.ascontiguousarray(p0_mxnxn)).to(dtype)
    m_mxnxn, n_mxnxn = a @ x @ bt, at @ x @ b
    rows = torch.arange(m)[:, None]
    q_mxn = np.tile(np.arange(n), (m, 1))
    active = np.ones(m, dtype=bool)
    for _ in range(FAQ_MAX_ITER):
        grad = (m_mxnxn + n_mxnxn).numpy()
        for i in np.flatnonzero(active):
            q_mxn[i] = linear_sum_assignment(grad[i], maximize=True)[1]
        q = torch.from_numpy(q_mxn)
        # Q = I[q]: A Q B^T = A @ B^T[q] and A^T Q B = A^T @ B[q].
        mq, nq = a @ bt[rows, q], at @ b[rows, q]
        q_idx = q[:, :, None]
        f_pp = (x * m_mxnxn).sum((1, 2))
        f_pq = (x * mq).sum((1, 2))
        f_qp = m_mxnxn.gather(2, q_idx).sum((1, 2))
        f_qq = mq.gather(2, q_idx).sum((1, 2))
        # The objective at alpha P + (1 - alpha) Q is qa alpha^2 + qb alpha + c.
        qa = f_pp - f_pq - f_qp + f_qq
        qb = f_qp + f_pq - 2 * f_qq
        vertex = -qb / (2 * qa)
        inside = (qa < 0) & (vertex >= 0) & (vertex <= 1)
        alpha = torch.where(inside, vertex, (qa + qb > 0).to(dtype))
        alpha[torch.from_numpy(~active)] = 1.0  # finished problems stay put
        # ||P - Q||_F^2 = ||P||^2 - 2 sum_i P[i, q_i] + n
        gap = (x * x).sum((1, 2)) - 2 * x.gather(2, q_idx).sum((1, 2)) + n
        step = (1 - alpha) * gap.clamp(min=0).sqrt() / math.sqrt(n)
        q_dense = torch.zeros_like(x).scatter_(2, q_idx, 1.0)
        w = alpha[:, None, None]
        x = w * x + (1 - w) * q_dense
        m_mxnxn = w * m_mxnxn + (1 - w) * mq
        n_mxnxn = w * n_mxnxn + (1 - w) * nq
        active &= ~(step < FAQ_TOL).numpy()
        if not active.any():
            break
    # Project onto the permutations: the one closest to P.
    return np.stack([linear_sum_assignment(p, maximize=True)[1] for p in x.numpy()])


def _gw_perm(a_nxn: np.ndarray, b_nxn: np.ndarray) -> np.ndarray:
    """Gromov-Wasserstein coupling of the two matrices, rounded to a permutation.

    With the square loss and a coupling ``T = P / n``, GW's objective is the
    squared Frobenius objective divided by n^2; the relaxation's optimum is
    rounded to the permutation carrying the most mass. ``T[i, j]`` couples
    unit i of A to unit j of B, so the assignment's column indices are p.
    """
    n = a_nxn.shape[0]
    p_n = np.full(n, 1.0 / n)
    coupling_nxn = ot.gromov.gromov_wasserstein(
        a_nxn,
        b_nxn,
        p_n,
        p_n,
        loss_fun="square_loss",
        symmetric=False,
        max_iter=GW_MAX_ITER,
    )
    _, perm = linear_sum_assignment(-np.asarray(coupling_nxn))
    return perm


# --- label swaps: 2-opt descent and tabu search, batched -----------------------


def _swap_search(
    a_pxnxn: np.ndarray,
    b_pxnxn: np.ndarray,
    perm_pxn: np.ndarray,
    n_steps: int,
    *,
    tabu: bool,
    seed: int = 0,
    dtype: type = np.float32,
) -> np.ndarray:
    """Best-improvement label swaps from ``perm`` on p problems at once; the
    best permutation each problem visited [p, n].

    ``tabu=False`` is the 2-opt descent: a problem stops when no swap lowers
    the objective. ``tabu=True`` is a robust tabu search (Taillard 1991): it
    always takes the best swap that is not tabu, so it climbs out of local
    minima; a swap is tabu when it would give both units back labels they held
    within the last ``TABU_TENURE`` steps, unless it reaches a new best. The
    gains of all swaps are updated in O(n^2) per step (see ``_SwapState``);
    with float32 they drift, so they are recomputed every ``RESYNC_EVERY``
    steps, and the caller scores the result exactly.
    """
    n_probs, n = perm_pxn.shape
    state = _SwapState(a_pxnxn, b_pxnxn, perm_pxn, dtype)
    rows = state.rows
    cur = _sq_batch(a_pxnxn, b_pxnxn, state.perm)
    best, best_perm = cur.copy(), state.perm.copy()
    # Gains below this are rounding: float32 carries ~7 digits of |A|^2 + |B|^2.
    scale = np.einsum("pij,pij->p", a_pxnxn, a_pxnxn)
    scale += np.einsum("pij,pij->p", b_pxnxn, b_pxnxn)
    tol = scale * (1e-6 if np.dtype(dtype) == np.float32 else 1e-12)
    if tabu:
        tabu_list = _TabuList(n_probs, n, n_steps, seed)
    gain_flat = state.gain.reshape(n_probs, n * n)
    for step in range(n_steps):
        if tabu:
            rs, gain = tabu_list.choose(state, step, cur - best + tol)
        else:
            flat = gain_flat.argmax(1)
            gain = gain_flat[rows, flat].astype(np.float64)
            # No improving swap left: swap unit 0 with itself, a no-op.
            stop = gain <= tol / 2
            if stop.all():
                break
            flat[stop], gain[stop] = 0, 0.0
            rs = np.stack(np.divmod(flat, n), 1)
        labels = state.perm[rows[:, None], rs]
        if tabu:
            tabu_list.record(rs, labels, step)
        state.swap(rs, labels)
        cur -= 2 * gain  # gains are in <A, C>; the squared norm moves by twice
        better = cur < best - tol
        best_perm[better], best[better] = state.perm[better], cur[better]
        if (step + 1) % RESYNC_EVERY == 0:
            state.resync()
            cur = _sq_batch(a_pxnxn, b_pxnxn, state.perm)
    return best_perm


class _TabuList:
    """Which swaps are tabu, for p problems.

    ``until[x, j]`` is the step until which unit x may not take label j back;
    a swap (x, y) is tabu while both units would get such a label. Only
    entries set in the last ``TABU_TENURE[1]`` steps can be live, so those
    are kept in a ring of (unit, label, until) to look the tabu swaps up.
    """

    def __init__(self, n_probs: int, n: int, n_steps: int, seed: int):
        low, high = TABU_TENURE
        self.tenure = np.random.default_rng(seed).integers(low, high, n_steps)
        self.until = np.full((n_probs, n, n), -1, dtype=np.int32)
        self.unit = np.zeros((n_probs, 2 * high), dtype=np.intp)
        self.label = np.zeros_like(self.unit)
        self.ring_until = np.full(self.unit.shape, -1, dtype=np.int32)

    def record(self, rs_px2, labels_px2, step: int) -> None:
        """Units r, s swap away their labels: neither may take its back."""
        until = step + self.tenure[step]
        self.until[np.arange(len(rs_px2))[:, None], rs_px2, labels_px2] = until
        slot = 2 * (step % (self.unit.shape[1] // 2))
        self.unit[:, slot : slot + 2], self.label[:, slot : slot + 2] = (
            rs_px2,
            labels_px2,
        )
        self.ring_until[:, slot : slot + 2] = until

    def choose(self, state: _SwapState, step: int, to_beat: np.ndarray):
        """The swap ``[r, s]`` each problem takes, [p, 2], and its gain [p].

        The best swap that is not tabu; the best tabu one instead when it is
        better still and its gain beats ``to_beat`` (it reaches a new best:
        aspiration), or when every swap is tabu.
        """
        n_probs, n = state.perm.shape
        rows, rows1 = state.rows, state.rows[:, None]
        gain, gain_flat = state.gain, state.gain.reshape(n_probs, n * n)
        # Ring entry (x, j) makes swap (x, y) tabu, y the unit now labelled j,
        # while its time lasts and y may not take x's label either.
        x, y = self.unit, state.inv[rows1, self.label]
        live = self.until[rows1, y, state.perm[rows1, x]] > step
        live &= self.ring_until > step
        qi, ki = np.nonzero(live)
        xs, ys = x[qi, ki], y[qi, ki]
        saved = gain[qi, xs, ys]
        # The best tabu swap, then the best of the rest with the tabu ones
        # masked in place (and restored).
        tabu_gain = np.full(n_probs, _NO_SWAP)
        np.maximum.at(tabu_gain, qi, saved)
        gain[qi, xs, ys] = gain[qi, ys, xs] = _NO_SWAP
        flat = gain_flat.argmax(1)
        free_gain = gain_flat[rows, flat]
        gain[qi, xs, ys] = gain[qi, ys, xs] = saved
        take_tabu = (tabu_gain > free_gain) & (
            (2 * tabu_gain > to_beat) | (free_gain <= _NO_SWAP)
        )
        rs = np.stack(np.divmod(flat, n), 1)
        if take_tabu.any():
            # Where the best tabu swap is taken, find which one it was.
            hit = take_tabu[qi] & (saved == tabu_gain[qi])
            rs[qi[hit], 0], rs[qi[hit], 1] = xs[hit], ys[hit]
        return rs, np.where(take_tabu, tabu_gain, free_gain).astype(np.float64)


class _SwapState:
    """Labels and swap gains of p problems, updated swap by swap.

    With ``C = B[perm][:, perm]`` (never formed: its rows and columns are
    gathered from B), keeps ``H = A C^T + A^T C``, ``diag C`` and
    ``G[u, v]``, the rise in ``<A, C>`` when labels u and v are swapped (half
    the drop in ``||A - C||^2``), with ``_NO_SWAP`` on the diagonal.
    """

    def __init__(self, a_pxnxn, b_pxnxn, perm_pxn, dtype):
        self.perm = np.array(perm_pxn, dtype=np.intp)
        n_probs, n = self.perm.shape
        self.rows = np.arange(n_probs)
        self.inv = np.empty_like(self.perm)
        self.inv[self.rows[:, None], self.perm] = np.arange(n)
        self.a = a_pxnxn.astype(dtype)
        # A^T then A, and B^T then B: a unit's column and row in one gather.
        self.lines_a = np.stack([self.a.transpose(0, 2, 1), self.a], 1)
        b = b_pxnxn.astype(dtype)
        self.lines_b = np.stack([b.transpose(0, 2, 1), b], 1).reshape(-1)
        # Flat index of row 0 of B^T and of B in lines_b, per problem [p, 2, 1].
        self.first_row = (self.rows[:, None, None] * 2 + np.arange(2)[:, None]) * n
        self.da = np.ascontiguousarray(np.diagonal(self.a, axis1=1, axis2=2))
        self.h = np.empty_like(self.a)
        self.gain = np.empty_like(self.a)
        self.resync()

    def resync(self) -> None:
        """H, diag C and G from scratch."""
        n_probs, n = self.perm.shape
        c = _gather(self.lines_b.reshape(n_probs, 2, n, n)[:, 1], self.perm)
        a_t, c_t = torch.from_numpy(self.a), torch.from_numpy(c)
        torch.baddbmm(
            a_t.transpose(1, 2) @ c_t,
            a_t,
            c_t.transpose(1, 2),
            out=torch.from_numpy(self.h),
        )
        self.dc = np.ascontiguousarray(np.diagonal(c, axis1=1, axis2=2))
        self.gain[...] = _swap_gain_from(self.a, c, self.h)

    def swap(self, rs_px2: np.ndarray, labels_px2: np.ndarray) -> None:
        """Swap the labels of units ``rs[i] = [r, s]`` of problem i, for all i;
        ``labels`` are their labels before the swap."""
        n_probs, n = self.perm.shape
        rows, rows1 = self.rows, self.rows[:, None]
        flipped = rs_px2[:, ::-1]
        a_lines = self.lines_a[
            rows[:, None, None], np.arange(2)[:, None], rs_px2[:, None]
        ]
        # Columns then rows of C for r and s: [:, 0, k] = C[:, u_k], [:, 1, k]
        # = C[u_k, :]; one gather by flat index into B^T and B.
        c_lines = self.lines_b[
            ((self.first_row + labels_px2[:, None, :]) * n)[..., None]
            + self.perm[:, None, None, :]
        ]
        # With d = e_r - e_s and S = I - d d^T, C' = S C S and
        # H' = (H - A d (C d)^T - A^T d (C^T d)^T) S.
        a_d = a_lines[:, :, 0] - a_lines[:, :, 1]  # [A d, A^T d], [p, 2, n]
        c_d = c_lines[:, :, 0] - c_lines[:, :, 1]  # [C d, C^T d]
        torch.from_numpy(self.h).baddbmm_(
            torch.from_numpy(a_d.transpose(0, 2, 1)), torch.from_numpy(c_d), alpha=-1
        )
        self.h[rows1, :, rs_px2] = self.h[rows1, :, flipped]
        self.perm[rows1, rs_px2] = labels_px2[:, ::-1]
        self.inv[rows1, labels_px2] = flipped
        self.dc[rows1, rs_px2] = self.dc[rows1, flipped]
        # The lines of C' = S C S: the other unit's, entries r and s swapped.
        c_lines = c_lines[:, :, ::-1].copy()
        at_rs = rs_px2[:, None, None, :]
        pair = np.take_along_axis(c_lines, at_rs, 3)
        np.put_along_axis(c_lines, at_rs, pair[..., ::-1], 3)
        # A swap (u, v) disjoint from {r, s} changes its gain by
        # (al_u - al_v)(be_u - be_v) + (ga_u - ga_v)(de_u - de_v) (Taillard
        # 1991), here a rank-6 update; the rows and columns r, s are redone.
        new_d = c_lines[:, :, 1] - c_lines[:, :, 0]  # [de, be]
        left = np.empty((n_probs, 6, n), dtype=self.a.dtype)
        right = np.empty_like(left)
        left[:, 0] = right[:, 1] = np.einsum("pkn,pkn->pn", a_d, new_d)
        left[:, 1] = right[:, 0] = 1.0
        left[:, 2:4], left[:, 4:6] = a_d, new_d
        np.negative(new_d, out=right[:, 2:4])
        np.negative(a_d, out=right[:, 4:6])
        torch.from_numpy(self.gain).baddbmm_(
            torch.from_numpy(left.transpose(0, 2, 1)), torch.from_numpy(right)
        )
        new_2xn = self._gain_lines(rs_px2, a_lines.sum(1), c_lines.sum(1))
        self.gain[rows1, rs_px2] = new_2xn
        self.gain[rows1, :, rs_px2] = new_2xn
        self.gain.reshape(n_probs, n * n)[:, :: n + 1] = _NO_SWAP

    def _gain_lines(self, rs_px2, a_sym_px2xn, c_sym_px2xn) -> np.ndarray:
        """``G[u, :]`` for the two units u of each problem, [p, 2, n], from
        their lines ``A[u, :] + A[:, u]`` and ``C[u, :] + C[:, u]``: ``G`` of
        ``_swap_gain_from`` written out for one row."""
        rows1 = self.rows[:, None]
        da, dc = self.da, self.dc
        w = da * dc - np.diagonal(self.h, axis1=1, axis2=2)
        da_u, dc_u, w_u = (v[rows1, rs_px2][:, :, None] for v in (da, dc, w))
        da_v, dc_v, w_v = da[:, None, :], dc[:, None, :], w[:, None, :]
        out = self.h[rows1, rs_px2] + self.h[rows1, :, rs_px2]
        out += a_sym_px2xn * (c_sym_px2xn - dc_u - dc_v)
        out -= (da_u + da_v) * c_sym_px2xn
        out += w_u + w_v + da_u * dc_v + da_v * dc_u
        return out


def _swap_gain_from(a_pxnxn, c_pxnxn, h_pxnxn) -> np.ndarray:
    """``G[u, v]``: rise in ``<A, C>`` when labels u and v of C are swapped.

    ``G = Y + Y^T`` with ``Y = H + (A - a_u)(C + C^T) - c_u (A + A^T)
    + a_u c_u - h_u + a_u c_v``, where ``H = A C^T + A^T C``, ``a = diag A``,
    ``c = diag C``, ``h = diag H``: the rows and columns of the swapped pair
    summed through H, minus the entries H counts inside the 2 x 2 block, plus
    the block itself (the terms of ``_swap_gain``, collected so that each
    transpose is taken once). The diagonal is ``_NO_SWAP``.
    """
    n_probs, n = a_pxnxn.shape[:2]
    da = np.diagonal(a_pxnxn, axis1=1, axis2=2)[:, :, None]
    dc = np.diagonal(c_pxnxn, axis1=1, axis2=2)[:, :, None]
    dh = np.diagonal(h_pxnxn, axis1=1, axis2=2)[:, :, None]
    y = h_pxnxn + (a_pxnxn - da) * (c_pxnxn + c_pxnxn.transpose(0, 2, 1))
    y -= dc * (a_pxnxn + a_pxnxn.transpose(0, 2, 1))
    y += da * dc - dh + da * dc.transpose(0, 2, 1)
    gain = y + y.transpose(0, 2, 1)
    gain.reshape(n_probs, n * n)[:, :: n + 1] = _NO_SWAP
    return gain


# --- slow references for the tests ----------------------------------------------


def _faq_reference(a_nxn, b_nxn, p0_nxn) -> np.ndarray:
    """scipy's FAQ from the start ``p0``: the slow reference for ``_faq_batch``."""
    options = {"maximize": True, "P0": p0_nxn}
    return quadratic_assignment(a_nxn, b_nxn, method="faq", options=options).col_ind


def _two_opt(
    a_nxn: np.ndarray, b_nxn: np.ndarray, perm: np.ndarray, passes: int
) -> np.ndarray:
    """Best-improvement label swaps, at most ``passes * n`` of them.

    The gains of all swaps come from ``_swap_gain`` at once. A swap changes
    ``C = B[perm][:, perm]`` to ``S C S`` (S exchanges u and v, ``S = I - d d^T``
    with ``d = e_u - e_v``), so the products it needs follow by a rank-1 update
    and a column swap, O(n^2) instead of a fresh O(n^3) product. The chosen
    swap is accepted only if the exact objective drops, so rounding in the
    gains or the updates can never make the result worse.
    """
    perm = np.array(perm, dtype=np.intp)
    n = len(perm)
    c_nxn = b_nxn[np.ix_(perm, perm)]
    m_nxn, n_nxn = a_nxn @ c_nxn.T, a_nxn.T @ c_nxn
    best = float(np.sum((a_nxn - c_nxn) ** 2))
    for _ in range(passes * n):
        gain_nxn = _swap_gain(a_nxn, c_nxn, m_nxn, n_nxn)
        np.fill_diagonal(gain_nxn, _NO_SWAP)  # swapping a label with itself
        u, v = np.unravel_index(np.argmax(gain_nxn), gain_nxn.shape)
        if not gain_nxn[u, v] > 0:
            break
        trial = perm.copy()
        trial[[u, v]] = trial[[v, u]]
        c_trial = b_nxn[np.ix_(trial, trial)]
        value = float(np.sum((a_nxn - c_trial) ** 2))
        if not value < best:
            break
        # A S C^T S = (M - A d (C d)^T) S and A^T S C S = (N - A^T d d^T C) S.
        m_nxn = m_nxn - np.outer(a_nxn[:, u] - a_nxn[:, v], c_nxn[:, u] - c_nxn[:, v])
        n_nxn = n_nxn - np.outer(a_nxn[u] - a_nxn[v], c_nxn[u] - c_nxn[v])
        m_nxn[:, [u, v]] = m_nxn[:, [v, u]]
        n_nxn[:, [u, v]] = n_nxn[:, [v, u]]
        perm, c_nxn, best = trial, c_trial, value
    return perm


def _swap_gain(
    a_nxn: np.ndarray,
    c_nxn: np.ndarray,
    m_nxn: np.ndarray | None = None,
    n_nxn: np.ndarray | None = None,
) -> np.ndarray:
    """Drop in ``||A - C||_F^2`` when labels u and v of C are swapped, [u, v].

    Swapping relabels C to ``C[s][:, s]`` with s exchanging u and v. Only rows
    and columns u, v change, and ``||C||`` is fixed, so the drop is twice the
    change in ``sum A * C``: the rows u, v outside columns u, v, the columns
    u, v outside rows u, v, and the 2 x 2 block. Row and column sums over all
    entries come from ``M = A C^T`` and ``N = A^T C`` (computed when not
    given); the parts inside the block are then taken out and the block added.
    """
    a, c = a_nxn, c_nxn
    at, ct = a.T, c.T
    m_nxn = a @ ct if m_nxn is None else m_nxn
    n_nxn = at @ c if n_nxn is None else n_nxn
    au, av = np.diag(a)[:, None], np.diag(a)[None, :]  # A_uu, A_vv
    cu, cv = np.diag(c)[:, None], np.diag(c)[None, :]
    md, nd = np.diag(m_nxn), np.diag(n_nxn)
    rows_all = -(md[:, None] + md[None, :] - m_nxn - m_nxn.T)
    cols_all = -(nd[:, None] + nd[None, :] - n_nxn - n_nxn.T)
    rows_in_block = -(au - at) * (cu - ct) - (a - av) * (c - cv)
    cols_in_block = -(au - a) * (cu - c) - (at - av) * (ct - cv)
    block_after = au * cv + a * ct + at * c + av * cu
    block_before = au * cu + a * c + at * ct + av * cv
    return 2.0 * (
        rows_all - rows_in_block + cols_all - cols_in_block + block_after - block_before
    )


# --- input checks -------------------------------------------------------------


def _to_float64(w: Any, name: str) -> np.ndarray:
    """A float64 NumPy copy of an array or CPU tensor (the caller's is untouched)."""
    if type(w).__module__.startswith("torch"):
        if w.is_complex():
            raise TypeError(f"{name} is a complex tensor; expected real weights")
        # .double() before .numpy(): bfloat16 has no NumPy dtype.
        return w.detach().cpu().double().numpy().copy()
    arr = np.asarray(w)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {arr.dtype}; expected a float or integer array"
        )
    return np.array(arr, dtype=np.float64, copy=True)


def _check_finite(w: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(w)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite entries (NaN or Inf), the "
            f"first at index {tuple(int(i) for i in np.argwhere(bad)[0])}; "
            "the weight distance needs finite weights"
        )


def _as_matrix(w: Any, name: str) -> np.ndarray:
    arr = _to_float64(w, name)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(
            f"{name} has shape {arr.shape}; expected a square matrix [n, n]"
        )
    _check_finite(arr, name)
    return arr


def _as_pair(w1_nxn: Any, w2_nxn: Any) -> tuple[np.ndarray, np.ndarray]:
    a_nxn = _as_matrix(w1_nxn, "w1")
    b_nxn = _as_matrix(w2_nxn, "w2")
    if a_nxn.shape != b_nxn.shape:
        raise ValueError(
            f"w1 has shape {a_nxn.shape} and w2 has shape {b_nxn.shape}; the "
            "permutation distance needs two square matrices of the same width"
        )
    return a_nxn, b_nxn


def _as_stack(w_kxnxn: Any) -> list[np.ndarray]:
    if isinstance(w_kxnxn, (list, tuple)):
        mats = [_to_float64(w, f"network {i}") for i, w in enumerate(w_kxnxn)]
    else:
        stack = _to_float64(w_kxnxn, "w_kxnxn")
        if stack.ndim != 3:
            raise ValueError(
                f"w_kxnxn has shape {stack.shape}; expected a stack [k, n, n]"
            )
        mats = list(stack)
    shapes = [m.shape for m in mats]
    for i, mat in enumerate(mats):
        if mat.ndim != 2 or mat.shape[0] != mat.shape[1] or mat.shape != shapes[0]:
            raise ValueError(
                f"network {i} has shape {mat.shape}; every network must be a "
                f"square matrix of the same width (shapes: {shapes})"
            )
        _check_finite(mat, f"network {i}")
    return mats
