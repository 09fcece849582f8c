"""Tests of degen.experiment and degen.analysis on a tiny profile: train once
then load, measures of the usable networks cached in the store, conditions
that did not converge, store keys, and the level summary."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from degen import analysis, experiment, stats
from degen.metrics import behavior as behavior_metrics
from degen.metrics import dynamics as dsa
from degen.metrics import weights as wdist
from degen.model import Ensemble
from degen.profile import profile_from_dict
from degen.store import Store

# 3 networks of 6 units, two epochs of 4 steps. The threshold sits above the
# flip-flop's initial loss (about 1: outputs near 0, targets +-1), so every
# network converges in its first epoch whatever the platform's arithmetic.
RAW = {
    "name": "tiny",
    "n_networks": 3,
    "model": {"n_hidden": 6},
    "train": {
        "lr": 0.01,
        "batch_size": 8,
        "steps_per_epoch": 4,
        "max_epochs": 2,
        "patience": 1,
    },
    "eval": {"n_trials": 4},
    "dynamics": {"n_delays": 2, "rank": 3, "n_iters": 10, "n_restarts": 0},
    "weights": {"faq_restarts": 0, "two_opt_passes": 1},
    "tasks": {
        "flipflop": {
            "config": {"n_steps": 10, "threshold": 1.5},
            "complexity": [1, 2],
        }
    },
}
TINY_THRESHOLD = 1e-6  # no network gets there in 8 steps


def _profile(threshold: float = 1.5, complexity=(1, 2)):
    raw = copy.deepcopy(RAW)
    raw["tasks"]["flipflop"]["config"]["threshold"] = threshold
    raw["tasks"]["flipflop"]["complexity"] = list(complexity)
    return profile_from_dict(raw)


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    # analysis.measure trains with the default device; keep it on the CPU.
    monkeypatch.setenv("DEGEN_DEVICE", "cpu")


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "results")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A store the read-only tests share, so each condition trains once.
    Tests that mark networks unusable use a store of their own: the measures
    are keyed by the ensemble, so a marked copy would poison this one."""
    return Store(tmp_path_factory.mktemp("shared"))


@pytest.fixture
def profile():
    return _profile()


@pytest.fixture
def trained(profile, shared):
    return experiment.get_trained(experiment.condition(profile, "flipflop", 2), shared)


def _count_calls(monkeypatch, module, name):
    """Replace ``module.name`` by a wrapper that counts its calls."""
    real = getattr(module, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _forbid(monkeypatch, module, name):
    def boom(*args, **kwargs):
        raise AssertionError(f"{name} was called; the store should have answered")

    monkeypatch.setattr(module, name, boom)


# -- training once ----------------------------------------------------------


def test_get_trained_trains_once_then_loads(profile, store, monkeypatch):
    cond = experiment.condition(profile, "flipflop", 1)
    calls = _count_calls(monkeypatch, experiment, "train_ensemble")
    first = experiment.get_trained(cond, store, device="cpu")
    assert len(calls) == 1
    _forbid(monkeypatch, experiment, "train_ensemble")
    second = experiment.get_trained(cond, store, device="cpu")
    assert second.key == first.key
    assert store.keys("ensemble") == [first.key]
    for name, value in first.model.state_tensors().items():
        assert torch.equal(value, second.model.state_tensors()[name]), name
    for name, value in first.arrays.items():
        np.testing.assert_array_equal(value, second.arrays[name])
    assert first.meta["wall_time_s"] == second.meta["wall_time_s"]


def test_trained_ensemble_keeps_its_initial_weights(trained):
    cond = trained.condition
    task = cond.make_task()
    fresh = Ensemble(cond.model, task.n_inputs, task.n_outputs, cond.seeds)
    assert sorted(trained.initial) == sorted(fresh.state_tensors())
    for name, value in fresh.state_tensors().items():
        assert torch.equal(trained.initial[name], value), name
    assert not torch.equal(trained.initial["w_h"], trained.model.w_h.detach())


def test_the_tiny_profile_converges(trained):
    assert trained.usable.tolist() == [True, True, True]
    assert trained.n_usable == 3
    assert trained.meta["threshold"] == 1.5
    assert trained.meta["device"] == "cpu"


def test_get_trained_uses_the_default_store(profile, tmp_path, monkeypatch):
    monkeypatch.setenv("DEGEN_RESULTS", str(tmp_path / "env"))
    assert experiment.default_store().root == tmp_path / "env"
    got = experiment.get_trained(experiment.condition(profile, "flipflop", 1))
    assert Store(tmp_path / "env").keys("ensemble") == [got.key]


# -- the three measures -----------------------------------------------------


def test_behavior_shapes_and_summary(trained, profile, shared):
    r = experiment.behavior(trained, profile.eval, shared)
    assert r["ood_loss"].shape == (3,)
    assert np.isfinite(r["ood_loss"]).all()
    np.testing.assert_array_equal(r["usable"], trained.usable)
    want = behavior_metrics.degeneracy(r["ood_loss"])
    assert r["meta"]["sd"] == pytest.approx(want["sd"])
    assert r["meta"]["mean"] == pytest.approx(want["mean"])
    assert r["meta"]["n"] == 3


def test_behavior_is_the_loss_on_longer_trials(trained, profile, shared):
    r = experiment.behavior(trained, profile.eval, shared)
    ood = trained.condition.make_task().ood()
    assert ood.config.n_steps == 20  # twice the training length
    batch = experiment.evaluation_batch(ood, profile.eval)
    outputs, _ = trained.model.run(batch.inputs)
    want = behavior_metrics.mse_per_network(
        outputs.numpy(), batch.targets.numpy(), batch.mask.numpy()
    )
    np.testing.assert_allclose(r["ood_loss"], want)


def test_dynamics_shapes(trained, profile, shared):
    r = experiment.dynamics(trained, profile.eval, profile.dynamics, shared)
    assert r["distances"].shape == (3, 3)
    np.testing.assert_allclose(r["distances"], r["distances"].T)
    np.testing.assert_array_equal(np.diag(r["distances"]), 0.0)
    assert r["null"].shape == (3,)
    assert r["mds"].shape == (3, 2)
    assert r["fit_loss"].shape == (3, 3)
    assert np.isfinite(r["distances"]).all()
    # The null is DSA between two trial samples of each network.
    a = experiment.hidden_states(trained, profile.eval, 0)
    b = experiment.hidden_states(trained, profile.eval, 1)
    want = dsa.same_network_null(a, b, profile.dynamics)
    np.testing.assert_allclose(r["null"], want, atol=1e-9)


def test_weights_match_the_metric_on_the_trained_weights(trained, profile, shared):
    r = experiment.weights(trained, profile.weights, shared)
    w_kxnxn = trained.model.w_h.detach().numpy()
    want = wdist.weight_distance_matrix(w_kxnxn, profile.weights)
    assert r["distances"].shape == (3, 3)
    np.testing.assert_allclose(r["distances"], want)


def test_measures_cover_only_the_usable_networks(profile, tmp_path):
    # Mark network 1 as not converged (in a store of its own, as the measures
    # are keyed by the ensemble, not by which networks are usable).
    store = Store(tmp_path)
    cond = experiment.condition(profile, "flipflop", 1)
    trained = experiment.get_trained(cond, store)
    trained.arrays = {**trained.arrays, "converged": np.array([True, False, True])}
    keep = [0, 2]

    b = experiment.behavior(trained, profile.eval, store)
    assert b["ood_loss"].shape == (3,)  # every network is scored...
    want = behavior_metrics.degeneracy(b["ood_loss"][keep])  # ...two are summarised
    assert b["meta"]["n"] == 2
    assert b["meta"]["sd"] == pytest.approx(want["sd"])

    d = experiment.dynamics(trained, profile.eval, profile.dynamics, store)
    assert d["distances"].shape == (2, 2)
    assert d["null"].shape == (2,) and d["mds"].shape == (2, 2)
    np.testing.assert_array_equal(d["usable"], [True, False, True])

    w = experiment.weights(trained, profile.weights, store)
    w_kxnxn = trained.model.w_h.detach().numpy()[keep]
    want_w = wdist.weight_distance_matrix(w_kxnxn, profile.weights)
    np.testing.assert_allclose(w["distances"], want_w)


def test_measures_are_cached(profile, store, monkeypatch):
    cond = experiment.condition(profile, "flipflop", 2)
    trained = experiment.get_trained(cond, store)
    first = {
        "behavior": experiment.behavior(trained, profile.eval, store),
        "dynamics": experiment.dynamics(trained, profile.eval, profile.dynamics, store),
        "weights": experiment.weights(trained, profile.weights, store),
    }
    _forbid(monkeypatch, behavior_metrics, "mse_per_network")
    _forbid(monkeypatch, dsa, "dsa")
    _forbid(monkeypatch, wdist, "weight_distance_matrix")
    second = {
        "behavior": experiment.behavior(trained, profile.eval, store),
        "dynamics": experiment.dynamics(trained, profile.eval, profile.dynamics, store),
        "weights": experiment.weights(trained, profile.weights, store),
    }
    for kind, r in first.items():
        assert len(store.keys(kind)) == 1, kind
        assert r["meta"]["wall_time_s"] == second[kind]["meta"]["wall_time_s"]
        for name, value in r.items():
            if name != "meta":
                np.testing.assert_array_equal(value, second[kind][name])


def test_changing_a_measure_setting_recomputes(profile, store):
    cond = experiment.condition(profile, "flipflop", 2)
    trained = experiment.get_trained(cond, store)
    experiment.behavior(trained, profile.eval, store)
    other = profile_from_dict({**RAW, "eval": {"n_trials": 5}}).eval
    r = experiment.behavior(trained, other, store)
    assert len(store.keys("behavior")) == 2
    assert r["ood_loss"].shape == (3,)


# -- a condition whose networks did not converge ---------------------------


def test_unconverged_condition_gives_nan_with_a_warning(store):
    profile = _profile(threshold=TINY_THRESHOLD)
    cond = experiment.condition(profile, "flipflop", 1)
    trained = experiment.get_trained(cond, store)
    assert trained.n_usable == 0

    message = r"only 0 of 3 networks of flipflop n_bits=1 n=6 converged"
    with pytest.warns(UserWarning, match=message + "; the behavioral spread"):
        b = experiment.behavior(trained, profile.eval, store)
    assert math.isnan(b["meta"]["sd"]) and b["meta"]["n"] == 0
    assert np.isfinite(b["ood_loss"]).all()  # the losses are still recorded

    with pytest.warns(UserWarning, match=message + "; DSA needs two"):
        d = experiment.dynamics(trained, profile.eval, profile.dynamics, store)
    assert d["distances"].shape == (0, 0)
    assert math.isnan(stats.pair_mean(d["distances"]))
    with pytest.warns(UserWarning, match=message + "; the weight distance"):
        w = experiment.weights(trained, profile.weights, store)
    assert math.isnan(stats.pair_mean(w["distances"]))
    # Loading the cached, NaN result warns again, at the caller's line.
    with pytest.warns(UserWarning, match=message) as record:
        experiment.weights(trained, profile.weights, store)
    assert record[0].filename == __file__


def test_one_usable_network_gives_nan_measures(profile, tmp_path):
    store = Store(tmp_path)
    trained = experiment.get_trained(
        experiment.condition(profile, "flipflop", 1), store
    )
    trained.arrays = {**trained.arrays, "converged": np.array([False, True, False])}
    with pytest.warns(UserWarning, match="only 1 of 3 networks"):
        d = experiment.dynamics(trained, profile.eval, profile.dynamics, store)
    assert d["distances"].shape == (1, 1)
    assert np.isnan(d["distances"]).all() and np.isnan(d["null"]).all()
    with pytest.warns(UserWarning, match="only 1 of 3 networks"):
        w = experiment.weights(trained, profile.weights, store)
    assert np.isnan(w["distances"]).all()


@pytest.fixture(scope="module")
def unconverged(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("unconverged"))


@pytest.mark.parametrize("level", analysis.LEVELS)
def test_unconverged_conditions_are_left_out_of_the_trend(level, unconverged):
    store = unconverged
    profile = _profile(threshold=TINY_THRESHOLD)
    with pytest.warns(UserWarning, match="only 0 of 3 networks"):
        r = analysis.measure(profile, "flipflop", "complexity", level, store, 50)
    assert np.isnan(r.value).all()
    assert np.isnan(r.lo).all() and np.isnan(r.hi).all()
    np.testing.assert_array_equal(r.n_usable, [0, 0])
    assert r.trend["direction"] == "unclear"
    assert math.isnan(r.trend["slope"])


@pytest.fixture(scope="module")
def one_failed(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("one_failed"))


@pytest.mark.parametrize("level", analysis.LEVELS)
def test_a_failed_condition_between_good_ones_is_left_out(
    level, one_failed, monkeypatch
):
    # n_bits = 2 is marked as not converged; the trend is that of 1 and 3.
    profile = _profile(complexity=(1, 2, 3))
    real = experiment.get_trained

    def get_trained(cond, store=None, **kwargs):
        trained = real(cond, store, **kwargs)
        if cond.task_config.n_bits == 2:
            failed = np.zeros(3, dtype=bool)
            trained.arrays = {**trained.arrays, "converged": failed}
        return trained

    monkeypatch.setattr(experiment, "get_trained", get_trained)
    store = one_failed
    with pytest.warns(UserWarning, match="only 0 of 3 networks of flipflop n_bits=2"):
        r = analysis.measure(profile, "flipflop", "complexity", level, store, 100)
    np.testing.assert_array_equal(r.n_usable, [3, 0, 3])
    assert np.isfinite(r.value[[0, 2]]).all() and np.isnan(r.value[1])
    want = stats.trend(r.x[[0, 2]], r.replicates[[0, 2]])
    assert r.trend == want


# -- conditions and their store keys ----------------------------------------


def test_condition_round_trips_through_a_dict(profile):
    cond = experiment.condition(profile, "flipflop", 2)
    assert experiment.Condition.from_dict(cond.to_dict()) == cond
    through_json = json.loads(json.dumps(cond.to_dict()))
    assert experiment.Condition.from_dict(through_json) == cond


def test_condition_sets_the_swept_knob(profile):
    conds = experiment.conditions(profile, "flipflop")
    assert [c.task_config.n_bits for c in conds] == [1, 2]
    assert all(c.task_config.n_steps == 10 for c in conds)
    assert conds[0].seeds == (0, 1, 2)
    assert conds[0].model.n_hidden == 6


def _key(raw: dict, value: int = 1) -> str:
    cond = experiment.condition(profile_from_dict(raw), "flipflop", value)
    return Store("unused").key("ensemble", cond.to_dict())


def _changed(path: str, value) -> dict:
    raw = copy.deepcopy(RAW)
    *parents, last = path.split(".")
    node = raw
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value
    return raw


@pytest.mark.parametrize(
    "path, value",
    [
        ("model.n_hidden", 7),
        ("train.lr", 0.02),
        ("train.batch_size", 4),
        ("train.max_epochs", 3),
        ("tasks.flipflop.config.n_steps", 11),
        ("tasks.flipflop.config.p_switch", 0.1),
        ("tasks.flipflop.config.threshold", 1.4),
        ("seed", 1),
        ("n_networks", 4),
    ],
)
def test_every_field_of_the_condition_changes_the_key(path, value):
    assert _key(_changed(path, value)) != _key(RAW)


def test_the_swept_value_changes_the_key():
    assert _key(RAW, 1) != _key(RAW, 2)


@pytest.mark.parametrize(
    "path, value",
    [
        ("name", "other"),
        ("description", "words"),
        ("eval.n_trials", 9),
        ("dynamics.rank", 2),
        ("weights.two_opt_passes", 2),
    ],
)
def test_measure_settings_do_not_retrain(path, value):
    assert _key(_changed(path, value)) == _key(RAW)


# -- analysis.measure --------------------------------------------------------


@pytest.mark.parametrize("level", analysis.LEVELS)
def test_measure_gives_a_level_result(level, profile, shared):
    r = analysis.measure(profile, "flipflop", "complexity", level, shared, 200)
    assert isinstance(r, analysis.LevelResult)
    assert (r.task, r.factor, r.level) == ("flipflop", "complexity", level)
    np.testing.assert_array_equal(r.x, [1.0, 2.0])
    assert r.value.shape == r.lo.shape == r.hi.shape == (2,)
    assert r.replicates.shape == (2, 200)
    assert len(r.per_condition) == 2
    np.testing.assert_array_equal(r.n_usable, [3, 3])
    assert r.n_networks == 3
    finite = np.isfinite(r.value)
    assert finite.all()
    assert (r.lo[finite] <= r.value[finite]).all()
    assert (r.value[finite] <= r.hi[finite]).all()
    assert set(r.trend) == {"slope", "lo", "hi", "direction"}
    assert r.trend["direction"] in ("up", "down", "unclear")
    assert r.expected == stats.EXPECTED["complexity"][level]
    assert r.agrees == (r.trend["direction"] == r.expected)


def test_measure_values_are_the_plain_statistics(profile, shared):
    store = shared
    b = analysis.measure(profile, "flipflop", "complexity", "behavior", store, 50)
    w = analysis.measure(profile, "flipflop", "complexity", "weights", store, 50)
    for i, cond in enumerate(experiment.conditions(profile, "flipflop")):
        trained = experiment.get_trained(cond, store)
        losses = experiment.behavior(trained, profile.eval, store)["ood_loss"]
        assert b.value[i] == pytest.approx(np.std(losses))
        d = experiment.weights(trained, profile.weights, store)["distances"]
        assert w.value[i] == pytest.approx(stats.pair_mean(d))


def test_measure_with_one_usable_network_is_nan(profile, tmp_path, monkeypatch):
    # One network's spread is no spread: NaN, as the bootstrap gives.
    real = experiment.get_trained

    def get_trained(cond, store=None, **kwargs):
        trained = real(cond, store, **kwargs)
        trained.arrays = {**trained.arrays, "converged": np.array([1, 0, 0], bool)}
        return trained

    monkeypatch.setattr(experiment, "get_trained", get_trained)
    with pytest.warns(UserWarning, match="only 1 of 3 networks"):
        r = analysis.measure(
            profile, "flipflop", "complexity", "behavior", Store(tmp_path)
        )
    assert np.isnan(r.value).all()
    assert r.trend["direction"] == "unclear"


def test_measure_rejects_an_unknown_level(profile, store):
    with pytest.raises(ValueError, match=r"level = 'style'; valid levels: \["):
        analysis.measure(profile, "flipflop", "complexity", "style", store)
