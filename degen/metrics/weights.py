"""Permutation-invariant distance between recurrent weight matrices.

``d(W1, W2) = min over permutations P of ||W1 - P^T W2 P||_F``: one
permutation relabels both the rows and the columns of ``W2`` (hidden units
have no fixed order), so finding it is a quadratic assignment problem (QAP),
NP-hard in general. We solve it approximately: several solvers each propose a
permutation, each proposal is polished by 2-opt label swaps, and every
proposal, raw and polished, is scored by the exact objective; the best is
kept. The result is therefore an upper bound on the true distance, never
below it, and never above the identity match ``||W1 - W2||_F`` when
``"identity"`` is among the methods.

A permutation is an index array ``perm``; the relabelled ``W2`` is
``W2[np.ix_(perm, perm)]``, i.e. unit ``i`` of ``W1`` is matched to unit
``perm[i]`` of ``W2``.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import ot
from scipy.optimize import linear_sum_assignment, quadratic_assignment
from scipy.spatial.distance import cdist
from tqdm.auto import tqdm

from degen.config import ConfigError, check_choice, check_range

logger = logging.getLogger(__name__)

METHODS = ("identity", "signature", "faq", "gw")
# Conditional-gradient steps for GW: it converges in tens of steps on most
# pairs but can cycle to POT's default cap of 10,000 (seconds even at n = 6).
GW_MAX_ITER = 200
BRUTE_FORCE_MAX_N = 8  # 8! = 40,320 permutations; 9! is already 362,880


@dataclass(frozen=True)
class WeightDistanceConfig:
    """Which QAP solvers propose permutations, and how hard to polish.

    methods: candidate sources, each scored by the exact objective.
    faq_restarts: extra FAQ runs from random doubly stochastic starts.
    two_opt_passes: the 2-opt polish of each candidate makes at most
        ``passes * n`` swaps; 0 turns the polish off.
    normalize: divide distances by ``n * n`` (PAPER: when widths differ).
    seed: seeds the random FAQ starts; the same seed gives the same result.
    """

    methods: tuple[str, ...] = METHODS
    faq_restarts: int = 1
    two_opt_passes: int = 3
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
        check_range(owner, "seed", self.seed, 0)


# eq=False: dataclass equality would compare the perm arrays with ``==``,
# which is ambiguous for NumPy arrays.
@dataclass(frozen=True, eq=False)
class PermutationMatch:
    """The best permutation found and how it was found.

    distance: ``||W1 - W2[np.ix_(perm, perm)]||_F`` (divided by ``n * n``
        when the config says normalize).
    perm: read-only index array, unit ``i`` of W1 <-> unit ``perm[i]`` of W2.
    method: the candidate that won, with ``"+2opt"`` when the polish helped.
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
    return _match(a_nxn, b_nxn, config)


def weight_distance_matrix(
    w_kxnxn: Any,
    config: WeightDistanceConfig | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Pairwise permutation distances [k, k], 0 means identical up to relabelling.

    ``w_kxnxn`` is a stack of k recurrent matrices (array, tensor, or sequence
    of [n, n] matrices). Each unordered pair is solved once, as
    ``permutation_distance(w[i], w[j])`` with ``i < j``, and mirrored, so the
    result is exactly symmetric with a zero diagonal.
    """
    config = WeightDistanceConfig() if config is None else config
    mats = _as_stack(w_kxnxn)
    k = len(mats)
    dist_kxk = np.zeros((k, k))
    pairs = list(itertools.combinations(range(k), 2))
    # The solvers work on one pair at a time, so this is the one pair loop.
    for i, j in tqdm(pairs, desc="weight distance", disable=not progress):
        dist_kxk[i, j] = dist_kxk[j, i] = _match(mats[i], mats[j], config).distance
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


# --- the matcher ------------------------------------------------------------


def _match(
    a_nxn: np.ndarray, b_nxn: np.ndarray, config: WeightDistanceConfig
) -> PermutationMatch:
    """Best permutation over all candidates, on validated float64 inputs."""
    n = a_nxn.shape[0]
    perms: dict[str, np.ndarray] = {}
    if n <= 1:
        # One labelling only; the solvers have nothing to choose.
        perms["identity"] = np.arange(n)
    else:
        rng = np.random.default_rng(config.seed)
        if "identity" in config.methods:
            perms["identity"] = np.arange(n)
        if "signature" in config.methods:
            perms["signature"] = _signature_perm(a_nxn, b_nxn)
        if "faq" in config.methods:
            seed_perm = None
            if perms:
                seed_perm = min(perms.values(), key=lambda p: _sq(a_nxn, b_nxn, p))
            perms.update(_faq_perms(a_nxn, b_nxn, seed_perm, config.faq_restarts, rng))
        if "gw" in config.methods:
            perms["gw"] = _gw_perm(a_nxn, b_nxn)

    if n > 1 and config.two_opt_passes > 0:
        # Polishing every candidate, not only the best, finds the exact optimum
        # far more often (37 versus 23 of 40 random 6 x 6 pairs) for little time.
        for name in list(perms):
            perms[f"{name}+2opt"] = _two_opt(
                a_nxn, b_nxn, perms[name], config.two_opt_passes
            )
    sq = {name: _sq(a_nxn, b_nxn, perm) for name, perm in perms.items()}
    # min() keeps the first of equal scores: unpolished before polished.
    method = min(sq, key=sq.__getitem__)
    perm = perms[method]

    scale = 1.0 / (n * n) if config.normalize and n > 0 else 1.0
    candidates = {name: math.sqrt(value) * scale for name, value in sq.items()}
    distance = candidates[method]
    logger.debug("weight distance candidates %s; kept %s", candidates, method)
    perm = np.array(perm, dtype=np.intp)
    perm.flags.writeable = False
    return PermutationMatch(
        distance=distance, perm=perm, method=method, candidates=candidates
    )


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


def _faq_perms(
    a_nxn: np.ndarray,
    b_nxn: np.ndarray,
    seed_perm: np.ndarray | None,
    restarts: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """FAQ (Vogelstein et al. 2015) from the barycenter, a seed and random starts.

    Minimising ``||A - B[p][:, p]||^2`` is maximising ``sum_ij A_ij B_{p_i p_j}``
    (the two squared norms do not depend on p), which is scipy's objective
    ``trace(A^T P B P^T)`` with ``P = I[p]``; scipy's ``col_ind`` is our p.
    """
    n = a_nxn.shape[0]
    starts: dict[str, Any] = {"faq": "barycenter"}
    if seed_perm is not None:
        starts["faq_seeded"] = np.eye(n)[seed_perm]
    for r in range(restarts):
        starts[f"faq_random{r}"] = "randomized"
    return {
        name: quadratic_assignment(
            a_nxn,
            b_nxn,
            method="faq",
            options={"maximize": True, "P0": p0, "rng": rng},
        ).col_ind
        for name, p0 in starts.items()
    }


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
        np.fill_diagonal(gain_nxn, -np.inf)  # swapping a label with itself
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
