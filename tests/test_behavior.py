"""Tests of degen.metrics.behavior: the masked loss against a hand
computation, the spread's definition, and every error path."""

from __future__ import annotations

import math

import numpy as np
import pytest

from degen.metrics.behavior import degeneracy, mse_per_network


def mse_reference(outputs, targets, mask) -> np.ndarray:
    """Masked MSE of each network, one element at a time."""
    out = []
    for net in outputs:
        total, weight = 0.0, 0.0
        for idx in np.ndindex(net.shape):
            total += mask[idx] * (net[idx] - targets[idx]) ** 2
            weight += mask[idx]
        out.append(total / max(weight, 1.0))
    return np.array(out)


def test_mse_per_network_by_hand():
    # Two networks, one trial of three steps with one output; the last step
    # is masked out, so only steps 0 and 1 count.
    outputs = np.array([[[[1.0], [2.0], [50.0]]], [[[0.0], [0.0], [0.0]]]])
    targets = np.array([[[1.0], [0.0], [0.0]]])  # [batch, time, out]
    mask = np.array([[[1.0], [1.0], [0.0]]])
    got = mse_per_network(outputs, targets, mask)
    # net 0: (0^2 + 2^2) / 2 = 2; net 1: (1^2 + 0^2) / 2 = 0.5
    np.testing.assert_allclose(got, [2.0, 0.5])


def test_mse_per_network_matches_the_loop():
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=(3, 4, 5, 2))  # [net, batch, time, out]
    targets = rng.normal(size=(4, 5, 2))
    mask = (rng.uniform(size=(4, 5, 2)) < 0.6).astype(float)
    got = mse_per_network(outputs, targets, mask)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, mse_reference(outputs, targets, mask))


def test_mse_per_network_accepts_a_per_network_mask():
    rng = np.random.default_rng(1)
    outputs = rng.normal(size=(2, 3, 4, 1))
    targets = rng.normal(size=(2, 3, 4, 1))  # already [net, batch, time, out]
    mask = np.zeros((2, 3, 4, 1))
    mask[0, :, :2] = 1.0  # network 0 is scored on its first two steps only
    mask[1] = 1.0
    got = mse_per_network(outputs, targets, mask)
    want = [
        ((outputs[0, :, :2] - targets[0, :, :2]) ** 2).mean(),
        ((outputs[1] - targets[1]) ** 2).mean(),
    ]
    np.testing.assert_allclose(got, want)


def test_mse_of_a_fully_masked_network_is_zero():
    outputs = np.ones((1, 2, 3, 1))
    got = mse_per_network(outputs, np.zeros((2, 3, 1)), np.zeros((2, 3, 1)))
    np.testing.assert_array_equal(got, [0.0])


def test_mse_per_network_leaves_its_inputs_alone():
    rng = np.random.default_rng(2)
    arrays = [
        rng.normal(size=(2, 3, 4, 1)),
        rng.normal(size=(3, 4, 1)),
        np.ones((3, 4, 1)),
    ]
    before = [a.copy() for a in arrays]
    mse_per_network(*arrays)
    for a, b in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(3, 4, 2), (2, 3, 4, 2, 1)])
def test_mse_per_network_rejects_outputs_without_four_axes(shape):
    outputs = np.zeros(shape)
    with pytest.raises(ValueError) as info:
        mse_per_network(outputs, np.zeros(shape[-3:]), np.ones(shape[-3:]))
    assert f"shape {shape}" in str(info.value)
    assert "[net, batch, time, out]" in str(info.value)


# -- degeneracy -------------------------------------------------------------


def test_degeneracy_is_the_population_sd():
    got = degeneracy([1.0, 3.0])
    # ddof = 0: sqrt(((1 - 2)^2 + (3 - 2)^2) / 2) = 1 (ddof = 1 would give sqrt 2)
    assert got == {"sd": 1.0, "mean": 2.0, "n": 2}


def test_degeneracy_matches_a_hand_formula():
    losses = [0.1, 0.4, 0.2, 0.9, 0.3]
    mean = sum(losses) / 5
    sd = math.sqrt(sum((v - mean) ** 2 for v in losses) / 5)
    got = degeneracy(losses)
    assert got["sd"] == pytest.approx(sd)
    assert got["mean"] == pytest.approx(mean)
    assert got["n"] == 5


def test_degeneracy_of_identical_networks_is_zero():
    assert degeneracy([0.25] * 4) == {"sd": 0.0, "mean": 0.25, "n": 4}


def test_degeneracy_of_nothing_is_nan():
    got = degeneracy([])
    assert math.isnan(got["sd"]) and math.isnan(got["mean"])
    assert got["n"] == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_degeneracy_rejects_non_finite_losses_naming_the_networks(bad):
    with pytest.raises(ValueError) as info:
        degeneracy([0.1, bad, 0.2, bad])
    assert "networks [1, 3]" in str(info.value)
    assert "exclude diverged networks" in str(info.value)


@pytest.mark.parametrize("shape", [(), (2, 3)])
def test_degeneracy_rejects_losses_that_are_not_a_vector(shape):
    with pytest.raises(ValueError) as info:
        degeneracy(np.zeros(shape))
    assert f"shape {shape}" in str(info.value)
    assert "expected [net]" in str(info.value)


def test_degeneracy_leaves_its_input_alone():
    losses = np.array([0.3, 0.1, 0.2])
    degeneracy(losses)
    np.testing.assert_array_equal(losses, [0.3, 0.1, 0.2])
