"""Tests for the permutation-invariant weight distance, against known answers."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy.optimize import quadratic_assignment

from degen.config import ConfigError, from_dict
from degen.metrics import weights
from degen.metrics.weights import (
    PermutationMatch,
    WeightDistanceConfig,
    _faq_batch,
    _faq_reference,
    _gw_perm,
    _match_batch,
    _sq_batch,
    _swap_gain,
    _swap_search,
    _SwapState,
    _two_opt,
    brute_force_distance,
    permutation_distance,
    weight_distance_matrix,
)

CYCLE5 = np.array([1, 2, 3, 4, 0])  # a 5-cycle: not its own inverse


def _gaussian(n, seed):
    return np.random.default_rng(seed).normal(size=(n, n))


def _planted(w_nxn, perm):
    """W relabelled so that ``relabelled[np.ix_(perm, perm)] == w_nxn``."""
    inv = np.argsort(perm)
    return w_nxn[np.ix_(inv, inv)]


def _random_cycle_free_perm(n, seed):
    perm = np.random.default_rng(seed).permutation(n)
    assert not np.array_equal(perm[perm], np.arange(n))  # not an involution
    return perm


# --- planted relabellings ------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "perm"),
    [(5, CYCLE5), (64, _random_cycle_free_perm(64, seed=7))],
    ids=["5-cycle", "random-64"],
)
def test_planted_permutation_is_recovered_both_ways(n, perm):
    w1 = _gaussian(n, seed=1)
    w2 = _planted(w1, perm)
    assert not np.array_equal(perm, np.argsort(perm))
    forward = permutation_distance(w1, w2)
    backward = permutation_distance(w2, w1)
    assert forward.distance < 1e-9
    assert backward.distance < 1e-9
    np.testing.assert_array_equal(forward.perm, perm)
    np.testing.assert_array_equal(backward.perm, np.argsort(perm))


@pytest.mark.parametrize("method", ["signature", "faq", "gw"])
@pytest.mark.parametrize("n", [5, 64])
def test_each_solver_alone_recovers_a_planted_permutation(method, n):
    perm = CYCLE5 if n == 5 else _random_cycle_free_perm(n, seed=3)
    w1 = _gaussian(n, seed=2)
    config = WeightDistanceConfig(methods=(method,), two_opt_passes=0)
    match = permutation_distance(w1, _planted(w1, perm), config)
    assert match.distance < 1e-9
    assert match.method == method
    np.testing.assert_array_equal(match.perm, perm)


@pytest.mark.parametrize(
    ("search", "name"),
    [({"two_opt_passes": 3, "tabu_iters": 0}, "identity+2opt"), ({}, "identity+tabu")],
)
def test_swaps_alone_undo_planted_swaps(search, name):
    n = 12
    perm = np.arange(n)
    perm[[0, 5]], perm[[3, 9]] = perm[[5, 0]], perm[[9, 3]]
    w1 = _gaussian(n, seed=4)
    config = WeightDistanceConfig(methods=("identity",), **search)
    match = permutation_distance(w1, _planted(w1, perm), config)
    assert match.distance < 1e-9
    assert match.method == name
    np.testing.assert_array_equal(match.perm, perm)


def test_brute_force_finds_a_planted_permutation():
    w1 = _gaussian(5, seed=5)
    match = brute_force_distance(w1, _planted(w1, CYCLE5))
    assert match.distance < 1e-12
    np.testing.assert_array_equal(match.perm, CYCLE5)


# --- against the exact optimum --------------------------------------------------


def test_matches_brute_force_on_most_small_pairs_and_never_beats_it():
    hits = 0
    seeds = range(10)
    for seed in seeds:
        w1, w2 = _gaussian(6, seed=100 + seed), _gaussian(6, seed=200 + seed)
        exact = brute_force_distance(w1, w2).distance
        found = permutation_distance(w1, w2).distance
        # A minimum over a subset of permutations cannot go below the minimum.
        assert found >= exact - 1e-12
        hits += found - exact < 1e-9
    # 10 of 10 hit it with the tabu search (8 of 10 without, when written);
    # 9 leaves room for BLAS rounding elsewhere.
    assert hits >= 9, f"exact optimum on only {hits} of {len(seeds)} pairs"


def test_reported_distance_is_the_exact_objective_of_the_reported_perm():
    w1, w2 = _gaussian(20, seed=8), _gaussian(20, seed=9)
    match = permutation_distance(w1, w2)
    expected = np.linalg.norm(w1 - w2[np.ix_(match.perm, match.perm)])
    assert match.distance == pytest.approx(expected, rel=1e-12)
    assert match.distance == min(match.candidates.values())
    assert match.candidates[match.method] == match.distance
    np.testing.assert_array_equal(np.sort(match.perm), np.arange(20))


# --- the solvers' orientation -----------------------------------------------------


def test_scipy_quadratic_assignment_col_ind_is_our_perm():
    # Pins scipy's convention: with maximize=True, col_ind maximises
    # sum_ij A_ij B[col_ind[i], col_ind[j]], so B[np.ix_(col_ind, col_ind)]
    # lines up with A, the same orientation as our perm (not its inverse).
    w1 = _gaussian(5, seed=10)
    w2 = _planted(w1, CYCLE5)
    result = quadratic_assignment(
        w1,
        w2,
        method="faq",
        options={"maximize": True, "rng": np.random.default_rng(0)},
    )
    np.testing.assert_array_equal(result.col_ind, CYCLE5)
    np.testing.assert_array_equal(w2[np.ix_(result.col_ind, result.col_ind)], w1)


def test_faq_and_gw_candidates_use_our_orientation():
    w1 = _gaussian(5, seed=11)
    w2 = _planted(w1, CYCLE5)
    starts = np.stack([np.full((5, 5), 0.2), np.eye(5)])
    found = _faq_batch(np.stack([w1, w1]), np.stack([w2, w2]), starts)
    np.testing.assert_array_equal(found, [CYCLE5, CYCLE5])
    np.testing.assert_array_equal(_gw_perm(w1, w2), CYCLE5)


# --- the batched FAQ against scipy's -----------------------------------------------


def test_batched_faq_takes_scipys_steps():
    # In float64 the batched FAQ makes scipy's choices, so it lands on the
    # same permutation from the barycenter and from a permutation start.
    rng = np.random.default_rng(12)
    a, b = rng.normal(size=(2, 4, 20, 20))
    starts = [np.full((20, 20), 1 / 20), np.eye(20)[rng.permutation(20)]]
    for p0 in starts:
        ours = _faq_batch(a, b, np.stack([p0] * 4), dtype=torch.float64)
        for q in range(4):
            np.testing.assert_array_equal(ours[q], _faq_reference(a[q], b[q], p0))


# --- the 2-opt polish against slow references ------------------------------------


def _swap_gain_slow(a_nxn, c_nxn):
    """Drop in ||A - C||^2 for each label swap, by recomputing the norm."""
    n = len(a_nxn)
    gain_nxn = np.zeros((n, n))
    before = np.sum((a_nxn - c_nxn) ** 2)
    for u in range(n):
        for v in range(n):
            s = np.arange(n)
            s[[u, v]] = s[[v, u]]
            gain_nxn[u, v] = before - np.sum((a_nxn - c_nxn[np.ix_(s, s)]) ** 2)
    return gain_nxn


def test_swap_gain_matches_recomputed_norms():
    a, c = _gaussian(7, seed=12), _gaussian(7, seed=13)
    np.testing.assert_allclose(_swap_gain(a, c), _swap_gain_slow(a, c), atol=1e-10)


def test_two_opt_with_updates_follows_the_slow_best_improvement_path():
    n = 15
    a, b = _gaussian(n, seed=14), _gaussian(n, seed=15)
    perm = np.arange(n)
    for _ in range(2 * n):
        gain = _swap_gain_slow(a, b[np.ix_(perm, perm)])
        np.fill_diagonal(gain, -np.inf)
        u, v = np.unravel_index(np.argmax(gain), gain.shape)
        if gain[u, v] <= 0:
            break
        perm = perm.copy()
        perm[[u, v]] = perm[[v, u]]
    np.testing.assert_array_equal(_two_opt(a, b, np.arange(n), passes=2), perm)


def test_batched_descent_follows_the_slow_2opt():
    n, p = 15, 3
    a, b = _gaussian(n, seed=14), _gaussian(n, seed=15)
    slow = _two_opt(a, b, np.arange(n), passes=2)
    start = np.tile(np.arange(n), (p, 1))
    for dtype in (np.float64, np.float32):
        fast = _swap_search(
            np.stack([a] * p), np.stack([b] * p), start, 2 * n, tabu=False, dtype=dtype
        )
        for q in range(p):
            np.testing.assert_array_equal(fast[q], slow, err_msg=str(dtype))


def test_swap_state_keeps_the_gains_of_every_swap():
    # After any sequence of swaps the incrementally updated gains equal the
    # recomputed drops in the squared norm (halved: G is in <A, C>).
    n, p = 9, 3
    rng = np.random.default_rng(16)
    a, b = rng.normal(size=(2, p, n, n))
    state = _SwapState(a, b, np.tile(np.arange(n), (p, 1)), np.float64)
    rows = np.arange(p)[:, None]
    for _ in range(30):
        r = rng.integers(0, n, p)
        rs = np.stack([r, (r + rng.integers(1, n, p)) % n], 1)
        state.swap(rs, state.perm[rows, rs])
        for q in range(p):
            c = b[q][np.ix_(state.perm[q], state.perm[q])]
            expected = _swap_gain_slow(a[q], c) / 2
            np.fill_diagonal(expected, weights._NO_SWAP)
            np.testing.assert_allclose(state.gain[q], expected, atol=1e-9)
            np.testing.assert_array_equal(state.inv[q][state.perm[q]], np.arange(n))


def test_tabu_search_escapes_a_2opt_local_minimum():
    # From a 2-opt local minimum no single swap helps, yet the tabu search,
    # which keeps moving uphill when it must, finds lower ones.
    n, p = 24, 4
    rng = np.random.default_rng(17)
    a, b = rng.normal(size=(2, p, n, n))
    start = np.stack([_two_opt(a[q], b[q], np.arange(n), passes=50) for q in range(p)])
    found = _swap_search(a, b, start, 400, tabu=True)
    before, after = _sq_batch(a, b, start), _sq_batch(a, b, found)
    assert np.all(after <= before)
    assert np.sum(after < before - 1e-9) >= p - 1


def test_a_pairs_result_does_not_depend_on_its_batch():
    n = 20
    rng = np.random.default_rng(18)
    a, b = rng.normal(size=(2, 3, n, n))
    together = _match_batch(a, b, WeightDistanceConfig())
    for q in range(3):
        alone = _match_batch(a[q : q + 1], b[q : q + 1], WeightDistanceConfig())[0]
        assert alone.distance == together[q].distance
        assert alone.candidates == together[q].candidates
        np.testing.assert_array_equal(alone.perm, together[q].perm)


# --- properties of the distance and the matrix ----------------------------------


def test_never_exceeds_the_identity_match():
    for seed in range(4):
        w1, w2 = _gaussian(16, seed=20 + seed), _gaussian(16, seed=30 + seed)
        match = permutation_distance(w1, w2)
        identity = np.linalg.norm(w1 - w2)
        assert match.distance <= identity
        assert match.candidates["identity"] == pytest.approx(identity, rel=1e-12)


def test_nearly_symmetric_in_its_arguments():
    # The heuristic is not exactly symmetric (see permutation_distance); on
    # these pairs the gap stays within the 5% documented there.
    for seed in range(6):
        w1, w2 = _gaussian(6, seed=40 + seed), _gaussian(6, seed=50 + seed)
        d12 = permutation_distance(w1, w2).distance
        d21 = permutation_distance(w2, w1).distance
        assert d12 == pytest.approx(d21, rel=0.05)


def test_distance_matrix_symmetric_zero_diagonal_and_pairwise():
    k, n = 4, 8
    w_kxnxn = np.stack([_gaussian(n, seed=60 + i) for i in range(k)])
    w_kxnxn[3] = _planted(w_kxnxn[0], _random_cycle_free_perm(n, seed=1))
    dist_kxk = weight_distance_matrix(w_kxnxn)
    assert dist_kxk.shape == (k, k)
    np.testing.assert_array_equal(dist_kxk, dist_kxk.T)
    np.testing.assert_array_equal(np.diag(dist_kxk), 0.0)
    assert dist_kxk[0, 3] < 1e-9
    for i in range(k):
        for j in range(i + 1, k):
            expected = permutation_distance(w_kxnxn[i], w_kxnxn[j]).distance
            assert dist_kxk[i, j] == expected


def test_distance_matrix_same_in_worker_processes(monkeypatch):
    mats = np.stack([_gaussian(10, seed=75 + i) for i in range(12)])  # 2 batches
    inline = weight_distance_matrix(mats)
    monkeypatch.setattr(weights, "POOL_MIN_WORK", 0)
    monkeypatch.setattr(weights, "_n_cores", lambda: 2)
    np.testing.assert_array_equal(weight_distance_matrix(mats), inline)


def test_distance_matrix_accepts_sequences_tensors_and_a_progress_bar():
    mats = [_gaussian(6, seed=70 + i) for i in range(3)]
    expected = weight_distance_matrix(np.stack(mats))
    np.testing.assert_array_equal(weight_distance_matrix(mats), expected)
    tensor = torch.tensor(np.stack(mats))
    np.testing.assert_array_equal(weight_distance_matrix(tensor), expected)
    np.testing.assert_array_equal(weight_distance_matrix(mats, progress=True), expected)
    np.testing.assert_array_equal(weight_distance_matrix(mats[:1]), [[0.0]])


def test_same_seed_same_result():
    w1, w2 = _gaussian(24, seed=80), _gaussian(24, seed=81)
    config = WeightDistanceConfig(faq_restarts=2, seed=5)
    first = permutation_distance(w1, w2, config)
    second = permutation_distance(w1, w2, config)
    assert first.distance == second.distance
    assert first.candidates == second.candidates
    np.testing.assert_array_equal(first.perm, second.perm)


def test_one_unit_networks():
    match = permutation_distance([[2.0]], [[-1.0]])
    assert match.distance == 3.0
    np.testing.assert_array_equal(match.perm, [0])


# --- every config field changes the outcome ----------------------------------------


def test_methods_choose_the_candidates():
    w1, w2 = _gaussian(8, seed=90), _gaussian(8, seed=91)
    config = WeightDistanceConfig(methods=("identity", "gw"), tabu_iters=0)
    assert set(permutation_distance(w1, w2, config).candidates) == {"identity", "gw"}
    names = set(permutation_distance(w1, w2).candidates)
    assert {"identity", "signature", "faq_seeded"} < names


def test_faq_restarts_add_random_starts():
    w1, w2 = _gaussian(8, seed=92), _gaussian(8, seed=93)
    names = set(permutation_distance(w1, w2).candidates)
    assert not any(name.startswith("faq_random") for name in names)
    names = set(
        permutation_distance(w1, w2, WeightDistanceConfig(faq_restarts=1)).candidates
    )
    assert "faq_random0" in names and "faq_random1" not in names
    config = WeightDistanceConfig(methods=("faq",), faq_restarts=2, tabu_iters=0)
    names = set(permutation_distance(w1, w2, config).candidates)
    assert names == {"faq", "faq_random0", "faq_random1"}


def test_two_opt_passes_turn_the_polish_on():
    w1, w2 = _gaussian(8, seed=94), _gaussian(8, seed=95)
    names = permutation_distance(w1, w2).candidates
    assert not any(name.endswith("+2opt") for name in names)
    config = WeightDistanceConfig(two_opt_passes=3)
    assert "identity+2opt" in permutation_distance(w1, w2, config).candidates


def test_tabu_iters_zero_turns_the_tabu_search_off():
    w1, w2 = _gaussian(40, seed=94), _gaussian(40, seed=95)
    with_tabu = permutation_distance(w1, w2)
    without = permutation_distance(w1, w2, WeightDistanceConfig(tabu_iters=0))
    assert any(name.endswith("+tabu") for name in with_tabu.candidates)
    assert not any(name.endswith("+tabu") for name in without.candidates)
    assert with_tabu.distance < without.distance


def test_seed_changes_the_random_faq_starts():
    w1, w2 = _gaussian(30, seed=96), _gaussian(30, seed=97)
    values = {
        permutation_distance(
            w1, w2, WeightDistanceConfig(methods=("faq",), faq_restarts=1, seed=seed)
        ).candidates["faq_random0"]
        for seed in range(4)
    }
    assert len(values) > 1


def test_normalize_divides_by_the_number_of_entries():
    n = 10
    w1, w2 = _gaussian(n, seed=98), _gaussian(n, seed=99)
    raw = permutation_distance(w1, w2)
    scaled = permutation_distance(w1, w2, WeightDistanceConfig(normalize=True))
    assert scaled.distance == pytest.approx(raw.distance / (n * n), rel=1e-12)
    for name, value in raw.candidates.items():
        assert scaled.candidates[name] == pytest.approx(value / (n * n), rel=1e-12)
    np.testing.assert_array_equal(scaled.perm, raw.perm)


def test_config_from_dict_turns_a_list_into_a_tuple():
    config = from_dict(WeightDistanceConfig, {"methods": ["faq", "gw"]})
    assert config.methods == ("faq", "gw")
    assert dataclasses.replace(config).methods == ("faq", "gw")


# --- inputs: dtypes, and never modified --------------------------------------------


def test_integer_and_tensor_inputs_work():
    w1 = np.random.default_rng(100).integers(-3, 4, size=(6, 6))
    w2 = _planted(w1, np.array([2, 0, 1, 5, 3, 4]))
    assert permutation_distance(w1, w2).distance == 0.0
    float_match = permutation_distance(w1.astype(float), w2.astype(float))
    for as_tensor in (torch.tensor, lambda x: torch.tensor(x, dtype=torch.bfloat16)):
        match = permutation_distance(as_tensor(w1), as_tensor(w2))
        assert match.distance == float_match.distance
    needs_grad = torch.tensor(w1, dtype=torch.float32, requires_grad=True)
    assert permutation_distance(needs_grad, w2.astype(np.float32)).distance == 0.0


def test_inputs_are_not_modified():
    w1, w2 = _gaussian(10, seed=101), _gaussian(10, seed=102)
    w1_before, w2_before = w1.copy(), w2.copy()
    permutation_distance(w1, w2)
    brute_force_distance(w1[:5, :5], w2[:5, :5])
    tensor = torch.tensor(np.stack([w1, w2]))
    tensor_before = tensor.clone()
    weight_distance_matrix(tensor)
    np.testing.assert_array_equal(w1, w1_before)
    np.testing.assert_array_equal(w2, w2_before)
    assert torch.equal(tensor, tensor_before)


def test_result_perm_is_read_only():
    match = permutation_distance(_gaussian(4, seed=103), _gaussian(4, seed=104))
    assert isinstance(match, PermutationMatch)
    with pytest.raises(ValueError, match="read-only"):
        match.perm[0] = 1


# --- every raise ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_rejected_naming_the_network(bad):
    good = _gaussian(4, seed=105)
    broken = good.copy()
    broken[1, 2] = bad
    with pytest.raises(ValueError, match=r"w1 has 1 non-finite .*\(1, 2\)"):
        permutation_distance(broken, good)
    with pytest.raises(ValueError, match="w2 has 1 non-finite"):
        permutation_distance(good, broken)
    with pytest.raises(ValueError, match="w2 has 1 non-finite"):
        brute_force_distance(good, broken)
    with pytest.raises(ValueError, match="network 2 has 1 non-finite"):
        weight_distance_matrix(np.stack([good, good, broken]))
    with pytest.raises(ValueError, match="network 1 has 1 non-finite"):
        weight_distance_matrix([good, torch.tensor(broken)])


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(5, 5\).*\(6, 6\)"):
        permutation_distance(np.zeros((5, 5)), np.zeros((6, 6)))
    with pytest.raises(ValueError, match=r"\(5, 5\).*\(6, 6\)"):
        brute_force_distance(np.zeros((5, 5)), np.zeros((6, 6)))
    with pytest.raises(ValueError, match=r"w2 has shape \(3, 4\)"):
        permutation_distance(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"w1 has shape \(9,\)"):
        permutation_distance(np.zeros(9), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"w_kxnxn has shape \(4, 4\)"):
        weight_distance_matrix(np.zeros((4, 4)))
    with pytest.raises(ValueError, match=r"network 1 has shape \(4, 4\)"):
        weight_distance_matrix([np.zeros((3, 3)), np.zeros((4, 4))])
    with pytest.raises(ValueError, match=r"network 0 has shape \(2, 3, 3\)"):
        weight_distance_matrix([np.zeros((2, 3, 3))])


def test_non_real_dtypes_are_rejected():
    with pytest.raises(TypeError, match="w1 has dtype complex128"):
        permutation_distance(np.eye(3, dtype=complex), np.eye(3))
    with pytest.raises(TypeError, match="w2 has dtype <U1"):
        permutation_distance(np.eye(2), [["a", "b"], ["c", "d"]])
    with pytest.raises(TypeError, match="w2 is a complex tensor"):
        permutation_distance(np.eye(3), torch.eye(3, dtype=torch.complex64))


def test_brute_force_refuses_more_than_eight_units():
    with pytest.raises(ValueError, match="n = 9 gives 362,880"):
        brute_force_distance(np.eye(9), np.eye(9))


@pytest.mark.parametrize(
    ("methods", "message"),
    [
        (("faq", "qap"), r"'qap' is not valid; choose one of \['identity'"),
        ("faq", "non-empty tuple of names"),
        ((), "non-empty tuple of names"),
        (("gw", "gw"), "names a method twice"),
    ],
)
def test_bad_methods_are_rejected(methods, message):
    with pytest.raises(ConfigError, match=message):
        WeightDistanceConfig(methods=methods)


@pytest.mark.parametrize(
    "field", ["faq_restarts", "two_opt_passes", "tabu_iters", "seed"]
)
def test_negative_counts_are_rejected(field):
    with pytest.raises(ConfigError, match=f"{field} = -1 is out of range"):
        WeightDistanceConfig(**{field: -1})
