"""Tests of DSA (degen.metrics.dynamics) against known answers."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

from degen.config import ConfigError
from degen.metrics.dynamics import (
    DSAConfig,
    RankWarning,
    classical_mds,
    delay_embed,
    dsa,
    dsa_cross,
    dsa_pairwise,
    fit_operators,
    fit_operators_loop,
    procrustes_vf,
    procrustes_vf_grid_2x2,
    same_network_null,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The batches here are many tiny matrices: on a shared 2-core machine,
    # thread hand-off costs 10-50x more than the arithmetic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def orthogonal(r: int, det: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(r, r)))
    if np.linalg.det(q) * det < 0:
        q[:, 0] *= -1
    return q


def linear_states(m_nxn: np.ndarray, n_trials: int, n_steps: int, seed: int):
    """Trials of h_{t+1} = M h_t from random starts: [b, t, n]."""
    rng = np.random.default_rng(seed)
    states_bxtxn = np.zeros((n_trials, n_steps, len(m_nxn)))
    states_bxtxn[:, 0] = rng.normal(size=(n_trials, len(m_nxn)))
    for t in range(1, n_steps):
        states_bxtxn[:, t] = states_bxtxn[:, t - 1] @ m_nxn.T
    return states_bxtxn


def rnn_states(n_trials: int, n_steps: int, n_units: int, seed: int):
    """A random tanh RNN driven by noise: [b, t, n]."""
    rng = np.random.default_rng(seed)
    w_nxn = rng.normal(size=(n_units, n_units)) * 1.2 / math.sqrt(n_units)
    w_in_nx3 = rng.normal(size=(n_units, 3))
    inputs_bxtx3 = rng.normal(size=(n_trials, n_steps, 3))
    states_bxtxn = np.zeros((n_trials, n_steps, n_units))
    for t in range(1, n_steps):
        drive = states_bxtxn[:, t - 1] @ w_nxn.T + inputs_bxtx3[:, t] @ w_in_nx3.T
        states_bxtxn[:, t] = np.tanh(drive)
    return states_bxtxn


def decaying_rotations() -> np.ndarray:
    """Two planes rotating at 0.3 and 0.7 rad per step, decaying by 0.9, 0.8."""
    m_4x4 = np.zeros((4, 4))
    for block, (angle, gain) in enumerate([(0.3, 0.9), (0.7, 0.8)]):
        c, s = math.cos(angle), math.sin(angle)
        m_4x4[2 * block : 2 * block + 2, 2 * block : 2 * block + 2] = gain * np.array(
            [[c, -s], [s, c]]
        )
    return m_4x4


# ---------------------------------------------------------------------------
# Config


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_delays", 0),
        ("delay_interval", 0),
        ("rank", 0),
        ("rank", 2.5),
        ("rank", True),
        ("score", "cosine"),
        ("n_iters", -1),
        ("lr", 0.0),
        ("n_restarts", -1),
        ("seed", -1),
    ],
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=field):
        DSAConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [("n_delays", 4), ("delay_interval", 2), ("rank", 5), ("score", "euclidean")],
)
def test_fit_fields_change_dsa(field, value):
    states = np.stack([rnn_states(4, 30, 8, seed) for seed in range(3)])
    base = DSAConfig(n_delays=3, rank=6, n_iters=30)
    changed = dataclasses.replace(base, **{field: value})
    assert not np.allclose(dsa(states, base).distances, dsa(states, changed).distances)


@pytest.mark.parametrize(
    "field, value",
    [("n_iters", 40), ("lr", 0.2), ("n_restarts", 0), ("seed", 1)],
)
def test_optimiser_fields_change_procrustes(field, value):
    # Antisymmetric operators have a zero symmetric part, so the spectral
    # start carries no information and the random starts can win.
    a, b = np.random.default_rng(0).normal(size=(2, 4, 6, 6))
    a, b = a - a.transpose(0, 2, 1), b - b.transpose(0, 2, 1)
    base = DSAConfig(n_iters=3, n_restarts=10)
    changed = dataclasses.replace(base, **{field: value})
    first = procrustes_vf(a, b, base)["loss"]
    assert not np.allclose(first, procrustes_vf(a, b, changed)["loss"])


# ---------------------------------------------------------------------------
# Delay embedding and operator fit


def test_delay_embed_hand_example():
    # Trial 0: h_t = [t, 10 t]; trial 1 is trial 0 + 100, to see no mixing.
    steps = np.arange(5.0)
    trial = np.stack([steps, 10 * steps], -1)
    states_2x5x2 = np.stack([trial, trial + 100])
    embedded = delay_embed(states_2x5x2, n_delays=2, delay_interval=2)
    assert embedded.shape == (2, 3, 4)
    expected = np.array([[0, 0, 2, 20], [1, 10, 3, 30], [2, 20, 4, 40]], float)
    np.testing.assert_array_equal(embedded[0], expected)
    np.testing.assert_array_equal(embedded[1], expected + 100)


def test_delay_embed_too_short_trials():
    states = np.zeros((4, 10, 3))
    with pytest.raises(ConfigError, match="10 steps.*n_delays=20.*delay_interval=1"):
        delay_embed(states, n_delays=20, delay_interval=1)
    with pytest.raises(ConfigError, match="too short"):
        fit_operators(states[None], n_delays=20, delay_interval=1, rank=2)


@pytest.mark.parametrize(
    "n_delays, delay_interval, match",
    [(0, 1, "n_delays"), (2, 0, "delay_interval"), (2.0, 1, "expected int")],
)
def test_delay_embed_bad_arguments(n_delays, delay_interval, match):
    with pytest.raises(ConfigError, match=match):
        delay_embed(np.zeros((1, 10, 2)), n_delays, delay_interval)


def test_bad_state_arrays():
    with pytest.raises(ValueError, match="axes"):
        fit_operators(np.zeros((3, 10, 2)), 1, 1, 2)
    states = np.zeros((1, 2, 10, 2))
    states[0, 1, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_operators(states, 1, 1, 2)
    with pytest.raises(ConfigError, match="rank"):
        fit_operators(np.ones((1, 2, 10, 2)), 1, 1, 0)


@pytest.mark.parametrize("n_delays", [1, 3])
def test_fit_operators_recovers_linear_system(n_delays):
    m_4x4 = decaying_rotations()
    states = linear_states(m_4x4, n_trials=5, n_steps=20, seed=0)[None]
    ops, residual = fit_operators(states, n_delays, 1, rank=4)
    assert ops.shape == (1, 4, 4)
    np.testing.assert_allclose(
        np.sort_complex(np.linalg.eigvals(ops[0])),
        np.sort_complex(np.linalg.eigvals(m_4x4)),
        atol=1e-10,
    )
    assert residual[0] < 1e-10


def test_fit_operators_matches_loop_reference():
    states = np.stack([rnn_states(3, 25, 6, seed) for seed in range(2)])
    ops, _ = fit_operators(states, n_delays=3, delay_interval=2, rank=5)
    reference = fit_operators_loop(states, n_delays=3, delay_interval=2, rank=5)
    np.testing.assert_allclose(ops, reference, atol=1e-10)


def test_rank_above_numerical_rank_warns_and_pads():
    states = linear_states(decaying_rotations(), 5, 20, seed=0)[None]
    with pytest.warns(RankWarning, match=r"rank=6.*numerical rank \[4\]") as record:
        ops, residual = fit_operators(states, n_delays=3, delay_interval=1, rank=6)
    assert record[0].filename == __file__  # stacklevel points at the caller
    assert ops.shape == (1, 6, 6)
    assert np.all(ops[0, 4:] == 0) and np.all(ops[0, :, 4:] == 0)
    assert np.isfinite(residual).all()
    with pytest.warns(RankWarning) as record:
        dsa(np.concatenate([states, states]), DSAConfig(n_delays=3, rank=6))
    assert record[0].filename == __file__


def test_zero_states_give_no_nan():
    live = rnn_states(3, 12, 4, seed=0)
    dead_unit = live.copy()
    dead_unit[..., 2] = 0.0
    states = np.stack([np.zeros_like(live), np.zeros_like(live), live, dead_unit])
    with pytest.warns(RankWarning, match=r"network\(s\) \[0, 1\]"):
        result = dsa(states, DSAConfig(n_delays=2, rank=3, n_iters=20))
    assert np.isfinite(result.distances).all()
    assert np.all(result.operators[:2] == 0) and np.all(result.fit_residual[:2] == 0)
    assert result.distances[0, 1] == 0.0  # two zero operators
    assert result.distances[0, 2] == pytest.approx(math.pi / 2)
    assert result.fit_loss[0, 2] == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Procrustes over vector fields


@pytest.mark.parametrize("r", [8, 50])
@pytest.mark.parametrize("det", [1, -1])
def test_planted_rotation_and_reflection(r, det):
    a = np.random.default_rng(r).normal(size=(r, r))
    q = orthogonal(r, det, seed=r + det)
    b = q @ a @ q.T
    out = procrustes_vf(a[None], b[None], DSAConfig())
    assert out["euclidean"][0] < 1e-4 and out["angular"][0] < 1e-4
    c = out["rotation"][0]
    np.testing.assert_allclose(c @ c.T, np.eye(r), atol=1e-10)
    np.testing.assert_allclose(c @ b @ c.T, a, atol=1e-6)


def test_matches_grid_reference_on_2x2():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 6, 2, 2))
    b[0] = orthogonal(2, -1, seed=0) @ a[0] @ orthogonal(2, -1, seed=0).T
    out = procrustes_vf(a, b, DSAConfig())
    for p in range(6):
        reference = procrustes_vf_grid_2x2(a[p], b[p])
        # Grid step 2 pi / 1e5 = 6.3e-5 rad, and both scores change by at most
        # 2 |B| = 2 per radian: the grid's best is within 6.3e-5 of the truth.
        assert out["euclidean"][p] == pytest.approx(reference["euclidean"], abs=1e-4)
        assert out["angular"][p] == pytest.approx(reference["angular"], abs=1e-4)
        assert out["euclidean"][p] <= reference["euclidean"] + 1e-12


def test_symmetry_and_zero_diagonal():
    ops = np.random.default_rng(4).normal(size=(5, 4, 4))
    config = DSAConfig(n_restarts=4)
    distances = dsa_pairwise(ops, config)
    assert np.all(np.diag(distances) == 0)
    np.testing.assert_array_equal(distances, distances.T)
    i, j = np.triu_indices(5, 1)
    forward = procrustes_vf(ops[i], ops[j], config)["angular"]
    backward = procrustes_vf(ops[j], ops[i], config)["angular"]
    np.testing.assert_allclose(forward, backward, atol=1e-6)


def test_triangle_inequality():
    ops = np.random.default_rng(5).normal(size=(6, 3, 3))
    distances = dsa_pairwise(ops, DSAConfig(score="euclidean", n_restarts=4))
    for i, j, k in itertools.permutations(range(6), 3):
        assert distances[i, k] <= distances[i, j] + distances[j, k] + 1e-6


def test_identity_against_minus_identity_is_pi():
    eye = np.eye(4)[None]
    out = procrustes_vf(eye, -eye, DSAConfig())
    assert out["angular"][0] == pytest.approx(math.pi, abs=1e-12)
    assert out["euclidean"][0] == pytest.approx(2.0, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_same_operator_is_exactly_zero(dtype):
    a = np.random.default_rng(6).normal(size=(3, 7, 7)).astype(np.float32)
    out = procrustes_vf(a, a.copy(), DSAConfig(), dtype=dtype)
    assert np.all(out["angular"] == 0) and np.all(out["euclidean"] == 0)


def test_zero_operators():
    zero = np.zeros((1, 3, 3))
    other = np.random.default_rng(7).normal(size=(1, 3, 3))
    assert procrustes_vf(zero, zero, DSAConfig())["angular"][0] == 0
    out = procrustes_vf(zero, other, DSAConfig())
    assert out["angular"][0] == pytest.approx(math.pi / 2)
    assert out["euclidean"][0] == pytest.approx(1.0)


def test_operator_shape_errors():
    config = DSAConfig(n_iters=1)
    a = np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match="different sizes"):
        procrustes_vf(a, np.zeros((2, 4, 4)), config)
    with pytest.raises(ValueError, match="different sizes"):
        dsa_cross(a, np.zeros((2, 4, 4)), config)
    with pytest.raises(ValueError, match="same number"):
        procrustes_vf(a, np.zeros((3, 3, 3)), config)
    with pytest.raises(ValueError, match="square"):
        dsa_pairwise(np.zeros((2, 3, 4)), config)
    with pytest.raises(ValueError, match="axes"):
        procrustes_vf(a[0], a[0], config)


def test_cross_matches_pairwise():
    ops = np.random.default_rng(8).normal(size=(4, 3, 3))
    config = DSAConfig(n_restarts=3)
    cross = dsa_cross(ops[:2], ops[2:], config)
    assert cross.shape == (2, 2)
    np.testing.assert_allclose(cross, dsa_pairwise(ops, config)[:2, 2:], atol=1e-6)
    assert dsa_pairwise(ops[:1], config).tolist() == [[0.0]]


# ---------------------------------------------------------------------------
# End to end


@pytest.mark.parametrize("det", [1, -1])
def test_rotated_network_has_zero_dsa(det):
    first = rnn_states(6, 30, 10, seed=0)
    rotated = first @ orthogonal(10, det, seed=1).T
    states = np.stack([first, rotated, rnn_states(6, 30, 10, seed=2)])
    result = dsa(states, DSAConfig(n_delays=3, rank=8))
    assert result.distances.shape == (3, 3) and result.operators.shape == (3, 8, 8)
    assert result.distances[0, 1] < 1e-4
    assert result.distances[0, 2] > 0.1
    assert result.fit_loss[0, 1] < 1e-8


def test_same_network_null_is_zero_for_linear_system():
    rng = np.random.default_rng(9)
    m_5x5 = rng.normal(size=(5, 5))
    m_5x5 *= 0.95 / np.abs(np.linalg.eigvals(m_5x5)).max()
    sample_a = linear_states(m_5x5, 6, 25, seed=1)[None]
    sample_b = linear_states(m_5x5, 6, 25, seed=2)[None]
    null = same_network_null(sample_a, sample_b, DSAConfig(n_delays=2, rank=5))
    assert null.shape == (1,) and null[0] < 1e-4
    with pytest.raises(ValueError, match="same networks"):
        same_network_null(sample_a, np.concatenate([sample_b, sample_b]), DSAConfig())


def test_inputs_are_not_modified():
    states32 = np.stack([rnn_states(3, 15, 5, seed) for seed in range(2)])
    states32 = states32.astype(np.float32)
    states_torch = torch.tensor(states32, dtype=torch.float64)
    copies = (states32.copy(), states_torch.clone())
    config = DSAConfig(n_delays=2, rank=4, n_iters=20)
    result = dsa(states32, config)
    dsa(states_torch, config)
    same_network_null(states32, states_torch, config)
    ops32 = result.operators.astype(np.float32)
    ops_torch = torch.tensor(result.operators)
    ops_copies = (ops32.copy(), ops_torch.clone())
    procrustes_vf(ops32, ops_torch, config)
    dsa_pairwise(ops_torch, config)
    distances = torch.tensor(result.distances)
    classical_mds(distances)
    np.testing.assert_array_equal(states32, copies[0])
    assert torch.equal(states_torch, copies[1])
    np.testing.assert_array_equal(ops32, ops_copies[0])
    assert torch.equal(ops_torch, ops_copies[1])
    assert torch.equal(distances, torch.tensor(result.distances))


def test_same_seed_same_values():
    states = np.stack([rnn_states(3, 20, 6, seed) for seed in range(3)])
    config = DSAConfig(n_delays=2, rank=5, n_iters=50, n_restarts=3, seed=11)
    first, second = dsa(states, config), dsa(states, config)
    np.testing.assert_array_equal(first.distances, second.distances)
    np.testing.assert_array_equal(first.operators, second.operators)


# ---------------------------------------------------------------------------
# Classical MDS


def test_classical_mds_recovers_points():
    points_6x2 = np.random.default_rng(10).normal(size=(6, 2))
    distances = np.linalg.norm(points_6x2[:, None] - points_6x2[None], axis=-1)
    coords = classical_mds(distances, n_components=2)
    assert coords.shape == (6, 2)
    recovered = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    np.testing.assert_allclose(recovered, distances, atol=1e-10)
    # Rigid motion: centre both, then the best orthogonal map is exact.
    centred = points_6x2 - points_6x2.mean(0)
    u, _, vt = np.linalg.svd(coords.T @ centred)
    np.testing.assert_allclose(coords @ u @ vt, centred, atol=1e-10)
    lead = coords[np.abs(coords).argmax(0), [0, 1]]
    assert np.all(lead > 0)  # deterministic sign


def test_classical_mds_errors():
    with pytest.raises(ValueError, match="square"):
        classical_mds(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        classical_mds(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="symmetric"):
        classical_mds(np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ConfigError, match="n_components"):
        classical_mds(np.zeros((3, 3)), n_components=4)
