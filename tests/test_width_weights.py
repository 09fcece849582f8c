"""Weight distances along the width are divided by the number of matrix
entries (PAPER.md: when widths differ); along other factors they are not."""

import numpy as np
import pytest

from degen import analysis, experiment, stats
from degen.profile import profile_from_dict
from degen.store import Store

WIDTHS = [4, 6]
RAW = {
    "name": "widths",
    "n_networks": 3,
    "model": {"n_hidden": 5},
    "train": {"lr": 0.01, "batch_size": 4, "steps_per_epoch": 3, "max_epochs": 1},
    "eval": {"n_trials": 4},
    "weights": {"tabu_iters": 50},
    "dynamics": {"n_delays": 2, "rank": 4},  # 8-step trials
    "tasks": {
        "flipflop": {
            # Above the initial loss: every network converges at once.
            "config": {"n_bits": 1, "n_steps": 8, "threshold": 1.5},
            "complexity": [1, 2],
            "factors": {
                "width": {"field": "model.n_hidden", "values": WIDTHS, "row": "width"}
            },
        }
    },
}


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("DEGEN_DEVICE", "cpu")


def test_only_the_width_factor_normalizes():
    profile = profile_from_dict(RAW)
    assert experiment.weights_config_for(profile, "flipflop", "width").normalize
    assert not experiment.weights_config_for(profile, "flipflop").normalize
    assert not profile.weights.normalize  # the profile itself is left alone


def test_distances_along_the_width_are_divided_by_n_squared(tmp_path):
    profile = profile_from_dict(RAW)
    store = Store(tmp_path / "results")
    result = analysis.measure(profile, "flipflop", "width", "weights", store, 50)
    for n, cond, value in zip(
        WIDTHS,
        experiment.conditions(profile, "flipflop", "width"),
        result.value,
        strict=True,
    ):
        assert cond.model.n_hidden == n
        trained = experiment.get_trained(cond, store)
        raw = experiment.weights(trained, profile.weights, store)["distances"]
        assert stats.pair_mean(raw) > 0
        assert value == pytest.approx(stats.pair_mean(raw) / n**2, rel=1e-12)
        normalized = result.per_condition[WIDTHS.index(n)]["distances"]
        np.testing.assert_allclose(normalized, raw / n**2, rtol=1e-12)
