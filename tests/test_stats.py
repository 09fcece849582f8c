"""Tests of degen.stats: the bootstraps against slow loops over the same
draws, known intervals and trends, and every error path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from degen import stats
from degen.config import ConfigError


def _draws(n: int, n_boot: int, seed: int) -> np.ndarray:
    """The resamples degen.stats draws: ``[n_boot, n]`` network indices."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def sd_reference(values, n_boot: int, seed: int) -> np.ndarray:
    """Population s.d. of each resample, one replicate at a time."""
    values = [float(v) for v in values]
    out = []
    for row in _draws(len(values), n_boot, seed):
        sample = [values[i] for i in row]
        mean = sum(sample) / len(sample)
        out.append(math.sqrt(sum((v - mean) ** 2 for v in sample) / len(sample)))
    return np.array(out)


def pair_mean_reference(d, n_boot: int, seed: int) -> np.ndarray:
    """Mean distance over ordered pairs of draws of different networks."""
    d = np.asarray(d, dtype=np.float64)
    out = []
    for row in _draws(len(d), n_boot, seed):
        total, count = 0.0, 0
        for a in row:
            for b in row:
                if a != b:
                    total += d[a, b]
                    count += 1
        out.append(total / count if count else math.nan)
    return np.array(out)


# -- bootstrap_sd -----------------------------------------------------------


@pytest.mark.parametrize("n, seed", [(2, 0), (5, 1), (9, 7)])
def test_bootstrap_sd_matches_the_loop(n, seed):
    values = np.random.default_rng(100 + n).normal(size=n)
    got = stats.bootstrap_sd(values, n_boot=300, seed=seed)
    assert got.shape == (300,)
    np.testing.assert_allclose(got, sd_reference(values, 300, seed), atol=1e-12)


def test_bootstrap_sd_of_equal_values_is_zero():
    np.testing.assert_array_equal(stats.bootstrap_sd([2.5] * 6, n_boot=50), 0.0)


def test_bootstrap_sd_same_seed_same_numbers():
    values = np.arange(7.0) ** 2
    a = stats.bootstrap_sd(values, n_boot=100, seed=3)
    b = stats.bootstrap_sd(values, n_boot=100, seed=3)
    c = stats.bootstrap_sd(values, n_boot=100, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("values", [[], [1.0]])
def test_bootstrap_sd_of_fewer_than_two_is_nan(values):
    got = stats.bootstrap_sd(values, n_boot=20)
    assert got.shape == (20,)
    assert np.isnan(got).all()


def test_bootstrap_sd_leaves_its_input_alone():
    values = np.array([3.0, 1.0, 2.0])
    stats.bootstrap_sd(values, n_boot=10)
    np.testing.assert_array_equal(values, [3.0, 1.0, 2.0])


@pytest.mark.parametrize("n_boot", [0, -5])
def test_bootstrap_rejects_too_few_replicates(n_boot):
    with pytest.raises(ConfigError, match=rf"n_boot = {n_boot} is out of range"):
        stats.bootstrap_sd([1.0, 2.0, 3.0], n_boot=n_boot)
    with pytest.raises(ConfigError, match=r"valid: \[1, inf\]"):
        stats.bootstrap_pair_mean(np.ones((3, 3)), n_boot=n_boot)


# -- bootstrap_pair_mean ----------------------------------------------------


@pytest.mark.parametrize("n, seed", [(2, 0), (4, 1), (6, 5)])
def test_bootstrap_pair_mean_matches_the_loop(n, seed):
    rng = np.random.default_rng(200 + n)
    d = rng.uniform(size=(n, n))  # not symmetric: ordered pairs both count
    np.fill_diagonal(d, 0.0)
    got = stats.bootstrap_pair_mean(d, n_boot=200, seed=seed)
    want = pair_mean_reference(d, 200, seed)
    assert got.shape == (200,)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("diagonal", [0.0, 100.0])
def test_a_network_is_never_compared_with_itself(diagonal):
    # Every pair of different networks is 1 apart; if a network drawn twice
    # were paired with itself the diagonal would pull the mean off 1.
    n, n_boot = 3, 400
    d = np.ones((n, n))
    np.fill_diagonal(d, diagonal)
    got = stats.bootstrap_pair_mean(d, n_boot=n_boot, seed=0)
    one_network = np.array([len(set(row)) == 1 for row in _draws(n, n_boot, 0)])
    assert one_network.any() and not one_network.all()  # both cases drawn
    assert np.isnan(got[one_network]).all()  # no pair of different networks
    np.testing.assert_array_equal(got[~one_network], 1.0)


def test_bootstrap_pair_mean_of_one_network_is_nan():
    got = stats.bootstrap_pair_mean(np.zeros((1, 1)), n_boot=15)
    assert got.shape == (15,)
    assert np.isnan(got).all()


@pytest.mark.parametrize("shape", [(2, 3), (4,), (2, 2, 2)])
def test_bootstrap_pair_mean_rejects_a_non_square_matrix(shape):
    with pytest.raises(ValueError) as info:
        stats.bootstrap_pair_mean(np.zeros(shape))
    assert f"shape {shape}" in str(info.value)
    assert "square" in str(info.value)


def test_bootstrap_pair_mean_leaves_its_input_alone():
    d = np.array([[0.0, 1.0], [2.0, 0.0]])
    stats.bootstrap_pair_mean(d, n_boot=10)
    np.testing.assert_array_equal(d, [[0.0, 1.0], [2.0, 0.0]])


# -- pair_mean --------------------------------------------------------------


def test_pair_mean_known_value():
    d = [[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]]
    assert stats.pair_mean(d) == 2.0  # (1 + 2 + 3) * 2 / 6


def test_pair_mean_ignores_the_diagonal():
    d = np.full((4, 4), 0.5)
    np.fill_diagonal(d, 9.0)
    assert stats.pair_mean(d) == 0.5


@pytest.mark.parametrize("d", [np.zeros((1, 1)), np.zeros((0, 0))])
def test_pair_mean_of_fewer_than_two_is_nan(d):
    assert math.isnan(stats.pair_mean(d))


# -- interval ---------------------------------------------------------------


@pytest.mark.parametrize(
    "level, want", [(0.9, (5.0, 95.0)), (0.5, (25.0, 75.0)), (1.0, (0.0, 100.0))]
)
def test_interval_of_evenly_spaced_samples(level, want):
    samples = np.arange(101.0)[::-1]  # order does not matter
    assert stats.interval(samples, level) == pytest.approx(want)


def test_interval_default_level_is_95_percent():
    assert stats.interval(np.arange(201.0)) == pytest.approx((5.0, 195.0))


def test_interval_ignores_non_finite_samples():
    samples = np.concatenate([np.arange(101.0), [np.nan, np.inf, -np.inf]])
    assert stats.interval(samples, 0.9) == pytest.approx((5.0, 95.0))


@pytest.mark.parametrize("samples", [[], [np.nan, np.nan]])
def test_interval_of_nothing_is_nan(samples):
    lo, hi = stats.interval(samples)
    assert math.isnan(lo) and math.isnan(hi)


# -- trend ------------------------------------------------------------------


def _replicates(x, slope, noise, seed=0, n_boot=500):
    """A measure ``slope * x`` plus independent noise per value: ``[m, n_boot]``."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    return slope * x[:, None] + noise * rng.normal(size=(x.size, n_boot))


def test_trend_of_an_exact_line_is_its_slope():
    x = np.array([1.0, 2.0, 4.0])
    reps = np.repeat((2.0 * x + 3.0)[:, None], 10, axis=1)
    got = stats.trend(x, reps)
    assert got["slope"] == pytest.approx(2.0)
    assert got["lo"] == pytest.approx(2.0) and got["hi"] == pytest.approx(2.0)
    assert got["direction"] == "up"


def test_trend_slopes_match_a_fit_per_replicate():
    x = np.array([1.0, 2.0, 3.0, 5.0])
    reps = _replicates(x, 0.3, 1.0, seed=1, n_boot=50)
    slopes = np.array([np.polyfit(x, reps[:, b], 1)[0] for b in range(50)])
    got = stats.trend(x, reps, level=0.9)
    assert got["slope"] == pytest.approx(np.median(slopes))
    lo, hi = np.percentile(slopes, [5, 95])
    assert (got["lo"], got["hi"]) == pytest.approx((lo, hi))


@pytest.mark.parametrize("slope, direction", [(1.0, "up"), (-1.0, "down")])
def test_trend_direction_of_a_clear_trend(slope, direction):
    x = [1, 2, 3, 4]
    got = stats.trend(x, _replicates(x, slope, 0.1))
    assert got["direction"] == direction
    assert got["slope"] == pytest.approx(slope, abs=0.05)
    assert got["lo"] <= got["slope"] <= got["hi"]


def test_trend_of_a_flat_noisy_measure_is_unclear():
    x = [1, 2, 3, 4]
    got = stats.trend(x, _replicates(x, 0.0, 1.0))
    assert got["direction"] == "unclear"
    assert got["lo"] < 0 < got["hi"]


def test_trend_rejects_replicates_of_the_wrong_shape():
    with pytest.raises(ValueError) as info:
        stats.trend([1, 2], np.zeros((3, 10)))
    assert "shape (3, 10)" in str(info.value)
    assert "expected [2, n_boot]" in str(info.value)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        stats.trend([1, 2], np.zeros(2))


def test_trend_needs_two_factor_values():
    with pytest.raises(ValueError, match="at least two factor values, got 1"):
        stats.trend([1.0], np.zeros((1, 10)))


def test_trend_leaves_its_input_alone():
    x = np.array([1.0, 2.0, 3.0])
    reps = _replicates(x, 1.0, 0.1, n_boot=20)
    before = reps.copy()
    stats.trend(x, reps)
    np.testing.assert_array_equal(reps, before)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
