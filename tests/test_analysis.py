"""Tests of what the task pages and the complexity chapter compute: the
task-specific checks (spectrum peak, decision accuracy, position error), the
feature-learning diagnostics through the store, and the tables of directions
that say whether a result agrees with the paper."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from degen import analysis, experiment, stats
from degen.metrics import learning as learning_metrics
from degen.profile import ProbeConfig, profile_from_dict
from degen.store import Store

# -- the sine page's spectrum peak ------------------------------------------


@pytest.mark.parametrize("freq", [1.0, 7.5, 20.33, 30.0])
def test_peak_frequency_finds_the_frequency_of_a_sine(freq):
    dt, n = 0.005, 190
    t = np.arange(n) * dt
    signal = 0.3 + np.sin(2 * np.pi * freq * t + 0.4)  # offset and phase: no matter
    peak = analysis.peak_frequency(signal, dt)
    # The window is under a second long: the 1 Hz peak is the coarsest.
    assert abs(peak - freq) < (0.35 if freq < 2 else 0.15)


def test_peak_frequency_works_along_the_last_axis():
    dt = 0.005
    t = np.arange(200) * dt
    freqs = np.array([[3.0, 11.0], [17.0, 29.0]])  # [trial, channel]
    signals = np.sin(2 * np.pi * freqs[..., None] * t)  # [trial, channel, time]
    np.testing.assert_allclose(analysis.peak_frequency(signals, dt), freqs, atol=0.15)


def test_peak_frequency_needs_two_samples():
    with pytest.raises(ValueError, match="1 samples"):
        analysis.peak_frequency(np.zeros((3, 1)), 0.01)


def test_nearest_frequency_snaps_to_each_channels_own_set():
    table = np.array([[1.0, 10.0, 20.0], [2.0, 12.0, 22.0]])  # [channel, freq]
    peaks = np.array([[[4.0, 16.0], [16.0, 3.0]]])  # [net, trial, channel]
    np.testing.assert_array_equal(
        analysis.nearest_frequency(peaks, table), [[[1.0, 12.0], [20.0, 2.0]]]
    )


def test_nearest_frequency_rejects_a_channel_mismatch():
    with pytest.raises(ValueError, match=r"shape \(4, 3\).*\(2, 5\)"):
        analysis.nearest_frequency(np.zeros((4, 3)), np.zeros((2, 5)))


# -- the delayed page's decision accuracy ---------------------------------------


def _decisions():
    """Two trials, two channels, a two-step response window at steps 2-3, and
    an auxiliary output after the decisions."""
    mask = np.zeros((2, 5, 4))
    mask[:, 2:4] = 1
    target = np.zeros((2, 5, 4))
    target[:, 2:4, :2] = np.array([[1.0, -1.0], [-1.0, 1.0]])[:, None, :]
    target[:, 2:4, 2:] = 0.5
    return target, mask


def test_decision_accuracy_counts_right_signs_in_the_window():
    target, mask = _decisions()
    perfect = target.copy()
    half = target.copy()
    half[0, 2:4, 0] = -0.2  # one of four decisions flipped
    # Outside the window the output may do anything; the auxiliary output is
    # not a decision.
    half[:, :2] = 9.0
    half[..., 2:] = -9.0
    acc = analysis.decision_accuracy(np.stack([perfect, half]), target, mask, 2)
    np.testing.assert_allclose(acc, [1.0, 0.75])


def test_decision_accuracy_uses_the_window_mean():
    target, mask = _decisions()
    out = target.copy()
    out[0, 2, 0], out[0, 3, 0] = -0.1, 0.5  # mean 0.2: still the right sign
    assert analysis.decision_accuracy(out[None], target, mask, 2)[0] == 1.0


def test_decision_accuracy_on_real_trials_of_the_task():
    from degen.tasks import make_task

    task = make_task("delayed", {"n_channels": 3, "aux_output": True})
    batch = task.sample(32, torch.Generator().manual_seed(0))
    right = analysis.decision_accuracy(
        batch.targets.numpy()[None], batch.targets.numpy(), batch.mask.numpy(), 3
    )
    wrong = analysis.decision_accuracy(
        -batch.targets.numpy()[None], batch.targets.numpy(), batch.mask.numpy(), 3
    )
    assert right.tolist() == [1.0] and wrong.tolist() == [0.0]


def test_decision_accuracy_needs_a_scored_step():
    target, mask = _decisions()
    mask[1, :, 1] = 0
    with pytest.raises(ValueError, match="no scored step"):
        analysis.decision_accuracy(target[None], target, mask, 2)


# -- the path page's position error --------------------------------------------


def test_position_error_is_the_mean_distance_per_step():
    target = np.zeros((2, 3, 2))  # [trial, time, dim]
    out = np.zeros((1, 2, 3, 2))
    out[0, 0, :, 0] = 3.0  # trial 0: 3 off in x at every step
    out[0, 1, 2] = [3.0, 4.0]  # trial 1: 5 off at the last step
    np.testing.assert_allclose(analysis.position_error(out, target), [[1.5, 1.5, 4.0]])


# -- bootstrap of a mean ----------------------------------------------------------


def test_bootstrap_mean_matches_a_loop():
    values = np.array([0.5, 2.0, 3.5, -1.0])
    reps = stats.bootstrap_mean(values, 50, seed=3)
    idx = np.random.default_rng(3).integers(0, 4, size=(50, 4))
    np.testing.assert_allclose(reps, [values[i].mean() for i in idx])


def test_bootstrap_mean_of_fewer_than_two_is_nan():
    assert np.isnan(stats.bootstrap_mean([1.0], 10)).all()


# -- directions and agreement ----------------------------------------------------

PROFILE = profile_from_dict(
    {
        "name": "t",
        "n_networks": 3,
        "model": {"n_hidden": 6},
        "tasks": {
            "delayed": {
                "config": {"n_channels": 1},
                "complexity": [1, 2],
                "factors": {
                    "delay": {
                        "field": "task.delay_max",
                        "values": [20, 40],
                        "row": "complexity",
                    },
                    "width": {
                        "field": "model.n_hidden",
                        "values": [6, 8],
                        "row": "width",
                    },
                },
            }
        },
    }
)


def _result(level, direction, expected, factor="complexity"):
    trend = {"slope": 1.0, "lo": 0.5, "hi": 1.5, "direction": direction}
    return SimpleNamespace(
        task="delayed",
        factor=factor,
        level=level,
        trend=trend,
        expected=expected,
        agrees=direction == expected,
    )


def test_agreement_text_names_every_disagreement():
    results = [
        _result("behavior", "down", "down"),
        _result("dynamics", "up", "down"),
        _result("weights", "unclear", "up", factor="delay"),
        _result("weight_change", "up", stats.NOT_STATED),
    ]
    text = analysis.agreement_text(PROFILE, results)
    assert text.startswith("1 of 3 agree with the paper.")
    assert "Opposite to the paper:** delayed discrimination dynamics" in text
    assert "(up, paper down)" in text
    assert "No clear direction" in text
    assert "weights along longest delay (steps)" in text
    assert "weight change" not in text  # the paper states no direction


def test_a_trend_that_could_not_be_measured_is_named_not_counted():
    missing = _result("weights", "unclear", "up")
    missing.trend = {"slope": math.nan, "lo": math.nan, "hi": math.nan}
    missing.trend["direction"] = "unclear"
    results = [_result("behavior", "down", "down"), missing]
    text = analysis.agreement_text(PROFILE, results)
    assert text.startswith("1 of 1 agree")
    assert "Not measured** (fewer than two conditions" in text
    assert "delayed discrimination weights along N (channels)" in text
    row = analysis.direction_table(PROFILE, results).splitlines()[-1]
    assert "| not measured | – |" in row and row.endswith("| – |")
    assert "nan" not in row


def test_direction_table_has_a_row_per_result():
    results = [_result("behavior", "down", "down"), _result("dynamics", "up", "down")]
    table = analysis.direction_table(PROFILE, results).splitlines()
    assert len(table) == 4
    assert "| ↓ down |" in table[2] and table[2].endswith("| yes |")
    assert table[3].endswith("| no |")


def test_the_paper_direction_of_the_diagnostics():
    assert analysis.expected_direction("complexity", "weight_change") == "up"
    assert analysis.expected_direction("complexity", "kernel_alignment") == "down"
    assert analysis.expected_direction("width", "weight_change") == stats.NOT_STATED
    assert analysis.expected_direction("width", "weights") == "down"


def test_complexity_factors_are_those_of_the_complexity_row():
    assert analysis.complexity_factors(PROFILE) == [
        ("delayed", "complexity"),
        ("delayed", "delay"),
    ]


def test_task_conditions_list_a_shared_condition_once():
    entries = analysis.task_conditions(PROFILE, "delayed")
    # N = 1 is the delay factor's delay 20 and the width factor's 6 units.
    assert [e.label for e in entries] == [
        "N (channels) = 1",
        "N (channels) = 2",
        "longest delay (steps) = 40",
        "width (units) = 8",
    ]
    assert entries[2].condition.task_config.delay_max == 40


def test_value_text():
    assert analysis.value_text(True) == "yes" and analysis.value_text(False) == "no"
    assert analysis.value_text(0.5) == "0.5" and analysis.value_text(3) == "3"


def test_training_table_states_the_convergence_rate():
    entries = analysis.task_conditions(PROFILE, "delayed")[:2]
    fake = [
        SimpleNamespace(
            n_usable=n,
            arrays={"diverged": np.array([False, d, False]), "epochs_trained": e},
            meta={"wall_time_s": 12.0},
        )
        for n, d, e in [(3, False, np.array([4, 5, 6])), (1, True, np.array([9] * 3))]
    ]
    table = analysis.training_table(entries, fake)
    assert "| N (channels) = 1 | 3 of 3 | 0 | 5 | 12 |" in table
    assert "| N (channels) = 2 | 1 of 3 | 1 | 9 | 12 |" in table
    assert "4 of 6 networks (67%)" in table
    assert table.endswith("Threshold: training MSE 0.01.")  # the paper's


def test_training_table_names_a_threshold_other_than_the_papers():
    p = profile_from_dict(
        {
            "name": "t",
            "model": {"n_hidden": 6},
            "tasks": {"path": {"config": {"threshold": 0.3}, "complexity": [2]}},
        }
    )
    entries = analysis.task_conditions(p, "path")
    fake = [
        SimpleNamespace(
            n_usable=8,
            arrays={"diverged": np.zeros(8, bool), "epochs_trained": np.ones(8)},
            meta={},
        )
    ]
    table = analysis.training_table(entries, fake)
    assert "Threshold: training MSE 0.3 (the paper's: 0.05; see the choices" in table


# -- weight change and kernel alignment through the store ----------------------

RAW = {
    "name": "tiny",
    "n_networks": 3,
    "model": {"n_hidden": 6},
    "train": {"lr": 0.01, "batch_size": 8, "steps_per_epoch": 4, "max_epochs": 2},
    "probe": {"n_trials": 2, "max_entries": 10},
    "tasks": {
        "delayed": {
            "config": {"delay_min": 2, "delay_max": 4, "threshold": 1.5},
            "complexity": [1, 2],
        }
    },
}


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("DEGEN_DEVICE", "cpu")


@pytest.fixture(scope="module")
def tiny():
    return profile_from_dict(copy.deepcopy(RAW))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("learning"))


def test_probe_batch_keeps_scored_entries_evenly_spread(tiny):
    task = experiment.condition(tiny, "delayed", 2).make_task()
    batch, entries = experiment.probe_batch(task, tiny.probe)
    assert batch.inputs.shape[0] == 2
    assert entries.shape == (10, 3)
    scored = batch.mask.numpy()[entries[:, 0], entries[:, 1], entries[:, 2]]
    assert (scored == 1).all()
    again, entries_again = experiment.probe_batch(task, tiny.probe)
    assert torch.equal(again.inputs, batch.inputs)
    np.testing.assert_array_equal(entries, entries_again)
    few = ProbeConfig(n_trials=1, max_entries=100_000)
    _, every = experiment.probe_batch(task, few)
    assert len(every) == int(
        task.sample(1, torch.Generator().manual_seed(few.seed)).mask.sum()
    )


def test_learning_measures_every_network_and_is_cached(tiny, store, monkeypatch):
    cond = experiment.condition(tiny, "delayed", 2)
    trained = experiment.get_trained(cond, store)
    r = experiment.learning(trained, tiny.probe, store)
    expected = np.linalg.norm(
        (trained.model.w_h.detach() - trained.initial["w_h"]).reshape(3, -1).numpy(),
        axis=1,
    )
    np.testing.assert_allclose(r["weight_change"], expected, rtol=1e-6)
    assert r["kernel_alignment"].shape == (3,)
    assert ((r["kernel_alignment"] > 0) & (r["kernel_alignment"] <= 1 + 1e-9)).all()
    assert r["usable"].tolist() == trained.usable.tolist()

    def boom(*args, **kwargs):
        raise AssertionError("recomputed; the store should have answered")

    monkeypatch.setattr(learning_metrics, "ntk_alignment", boom)
    again = experiment.learning(trained, tiny.probe, store)
    np.testing.assert_array_equal(again["kernel_alignment"], r["kernel_alignment"])


def test_an_untrained_network_keeps_its_kernel(tiny, store):
    cond = experiment.condition(tiny, "delayed", 1)
    trained = experiment.get_trained(cond, store)
    trained.model.load_state_tensors(trained.initial)  # as if it never trained
    trained.key = "untrained-" + trained.key  # its own store entry
    r = experiment.learning(trained, tiny.probe, store)
    np.testing.assert_allclose(r["weight_change"], 0.0)
    np.testing.assert_allclose(r["kernel_alignment"], 1.0)


@pytest.mark.parametrize("level", analysis.DIAGNOSTICS)
def test_measure_summarises_a_diagnostic_over_networks(tiny, store, level):
    result = analysis.measure(tiny, "delayed", "complexity", level, store, 100)
    per_net = [
        experiment.learning(experiment.get_trained(c, store), tiny.probe, store)[level]
        for c in experiment.conditions(tiny, "delayed")
    ]
    np.testing.assert_allclose(result.value, [v.mean() for v in per_net])
    assert result.expected == {"weight_change": "up", "kernel_alignment": "down"}[level]
    assert all(not math.isnan(v) for v in result.lo)
