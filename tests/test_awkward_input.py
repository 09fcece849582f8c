"""Dead units, constant states, non-finite weights: the measures on the kind
of input real trained networks produce."""

import warnings

import numpy as np
import pytest
import torch

from degen.config import ConfigError
from degen.metrics import dynamics, weights
from degen.metrics.dynamics import DSAConfig, RankWarning


def _states(k, n_trials=4, n_steps=12, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return np.tanh(rng.normal(size=(k, n_trials, n_steps, n)))


def test_too_short_trials_fail_before_any_decomposition(monkeypatch):
    def no_decomposition(*args, **kwargs):
        raise AssertionError("a decomposition ran on unusable input")

    monkeypatch.setattr(torch.linalg, "svd", no_decomposition)
    monkeypatch.setattr(torch.linalg, "qr", no_decomposition)
    states = _states(2, n_trials=4, n_steps=10)
    with pytest.raises(ConfigError) as err:
        dynamics.dsa(states, DSAConfig(n_delays=20, delay_interval=1, rank=2))
    for word in ("10", "n_delays=20", "delay_interval=1"):
        assert word in str(err.value)


def test_two_usable_steps_per_trial_are_enough_and_one_is_not():
    config = DSAConfig(n_delays=9, rank=2, n_iters=5)
    # 10 steps, 9 delays: 2 embedded steps, one transition per trial.
    result = dynamics.dsa(_states(2, n_steps=10), config)
    assert np.isfinite(result.distances).all()
    with pytest.raises(ConfigError, match="9 steps"):
        dynamics.dsa(_states(2, n_steps=9), config)


def test_two_equal_units_cap_the_rank_with_a_warning_and_no_nan():
    states = _states(2, n=3)
    states[..., 2] = states[..., 1]  # unit 2 copies unit 1
    with pytest.warns(RankWarning, match="numerical rank"):
        result = dynamics.dsa(states, DSAConfig(n_delays=1, rank=3, n_iters=20))
    assert np.isfinite(result.distances).all()
    assert np.isfinite(result.operators).all()


def test_identical_constant_systems_are_at_distance_zero():
    constant = np.broadcast_to(np.array([0.3, -0.2, 0.5]), (2, 4, 15, 3)).copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)  # constant: rank 1
        result = dynamics.dsa(constant, DSAConfig(n_delays=2, rank=2, n_iters=20))
    assert result.distances[0, 1] == 0.0
    assert np.isfinite(result.fit_loss).all()


def test_solvers_never_see_non_finite_weights(monkeypatch):
    def solver(*args, **kwargs):
        raise AssertionError("a solver was called on non-finite data")

    monkeypatch.setattr(weights, "quadratic_assignment", solver)
    monkeypatch.setattr(weights, "linear_sum_assignment", solver)
    monkeypatch.setattr(weights.ot.gromov, "gromov_wasserstein", solver)
    w = np.random.default_rng(0).normal(size=(3, 6, 6))
    w[2, 0, 0] = np.inf
    with pytest.raises(ValueError, match="network 2"):
        weights.weight_distance_matrix(w)


def test_integer_weights_are_cast_and_give_the_float_answer():
    w = np.random.default_rng(1).integers(-3, 4, size=(2, 6, 6))
    as_int = weights.permutation_distance(w[0], w[1])
    as_float = weights.permutation_distance(w[0].astype(float), w[1].astype(float))
    assert as_int.distance == pytest.approx(as_float.distance)
