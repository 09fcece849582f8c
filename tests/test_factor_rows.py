"""Tests of the paper's table of factor rows: factors shared by every task and
their base settings, scale-free slopes pooled into cells, the marks, counts
and covariation read off the cells, and the two extra measures (mean OOD loss
and SVCCA) on a tiny trained ensemble."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from degen import analysis, experiment, stats
from degen.config import ConfigError
from degen.metrics import representation as svcca
from degen.model import ModelConfig
from degen.profile import profile_from_dict
from degen.store import Store

GAMMA = {
    "field": "model.gamma",
    "values": [0.5, 2.0],
    "row": "feature_learning",
    "base": {"model.parameterization": "mup"},
}
WIDTH = {"field": "model.n_hidden", "values": [8, 16], "row": "width"}
BASE = {
    "name": "t",
    "n_networks": 3,
    "model": {"n_hidden": 6},
    "tasks": {
        "flipflop": {"config": {"n_steps": 12}, "complexity": [1, 2, 3]},
        "delayed": {"config": {"n_channels": 1}, "complexity": [1, 2]},
    },
}


def _raw(shared=None, **flipflop_factors) -> dict:
    raw = copy.deepcopy(BASE)
    if shared is not None:
        raw["factors"] = copy.deepcopy(shared)
    if flipflop_factors:
        raw["tasks"]["flipflop"]["factors"] = copy.deepcopy(flipflop_factors)
    return raw


def _error(raw) -> str:
    with pytest.raises(ConfigError) as info:
        profile_from_dict(raw)
    return str(info.value)


# -- shared factors and base settings -------------------------------------------


def test_shared_factors_are_swept_for_every_task_in_order():
    own = {"field": "task.n_steps", "values": [12, 20]}
    p = profile_from_dict(_raw({"gamma": GAMMA, "width": WIDTH}, trial_length=own))
    assert list(p.shared_factors) == ["gamma", "width"]
    order = ["complexity", "gamma", "width", "trial_length"]
    assert list(p.factors("flipflop")) == order
    assert list(p.factors("delayed")) == ["complexity", "gamma", "width"]
    assert list(p.tasks["flipflop"].factors) == ["trial_length"]  # own only
    assert p.values("delayed", "width") == (8, 16)


def test_base_settings_reach_the_conditions_of_their_factor_only():
    p = profile_from_dict(_raw({"gamma": GAMMA}))
    for task in ("flipflop", "delayed"):
        conds = experiment.conditions(p, task, "gamma")
        assert [c.model for c in conds] == [
            ModelConfig(n_hidden=6, parameterization="mup", gamma=g) for g in (0.5, 2)
        ]
        for c in experiment.conditions(p, task):
            assert c.model == ModelConfig(n_hidden=6)  # standard, gamma 1
    assert p.model.parameterization == "standard"
    # A factor's own number of networks overrides the task's.
    p = profile_from_dict(_raw({"width": {**WIDTH, "n_networks": 2}}))
    assert experiment.condition(p, "delayed", 8, "width").seeds == (0, 1)
    assert experiment.condition(p, "delayed", 1).seeds == (0, 1, 2)


NO_MUP = {k: v for k, v in GAMMA.items() if k != "base"}


@pytest.mark.parametrize(
    "raw, words",
    [
        (_raw({"gamma": NO_MUP}), ["gamma = 0.5", "'standard'", "'mup'"]),
        (_raw({"width": WIDTH}, width=WIDTH), ["tasks.flipflop.factors", "['width']"]),
        (_raw({"complexity": WIDTH}), ["factors names 'complexity'"]),
        ({**_raw(), "factors": [GAMMA]}, ["profile: factors = [", "give a mapping"]),
        # An empty list or a false value is a mistake too, not "no factors".
        ({**_raw(), "factors": []}, ["profile: factors = []", "give a mapping"]),
        ({**_raw(), "factors": False}, ["profile: factors = False", "a mapping"]),
        (
            _raw({"gamma": {"values": [1, 2], "row": "feature_learning"}}),
            ["profile: factors.gamma: missing key(s) ['field']"],
        ),
        ({**_raw(), "shared_factors": {}}, ["unknown key(s) ['shared_factors']"]),
        # A shared factor must fit every task: n_bits is the flip-flop's only.
        (_raw({"bits": {"field": "task.n_bits", "values": [1, 2]}}), ["DelayedConfig"]),
    ],
)
def test_bad_shared_factors_are_refused_at_load(raw, words):
    message = _error(raw)
    assert all(word in message for word in words), message


@pytest.mark.parametrize(
    "base, words",
    [
        ({"parameterization": "mup"}, ["'parameterization'", "'model'", "'train'"]),
        ({"optim.lr": 0.1}, ["'optim.lr'", "'task'"]),
        (
            {"model.parametrization": "mup"},
            ["a key of base, 'model.parametrization'", "not a field of ModelConfig"],
        ),
        ({"model.gamma": 2.0}, ["'model.gamma'", "the field the factor sweeps"]),
        ("mup", ["base", "'mup'"]),
        (["model.parameterization"], ["base", "['model.parameterization']"]),
        ({"model.parameterization": "mupp"}, ["'mupp'", "'mup'", "'standard'"]),
    ],
)
def test_bad_base_settings_name_the_value_and_what_is_valid(base, words):
    message = _error(_raw({"gamma": {**GAMMA, "base": base}}))
    assert all(word in message for word in ["gamma", *words]), message


# -- scale-free slopes ------------------------------------------------------------


def _position(x) -> np.ndarray:
    """Rank of each value among the distinct ones, lowest 0, highest 1."""
    distinct = sorted(set(x))
    return np.array([distinct.index(v) for v in x]) / (len(distinct) - 1)


def test_relative_slopes_recover_the_log_slope_against_position():
    rng = np.random.default_rng(0)
    x = np.array([8.0, 1.0, 2.0, 4.0])  # uneven spacing, any order
    a, b = rng.normal(size=50), rng.normal(size=50)
    reps = np.exp(a + np.outer(_position(x), b))
    np.testing.assert_allclose(stats.relative_slopes(x, reps), b, atol=1e-12)
    # Free of the measure's scale and of the spacing of the values.
    np.testing.assert_allclose(stats.relative_slopes(x**3, 1e4 * reps), b, atol=1e-12)


def test_relative_slopes_match_a_fit_per_replicate():
    rng = np.random.default_rng(1)
    x = [0.5, 0.5, 3.0, 1.0, 7.0]  # ties share a position
    reps = rng.uniform(0.1, 3.0, size=(5, 20))
    expected = [np.polyfit(_position(x), np.log(col), 1)[0] for col in reps.T]
    np.testing.assert_allclose(stats.relative_slopes(x, reps), expected, rtol=1e-10)
    tied = np.exp(np.outer([0.0, 0.0, 1.0], [0.7]))
    np.testing.assert_allclose(stats.relative_slopes([2, 2, 5], tied), [0.7])


def test_a_replicate_that_is_not_positive_gives_nan_alone():
    reps = np.array([[1.0, 1.0, 0.0], [np.e, -1.0, 1.0]])
    out = stats.relative_slopes([1, 2], reps)
    assert out[0] == pytest.approx(1.0) and np.isnan(out[1:]).all()
    for x in ([1.0], [2.0, 2.0]):
        with pytest.raises(ValueError, match="two distinct values"):
            stats.relative_slopes(x, np.ones((len(x), 3)))


def test_trend_is_the_direction_of_the_slope_replicates():
    x, reps = [1.0, 2.0, 4.0], np.random.default_rng(2).normal(size=(3, 40))
    reps[2] += 5.0
    slopes = [np.polyfit(x, col, 1)[0] for col in reps.T]
    np.testing.assert_allclose(stats.slope_replicates(x, reps), slopes)
    t = stats.trend(x, reps)
    assert t == pytest.approx(stats.direction(slopes)) and t["direction"] == "up"
    assert t["slope"] == pytest.approx(np.median(slopes))
    nan = stats.direction(np.full(5, np.nan))
    assert nan["direction"] == "unclear" and np.isnan(nan["slope"])


# -- cells of the paper's table ----------------------------------------------------


SPAN = np.linspace(-0.5, 0.5, 8)  # replicates on both sides of 0


def _result(level, b, task="flipflop", factor="complexity", x=(1, 2, 3), nan_at=()):
    """A LevelResult whose replicates are exp(b * position): relative slopes b."""
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), (8,))
    reps = np.exp(np.outer(_position(x), b))
    value = reps.mean(axis=1)
    value[list(nan_at)] = np.nan
    x = np.asarray(x, dtype=np.float64)
    return analysis.LevelResult(
        task, factor, level, x, value, value, value, np.full(x.size, 3), 3, reps,
        [], stats.trend(x, reps), "down",
    )  # fmt: skip


def test_relative_slopes_of_a_result_skip_values_without_a_measure():
    np.testing.assert_allclose(analysis.relative_slopes(_result("weights", 0.3)), 0.3)
    # Without the middle value the ends keep positions 0 and 1.
    r = _result("weights", 0.3, nan_at=[1])
    np.testing.assert_allclose(analysis.relative_slopes(r), 0.3)
    assert analysis.relative_slopes(_result("weights", 0.3, nan_at=[0, 1])) is None


def test_a_pooled_cell_averages_slopes_replicate_by_replicate():
    b1, b2 = np.linspace(-1, -0.2, 8), np.linspace(-0.6, 0.1, 8)[::-1]
    one = _result("dynamics", b1)
    other = _result("dynamics", b2, task="delayed", x=(1, 2))
    empty = _result("dynamics", 5.0, nan_at=[0, 1])  # no trend: left out
    third = _result("dynamics", 0.9, factor="delay", x=(20, 40))
    cells = [one, other, empty, third]
    cell = analysis.pooled_cell("complexity", "dynamics", cells)
    mean = (b1 + b2 + 0.9) / 3
    np.testing.assert_allclose(cell.slopes, mean, atol=1e-12)
    assert cell.trend == pytest.approx(stats.direction(mean))
    assert cell.expected == "down" and cell.results[2] is empty


MARKS = [(-0.5, "down", "✓"), (0.5, "up", "✗"), (SPAN, "unclear", "–")]


@pytest.mark.parametrize("b, direction, mark", MARKS)
def test_the_mark_of_a_cell(b, direction, mark):
    cell = analysis.pooled_cell("width", "weights", [_result("weights", b)])
    assert cell.measured and cell.trend["direction"] == direction
    assert cell.mark == mark and cell.agrees == (mark == "✓")
    empty = analysis.pooled_cell("width", "weights", [])
    assert not empty.measured and empty.mark == "" and not empty.agrees


# -- the table, its count and covariation --------------------------------------------

TABLE = profile_from_dict(_raw({"gamma": GAMMA}, width=WIDTH))
# Relative slopes: (task, factor) -> behavior, dynamics, weights.
SLOPES = {
    ("flipflop", "complexity"): (-0.5, -0.5, 0.5),
    ("delayed", "complexity"): (-0.3, -0.3, 0.3),
    ("flipflop", "gamma"): (0.2, -0.2, 0.2),
    ("delayed", "gamma"): (0.2, -0.2, 0.2),
    ("flipflop", "width"): (-0.1, -0.4, -0.6),
}


def _results(**changes) -> dict:
    out = {}
    for (task, factor), slopes in SLOPES.items():
        x = TABLE.values(task, factor)
        for level, b in zip(analysis.LEVELS, changes.get(factor, slopes), strict=True):
            out[task, factor, level] = _result(level, b, task, factor, x)
    # A diagnostic is no cell of the table.
    out["flipflop", "width", "weight_change"] = _result("weight_change", 9.0)
    return out


def test_the_paper_table_pools_every_task_and_marks_each_cell():
    cells = analysis.paper_table(TABLE, _results())
    assert set(cells) == {
        (r, lv) for r in analysis.ROW_TITLES for lv in analysis.LEVELS
    }
    assert cells["complexity", "weights"].trend["slope"] == pytest.approx(0.4)
    assert len(cells["feature_learning", "behavior"].results) == 2
    lines = analysis.paper_table_markdown(cells).splitlines()
    assert len(lines) == 6
    assert lines[2] == (
        "| task complexity | ✓ down -0.40 [-0.40, -0.40] (paper down) "
        "| ✓ down -0.40 [-0.40, -0.40] (paper down) "
        "| ✓ up +0.40 [+0.40, +0.40] (paper up) |"
    )
    assert lines[4].startswith("| width (muP) | ✓ down -0.10 [-0.10, -0.10]")
    assert (
        lines[5]
        == "| regularization (λ) | "
        + " | ".join(["not measured (paper down)"] * 3)
        + " |"
    )
    assert analysis.agreement_count(cells) == (9, 9)


def test_the_table_and_count_change_with_the_results():
    before = analysis.paper_table(TABLE, _results())
    after = analysis.paper_table(TABLE, _results(width=(-0.1, -0.4, 0.6)))
    old, new = (analysis.paper_table_markdown(c).splitlines() for c in (before, after))
    assert [i for i in range(6) if old[i] != new[i]] == [4]
    assert new[4].endswith("| ✗ up +0.60 [+0.60, +0.60] (paper down) |")
    assert analysis.agreement_count(after) == (8, 9)
    unclear = analysis.paper_table(TABLE, _results(width=(-0.1, 0.0, -0.6)))
    assert "| – unclear +0.00 [+0.00, +0.00] (paper down) |" in (
        analysis.paper_table_markdown(unclear)
    )
    assert analysis.agreement_count(unclear) == (8, 9)


def test_covariation_reads_dynamics_against_weights():
    cov = analysis.covariation(analysis.paper_table(TABLE, _results()))
    assert [e["row"] for e in cov] == list(analysis.ROW_TITLES)
    assert [e["paper"] for e in cov] == [
        "contravariant", "contravariant", "covariant", "covariant",
    ]  # fmt: skip
    assert [e["measured"] for e in cov] == [
        "contravariant", "contravariant", "covariant", "not measured",
    ]  # fmt: skip
    assert [e["same_sign_share"] for e in cov[:3]] == [0.0, 0.0, 1.0]
    assert np.isnan(cov[3]["same_sign_share"])
    unclear = _results(width=(0.0, np.linspace(-1, 1, 8), -0.6))
    assert analysis.covariation(analysis.paper_table(TABLE, unclear))[2] == {
        "row": "width", "paper": "covariant", "measured": "undetermined",
        "same_sign_share": 0.5,
    }  # fmt: skip


def test_same_sign_share_counts_replicates():
    dyn = analysis.pooled_cell("width", "dynamics", [_result("dynamics", -1.0)])
    b = np.array([-1.0, -2, -3, 4, 5, 6, 7, 8])  # three of eight negative
    wts = analysis.pooled_cell("width", "weights", [_result("weights", b)])
    cells = analysis.paper_table(TABLE, {})
    cells["width", "dynamics"], cells["width", "weights"] = dyn, wts
    (entry,) = [e for e in analysis.covariation(cells) if e["row"] == "width"]
    assert entry["same_sign_share"] == 3 / 8 and entry["measured"] == "undetermined"


# -- mean OOD loss and SVCCA on a tiny trained ensemble --------------------------

DELAYED = {"config": {"delay_min": 2, "delay_max": 4, "threshold": 1.5}}
TINY = {
    **{"name": "tiny", "n_networks": 3, "model": {"n_hidden": 6}},
    "train": {"lr": 0.01, "batch_size": 8, "steps_per_epoch": 4, "max_epochs": 2},
    "eval": {"n_trials": 4},
    "tasks": {"delayed": {**DELAYED, "complexity": [1, 2]}},
}


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("DEGEN_DEVICE", "cpu")


@pytest.fixture(scope="module")
def tiny():
    return profile_from_dict(copy.deepcopy(TINY))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("factor_rows"))


def _reference_svcca(a, b, kept=0.99) -> float:
    """1 - mean canonical correlation of the leading directions, by whitening."""
    reduced = []
    for s in (a, b):
        s = np.asarray(s, np.float64).reshape(-1, s.shape[-1])
        u, sv, _ = np.linalg.svd(s - s.mean(axis=0), full_matrices=False)
        p = int(np.argmax(np.cumsum(sv**2) / np.sum(sv**2) >= kept - 1e-12)) + 1
        reduced.append(u[:, :p] * sv[:p])
    white = [np.linalg.qr(r)[0] for r in reduced]
    corr = np.linalg.svd(white[0].T @ white[1], compute_uv=False)
    return 1.0 - float(np.clip(corr, 0, 1).mean())


def test_representation_is_svcca_of_the_usable_networks_and_cached(
    tiny, store, monkeypatch
):
    trained = experiment.get_trained(experiment.condition(tiny, "delayed", 2), store)
    assert trained.n_usable >= 2
    ev = tiny.eval_for("delayed")
    r = experiment.representation(trained, ev, tiny.representation, store)
    d, k = r["distances"], trained.n_usable
    assert d.shape == (k, k) and r["usable"].tolist() == trained.usable.tolist()
    np.testing.assert_allclose(d, d.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-9)
    states = experiment.hidden_states(trained, ev)[trained.usable]
    assert np.all((d >= -1e-9) & (d <= 1))
    assert d[0, 1] == pytest.approx(_reference_svcca(states[0], states[1]), abs=1e-8)

    def boom(*args, **kwargs):
        raise AssertionError("recomputed; the store should have answered")

    monkeypatch.setattr(svcca, "svcca_distances", boom)
    again = experiment.representation(trained, ev, tiny.representation, store)
    np.testing.assert_array_equal(again["distances"], d)


def test_representation_leaves_out_networks_that_are_not_usable(tiny, store):
    trained = experiment.get_trained(experiment.condition(tiny, "delayed", 1), store)
    ev, cfg = tiny.eval_for("delayed"), tiny.representation
    assert trained.n_usable == 3
    states = experiment.hidden_states(trained, ev)

    def part(*keep):
        arrays = {**trained.arrays, "converged": np.array(keep)}
        key = f"part{keep}-{trained.key}"
        return dataclasses.replace(trained, arrays=arrays, key=key)

    d = experiment.representation(part(True, False, True), ev, cfg, store)
    expected = svcca.svcca_distances(states[[0, 2]], cfg)
    np.testing.assert_allclose(d["distances"], expected, atol=1e-12)
    with pytest.warns(UserWarning, match="SVCCA needs two"):
        one = experiment.representation(part(False, True, False), ev, cfg, store)
    assert one["distances"].shape == (1, 1) and np.isnan(one["distances"]).all()


def test_measure_of_the_extra_levels(tiny, store):
    assert set(analysis.MEASURES) >= {"mean_ood_loss", "representation"}
    conds = experiment.conditions(tiny, "delayed")
    ev = tiny.eval_for("delayed")
    ood = analysis.measure(tiny, "delayed", "complexity", "mean_ood_loss", store, 50)
    rep = analysis.measure(tiny, "delayed", "complexity", "representation", store, 50)
    for i, c in enumerate(conds):
        trained = experiment.get_trained(c, store)
        b = experiment.behavior(trained, ev, store)
        assert ood.value[i] == pytest.approx(b["ood_loss"][b["usable"]].mean())
        d = experiment.representation(trained, ev, tiny.representation, store)
        assert rep.value[i] == pytest.approx(stats.pair_mean(d["distances"]))
    for r in (ood, rep):
        assert r.replicates.shape == (2, 50) and np.isfinite(r.lo).all()
        assert r.expected == stats.NOT_STATED and r.n_networks == 3
    assert analysis.expected_direction("feature_learning", "mean_ood_loss") == "up"
