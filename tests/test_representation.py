"""SVCCA: against a slow textbook CCA, known answers (a linear transform of a
network scores 1, independent noise scores near 0), symmetry, untouched
inputs and clear errors."""

import numpy as np
import pytest
import scipy.linalg
import torch

from degen.config import ConfigError
from degen.metrics.representation import (
    RankWarning,
    SVCCAConfig,
    svcca,
    svcca_distances,
    svcca_matrix,
)
from degen.model import Ensemble, ModelConfig

FULL = SVCCAConfig(variance_kept=1.0)


def _rnn_states(n=12, k=3, n_batch=20, n_steps=15, seed=0):
    """Hidden states of k random standard networks on shared trials."""
    model = Ensemble(ModelConfig(n), 3, 1, list(range(k)), dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n_batch, n_steps, 3, generator=gen, dtype=torch.float64)
    return model.run(3 * inputs)[1].numpy()  # [net, batch, time, n]


def reference_svcca(x_bxtxn, y_bxtxm, variance_kept):
    """PCA by an eigendecomposition of each covariance, then CCA as the square
    roots of the eigenvalues of C_xx^-1 C_xy C_yy^-1 C_yx."""

    def reduce(states):
        x = states.reshape(-1, states.shape[-1])
        x = x - x.mean(axis=0)
        evals, evecs = scipy.linalg.eigh(x.T @ x)
        evals, evecs = evals[::-1], evecs[:, ::-1]
        fraction = np.cumsum(evals) / evals.sum()
        p = int(np.argmax(fraction >= variance_kept - 1e-12)) + 1
        return x @ evecs[:, :p]

    a, b = reduce(x_bxtxn), reduce(y_bxtxm)
    c_ab = a.T @ b
    m = scipy.linalg.solve(a.T @ a, c_ab) @ scipy.linalg.solve(b.T @ b, c_ab.T)
    rho2 = np.sort(np.linalg.eigvals(m).real)[::-1][: min(a.shape[1], b.shape[1])]
    return np.sqrt(np.clip(rho2, 0, 1)).mean()


@pytest.mark.parametrize("variance_kept", [0.5, 0.9, 0.99])
def test_matrix_matches_the_textbook_reference(variance_kept):
    states = _rnn_states()
    config = SVCCAConfig(variance_kept=variance_kept)
    sim = svcca_matrix(states, config)
    for i in range(3):
        for j in range(3):
            expected = reference_svcca(states[i], states[j], variance_kept)
            assert sim[i, j] == pytest.approx(expected, abs=1e-8), (i, j)
    assert (sim[~np.eye(3, dtype=bool)] < 0.999).all()  # distinct networks


def test_different_widths_match_the_reference():
    narrow, wide = _rnn_states(n=6, k=1)[0], _rnn_states(n=14, k=1)[0]
    expected = reference_svcca(narrow, wide, 0.99)
    assert svcca(narrow, wide) == pytest.approx(expected, abs=1e-8)
    assert svcca_matrix([narrow, wide]).shape == (2, 2)


def test_an_invertible_linear_transform_of_a_network_scores_one():
    states = _rnn_states(k=1)[0]  # [batch, time, 12], full rank
    a = np.random.default_rng(1).normal(size=(12, 12)) + 3 * np.eye(12)
    assert np.linalg.cond(a) < 1e3
    transformed = states @ a + 5.0  # an offset too: units are centred
    assert svcca(states, transformed, FULL) == pytest.approx(1.0, abs=1e-9)


def test_a_low_dimensional_network_and_a_linear_map_of_it_score_one():
    # States in a 3-d subspace of 10 units: every kept direction is shared
    # whatever the map, so the default 99% cut also gives exactly 1.
    rng = np.random.default_rng(2)
    latent = rng.normal(size=(30, 20, 3))
    states = latent @ rng.normal(size=(3, 10))
    mapped = states @ (rng.normal(size=(10, 10)) + 3 * np.eye(10))
    assert svcca(states, mapped) == pytest.approx(1.0, abs=1e-9)


def test_a_rotated_and_scaled_copy_scores_one_at_the_variance_cut():
    # A scaled rotation keeps the principal directions, so any cut keeps the
    # same subspace.
    states = _rnn_states(k=1)[0]
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(12, 12)))
    for kept in (0.5, 0.99):
        config = SVCCAConfig(variance_kept=kept)
        assert svcca(states, 4.0 * states @ q, config) == pytest.approx(1.0, abs=1e-9)


def test_independent_noise_scores_low():
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(2, 100, 20, 10))  # 2,000 samples of 10 units
    sim = svcca(noise[0], noise[1], FULL)
    # Canonical correlations of independent data are about sqrt(units/samples).
    assert sim < 0.15
    # The same noise against itself scores 1: the low value is not a bug.
    assert svcca(noise[0], noise[0], FULL) == pytest.approx(1.0, abs=1e-9)


def test_matrix_is_symmetric_with_unit_diagonal_and_distances_complement_it():
    states = _rnn_states(k=4)
    sim = svcca_matrix(states)
    assert sim.shape == (4, 4)
    np.testing.assert_array_equal(sim, sim.T)
    np.testing.assert_array_equal(np.diag(sim), np.ones(4))
    assert ((sim >= 0) & (sim <= 1)).all()
    dist = svcca_distances(states)
    np.testing.assert_allclose(dist, 1 - sim)
    np.testing.assert_array_equal(np.diag(dist), np.zeros(4))
    # Each entry is the pairwise function's answer.
    assert sim[1, 3] == svcca(states[1], states[3])


def test_inputs_are_not_modified():
    states = _rnn_states()
    copy = states.copy()
    svcca_matrix(states)
    np.testing.assert_array_equal(states, copy)
    tensor = torch.from_numpy(copy.copy())
    sim_tensor = svcca_matrix(tensor)
    assert torch.equal(tensor, torch.from_numpy(copy))
    np.testing.assert_allclose(sim_tensor, svcca_matrix(copy))


@pytest.mark.parametrize(
    "other", [SVCCAConfig(variance_kept=0.6), SVCCAConfig(n_components=2)]
)
def test_every_config_field_changes_the_outcome(other):
    states = _rnn_states()
    assert not np.allclose(svcca_matrix(states), svcca_matrix(states, other))


def test_fixed_components_keep_exactly_that_many():
    # With one direction kept, the similarity is one canonical correlation:
    # |cos| of the angle between the two leading sample-space directions.
    states = _rnn_states(k=2)
    leading = []
    for s in states:
        x = s.reshape(-1, 12) - s.reshape(-1, 12).mean(axis=0)
        leading.append(np.linalg.svd(x, full_matrices=False)[0][:, 0])
    expected = abs(leading[0] @ leading[1])
    assert svcca(*states, SVCCAConfig(n_components=1)) == pytest.approx(expected)


def test_a_network_whose_states_do_not_vary_gets_nan_with_a_warning():
    states = _rnn_states(k=3)
    states[1] = 0.25  # constant: no direction varies
    with pytest.warns(UserWarning, match=r"networks \[1\] do not vary"):
        sim = svcca_matrix(states)
    assert np.isnan(sim[1]).all() and np.isnan(sim[:, 1]).all()
    assert np.isfinite(sim[0, 2])


def test_more_components_than_vary_warns_and_keeps_those_that_do():
    rng = np.random.default_rng(5)
    states = rng.normal(size=(40, 10, 2)) @ rng.normal(size=(2, 6))  # rank 2
    with pytest.warns(RankWarning, match="n_components = 4.*only 2"):
        sim = svcca(
            states, states @ np.diag(np.arange(1.0, 7.0)), SVCCAConfig(n_components=4)
        )
    assert sim == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    "states, match",
    [
        (np.zeros((3, 4, 5)), r"shape \(3, 4, 5\).*\[net, batch, time, units\]"),
        ([np.zeros((4, 5)), np.zeros((4, 5))], r"states\[0\].*\[batch, time, units\]"),
        ([np.ones((4, 5, 3)), np.ones((4, 6, 3))], r"\(4, 5\), \(4, 6\).*same trials"),
        ([np.full((2, 3, 4), np.nan)], "NaN or inf"),
        ([np.ones((1, 1, 4)), np.ones((1, 1, 4))], "1 sample"),
        ([], "no network"),
        ("states", "expected an array"),
    ],
)
def test_bad_states_are_refused(states, match):
    with pytest.raises(ValueError, match=match):
        svcca_matrix(states)


def test_too_many_components_for_the_width_are_refused():
    with pytest.raises(ValueError, match=r"n_components = 7 exceeds.*6 units"):
        svcca(np.ones((3, 4, 6)), np.ones((3, 4, 9)), SVCCAConfig(n_components=7))


@pytest.mark.parametrize(
    "values, words",
    [
        ({"variance_kept": 0.0}, ["variance_kept = 0.0", "(0.0, 1.0]"]),
        ({"variance_kept": 1.5}, ["variance_kept = 1.5", "(0.0, 1.0]"]),
        ({"n_components": -1}, ["n_components = -1", "[0, inf]"]),
        ({"n_components": 2.5}, ["n_components = 2.5", "integer"]),
        ({"n_components": True}, ["n_components = True", "integer"]),
    ],
)
def test_bad_config_values_are_refused(values, words):
    with pytest.raises(ConfigError) as err:
        SVCCAConfig(**values)
    for word in words:
        assert word in str(err.value)


def test_a_config_of_the_wrong_type_is_refused():
    with pytest.raises(ConfigError, match="pass an SVCCAConfig"):
        svcca_matrix(_rnn_states(), {"variance_kept": 0.9})
