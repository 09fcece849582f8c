"""Tests of degen.profile: the shipped profiles load, and a bad profile stops
with a message naming the value and what would be valid."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest

from degen import experiment
from degen.config import ConfigError
from degen.metrics.dynamics import DSAConfig
from degen.profile import (
    Profile,
    TaskSweep,
    available_profiles,
    load_profile,
    profile_from_dict,
)

BASE = {
    "name": "t",
    "n_networks": 3,
    "model": {"n_hidden": 6},
    "tasks": {"flipflop": {"config": {"n_steps": 12}, "complexity": [1, 2]}},
}


def _raw(**changes) -> dict:
    """A deep copy of BASE with ``changes`` applied at the top level."""
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return raw


def _flipflop(**changes) -> dict:
    """BASE with the flip-flop sweep's entries changed."""
    sweep = {**copy.deepcopy(BASE["tasks"]["flipflop"]), **changes}
    return _raw(tasks={"flipflop": sweep})


def _config(**changes) -> dict:
    """BASE with the flip-flop task config's values changed."""
    return _flipflop(config={"n_steps": 12, **changes})


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        profile_from_dict(raw)
    return str(info.value)


# -- the shipped profiles -------------------------------------------------


def test_smoke_profile_loads():
    p = load_profile("smoke")
    assert isinstance(p, Profile)
    assert p.name == "smoke"
    assert p.n_networks == 3
    assert p.seeds == (0, 1, 2)
    assert p.model.n_hidden == 12
    assert p.train.lr == 0.01 and p.train.max_epochs == 3
    assert p.eval.n_trials == 8
    assert (p.dynamics.n_delays, p.dynamics.rank) == (2, 4)
    assert p.weights.faq_restarts == 0
    assert list(p.tasks) == ["flipflop", "sine", "delayed", "path"]
    assert p.values("flipflop") == (1, 2)
    assert p.tasks["flipflop"].config["threshold"] == 1.5
    assert list(p.factors("delayed")) == ["complexity", "aux", "nuclear"]
    # One factor of each row of the paper's table.
    rows = {spec.row for t in p.tasks for spec in p.factors(t).values()}
    assert rows == {"complexity", "feature_learning", "width", "regularization"}


def test_default_profile_loads():
    p = load_profile("default")
    assert p.name == "default"
    assert p.n_networks == 12
    assert p.model.n_hidden == 64
    assert p.train.clip_grad_norm == 1.0
    assert p.dynamics.score == "angular"
    assert p.weights.methods == ("identity", "signature", "faq")
    assert p.weights.tabu_iters == 2000
    assert p.values("flipflop") == (1, 2, 3, 4)
    assert p.values("sine") == (1, 2, 3)
    assert p.values("delayed") == (1, 2, 3)
    assert p.values("path") == (2, 3)
    # The delayed task's other complexity experiments, on its N = 1 base.
    assert p.values("delayed", "delay") == (20, 40)
    assert p.values("delayed", "aux") == (False, True)
    for factor in ("delay", "aux"):
        assert p.factor("delayed", factor).row == "complexity"
    base = experiment.condition(p, "delayed", 1)
    assert experiment.condition(p, "delayed", 20, "delay") == base
    assert experiment.condition(p, "delayed", False, "aux") == base
    assert experiment.condition(p, "delayed", 0, "nuclear") == base
    # Feature learning and width on every task, under muP; gamma = 1 is the
    # 64-unit condition of the width sweep.
    for task in p.tasks:
        assert p.values(task, "gamma") == (0.5, 1, 2)
        assert p.values(task, "width") == (32, 64, 128)
        gamma_1 = experiment.condition(p, task, 1, "gamma")
        assert gamma_1 == experiment.condition(p, task, 64, "width")
        assert gamma_1.model.parameterization == "mup"
        assert experiment.condition(p, task, p.values(task)[0]).model == p.model


def test_paper_profile_sweeps_every_factor_on_every_task():
    p = load_profile("paper")
    assert (p.n_networks, p.model.n_hidden) == (50, 128)
    for task in p.tasks:
        rows = {spec.row for spec in p.factors(task).values()}
        assert rows == {"complexity", "feature_learning", "width", "regularization"}
    widths = p.values("flipflop", "width")
    assert len(widths) == 12 and (min(widths), max(widths)) == (32, 512)
    assert experiment.condition(p, "flipflop", 32, "width").task_config.n_bits == 3


def test_shipped_profiles_are_available():
    assert {"smoke", "default", "paper"} <= set(available_profiles())


def test_paper_profile_is_at_the_papers_scale():
    p = load_profile("paper")
    assert (p.n_networks, p.model.n_hidden) == (50, 128)
    assert p.device == "auto"
    assert set(p.tasks) == {"flipflop", "sine", "delayed", "path"}
    assert p.values("flipflop") == tuple(range(1, 8))
    assert p.values("path") == (2, 3)
    # The paper's thresholds and its path-integration training table.
    thresholds = {"flipflop": 0.001, "delayed": 0.01, "sine": 0.05, "path": 0.05}
    for task, threshold in thresholds.items():
        assert experiment.condition(
            p, task, p.values(task)[0]
        ).task_config.threshold == (threshold)
    assert p.train_for("path").lr == 0.001 and p.train_for("path").max_epochs == 1000
    assert p.train_for("path").plateau_patience == 40


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_profile_device_accepts_the_valid_names(device):
    assert profile_from_dict(_raw(device=device)).device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:x", ""])
def test_profile_device_rejects_other_names(device):
    with pytest.raises(ConfigError, match=rf"device = {device!r}; valid: 'auto'"):
        profile_from_dict(_raw(device=device))


def test_minimal_profile_fills_defaults_and_converts_types():
    p = profile_from_dict(_raw(seed=5, train={"lr": 1}))
    assert p.seeds == (5, 6, 7)
    assert p.train.lr == 1.0 and isinstance(p.train.lr, float)  # int -> float
    assert p.values("flipflop") == (1, 2)  # YAML list -> tuple
    assert p.eval.n_trials == 64  # EvalConfig's default
    assert p.description == ""


def test_profile_from_dict_leaves_its_input_alone():
    raw = _raw()
    before = copy.deepcopy(raw)
    profile_from_dict(raw)
    assert raw == before


# -- bad values: each message names the value and what is valid ----------


@pytest.mark.parametrize(
    "raw, expected",
    [
        pytest.param(
            _raw(tasks={"flipflp": {"complexity": [1]}}),
            ["unknown task 'flipflp'", "valid tasks: [", "'flipflop'"],
            id="unknown-task",
        ),
        pytest.param(
            _flipflop(complexity=[1, 0]),
            ["n_bits = 0 is out of range", "valid: [1, 64]"],
            id="complexity-zero",
        ),
        pytest.param(
            _config(threshold=-0.1),
            ["threshold = -0.1 is out of range", "valid: (0.0, inf]"],
            id="negative-threshold",
        ),
        pytest.param(
            _config(p_switch=1.5),
            ["p_switch = 1.5 is out of range", "valid: (0.0, 1.0]"],
            id="p-switch-above-1",
        ),
        pytest.param(
            _config(n_stepz=10),
            ["tasks.flipflop.config: unknown key(s) ['n_stepz']", "'n_steps'"],
            id="unknown-task-config-key",
        ),
        pytest.param(
            _flipflop(complexity=[]),
            ["tasks.flipflop sweeps nothing", "'n_bits'"],
            id="empty-complexity",
        ),
        pytest.param(
            _flipflop(complexity=[1, "2"]),
            ["tasks.flipflop.complexity", "'2' is not a finite number"],
            id="complexity-wrong-type",
        ),
        pytest.param(
            _flipflop(complexities=[1]),
            ["tasks.flipflop: unknown key(s) ['complexities']", "'complexity'"],
            id="unknown-sweep-key",
        ),
        pytest.param(
            _raw(tasks={"flipflop": [1, 2]}),
            ["tasks.flipflop must be a mapping, got [1, 2]"],
            id="sweep-not-a-mapping",
        ),
        pytest.param(
            _flipflop(dynamics={"delays": 3}),
            ["tasks.flipflop.dynamics: unknown key(s) ['delays']", "'n_delays'"],
            id="unknown-task-dynamics-key",
        ),
        pytest.param(
            _flipflop(dynamics={"rank": 0}),
            ["rank = 0 is out of range", "valid: [1, inf]"],
            id="bad-task-dynamics-value",
        ),
        pytest.param(
            _raw(tasks={}),
            ["tasks = {}", "'flipflop'"],
            id="no-tasks",
        ),
        pytest.param(
            _raw(tasks=["flipflop"]),
            ["tasks = ['flipflop']", "give a mapping of task names"],
            id="tasks-not-a-mapping",
        ),
        pytest.param(
            {k: v for k, v in BASE.items() if k != "tasks"},
            ["missing key 'tasks'"],
            id="missing-tasks",
        ),
        pytest.param(
            {k: v for k, v in BASE.items() if k != "name"},
            ["missing key 'name'"],
            id="missing-name",
        ),
        pytest.param(
            _raw(n_nets=3),
            ["unknown key(s) ['n_nets']", "'n_networks'"],
            id="unknown-top-level-key",
        ),
        pytest.param(
            _raw(n_networks=1),
            ["n_networks = 1 is out of range", "valid: [2, inf]"],
            id="one-network",
        ),
        pytest.param(
            _raw(n_networks=2.5),
            ["n_networks = 2.5 has type float", "expected int"],
            id="n-networks-float",
        ),
        pytest.param(
            _raw(seed=-1),
            ["seed = -1 is out of range", "valid: [0, inf]"],
            id="negative-seed",
        ),
        pytest.param(
            _raw(name=7),
            ["name = 7 has type int", "expected str"],
            id="name-not-a-string",
        ),
        pytest.param(
            _raw(model={"n_hidden": "64"}),
            ["n_hidden = '64' has type str", "expected int"],
            id="width-as-string",
        ),
        pytest.param(
            _raw(model={"n_hidden": True}),
            ["n_hidden = True has type bool", "expected int"],
            id="width-as-bool",
        ),
        pytest.param(
            _raw(model={"n_hidden": -4}),
            ["n_hidden = -4 is out of range", "valid: [1, 100000]"],
            id="negative-width",
        ),
        pytest.param(
            _raw(model=5),
            ["model must be a mapping, got 5"],
            id="section-not-a-mapping",
        ),
        pytest.param(
            _raw(train={"lr": float("inf")}),
            ["lr = inf", "finite number"],
            id="infinite-lr",
        ),
    ],
)
def test_bad_profile_is_rejected_with_a_message(raw, expected):
    message = _error(raw)
    for text in expected:
        assert text in message


# One unknown key and one bad value per section: each section is validated,
# and the message says which section.
SECTIONS = {
    "model": ({"width": 6}, {"parameterization": "mean_field"}, "'standard'"),
    "train": ({"learning_rate": 0.1}, {"batch_size": 0}, "[1, inf]"),
    "dynamics": ({"delays": 2}, {"score": "cosine"}, "'angular'"),
    "weights": ({"method": ["faq"]}, {"methods": ["faq", "nope"]}, "'gw'"),
    "eval": ({"trials": 8}, {"n_trials": 0}, "[1, inf]"),
    "probe": ({"entries": 8}, {"max_entries": 1}, "[2, inf]"),
}


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_unknown_key_in_each_section_is_rejected(section):
    unknown, _, _ = SECTIONS[section]
    message = _error(_raw(**{section: unknown}))
    (key,) = unknown
    assert f"profile: {section}: unknown key(s) [{key!r}]" in message
    assert "valid keys:" in message


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_bad_value_in_each_section_is_rejected(section):
    _, bad, valid = SECTIONS[section]
    message = _error(_raw(**{section: bad}))
    ((key, value),) = bad.items()
    assert f"{key} = " in message
    shown = value[-1] if isinstance(value, list) else value  # the bad element
    assert repr(shown) in message
    assert valid in message


# -- loading by name and by path -------------------------------------------


def test_missing_profile_name_lists_the_available_ones():
    with pytest.raises(ConfigError) as info:
        load_profile("no_such_profile")
    message = str(info.value)
    assert "profile 'no_such_profile' not found" in message
    assert "available profiles:" in message
    assert "'smoke'" in message and "'default'" in message


def test_missing_profile_path_is_rejected(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="not found"):
        load_profile(path)


def test_profile_from_a_path_is_named_after_its_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "n_networks: 2\n"
        "model: {n_hidden: 4}\n"
        "tasks:\n"
        "  flipflop:\n"
        "    complexity: [1]\n"
    )
    p = load_profile(path)
    assert p.name == "tiny"
    assert p.seeds == (0, 1)
    assert p.model.n_hidden == 4


@pytest.mark.parametrize(
    "text, shown", [("- a\n- b\n", "['a', 'b']"), ("", "None"), ("7\n", "7")]
)
def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path, text, shown):
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    message = str(info.value)
    assert "must be a YAML mapping" in message
    assert f"got {shown}" in message


def test_a_bad_file_is_named_in_the_message(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("tasks:\n  flipflop:\n    complexity: [1]\nmodel: {width: 3}\n")
    with pytest.raises(ConfigError) as info:
        load_profile(path)
    assert "profile bad.yaml: model: unknown key(s) ['width']" in str(info.value)


def test_profiles_folder_can_be_moved(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text("tasks: {flipflop: {complexity: [3]}}\n")
    monkeypatch.setenv("DEGEN_PROFILES", str(tmp_path))
    assert available_profiles() == ["mine"]
    assert load_profile("mine").values("flipflop") == (3,)
    with pytest.raises(ConfigError, match=r"available profiles: \['mine'\]"):
        load_profile("smoke")


# -- Profile.values ---------------------------------------------------------


def test_values_of_an_unknown_task_lists_the_profile_tasks():
    p = profile_from_dict(_raw())
    with pytest.raises(ConfigError) as info:
        p.values("mante")
    assert "task 'mante' is not in profile 't'" in str(info.value)
    assert "['flipflop']" in str(info.value)


def test_values_of_an_unknown_factor_lists_the_factors():
    p = profile_from_dict(_raw())
    with pytest.raises(ConfigError) as info:
        p.values("flipflop", "width")
    assert "factor = 'width'" in str(info.value)
    assert "['complexity']" in str(info.value)


# -- per-task DSA overrides ------------------------------------------------


def test_dsa_config_for_applies_the_task_override():
    p = profile_from_dict(
        _raw(
            dynamics={"n_delays": 2, "rank": 3, "n_iters": 10},
            tasks=_flipflop(dynamics={"rank": 2, "score": "euclidean"})["tasks"],
        )
    )
    got = experiment.dsa_config_for(p, "flipflop")
    assert got == DSAConfig(n_delays=2, rank=2, n_iters=10, score="euclidean")
    assert p.dynamics.rank == 3  # the profile's own settings are unchanged


def test_dsa_config_for_without_override_is_the_profile_setting():
    p = profile_from_dict(_raw(dynamics={"n_delays": 2, "rank": 3}))
    assert experiment.dsa_config_for(p, "flipflop") == p.dynamics


def test_dsa_config_for_rejects_an_unknown_override_key():
    # profile_from_dict rejects this too (see above); a Profile built by hand
    # still meets the check in dsa_config_for.
    p = profile_from_dict(_raw())
    sweep = TaskSweep(config={}, complexity=(1,), dynamics={"bogus": 1})
    p = dataclasses.replace(p, tasks={"flipflop": sweep})
    with pytest.raises(ConfigError) as info:
        experiment.dsa_config_for(p, "flipflop")
    assert "tasks.flipflop.dynamics: unknown key(s) ['bogus']" in str(info.value)
    assert "'rank'" in str(info.value)


@pytest.mark.parametrize("bad", [3, None, ["default"]])
def test_a_profile_parameter_of_the_wrong_type_is_named(bad):
    with pytest.raises(
        ConfigError, match=rf"profile = {re.escape(repr(bad))} has type .*smoke"
    ):
        load_profile(bad)


# -- factors other than the complexity knob -----------------------------------

FACTORS = {
    "trial_length": {"field": "task.n_steps", "values": [12, 20]},
    "width": {
        "field": "model.n_hidden",
        "values": [8, 16],
        "row": "width",
        "label": "units",
    },
    "lr": {"field": "train.lr", "values": [0.01, 0.02], "row": "regularization"},
}


def test_factors_set_the_field_they_name():
    profile = profile_from_dict(_flipflop(factors=FACTORS))
    assert list(profile.factors("flipflop")) == [
        "complexity",
        "trial_length",
        "width",
        "lr",
    ]
    long = experiment.condition(profile, "flipflop", 20, "trial_length")
    assert long.task_config.n_steps == 20
    wide = experiment.condition(profile, "flipflop", 16, "width")
    assert wide.model.n_hidden == 16 and wide.task_config.n_steps == 12
    fast = experiment.condition(profile, "flipflop", 0.02, "lr")
    assert fast.train.lr == 0.02 and fast.model == profile.model
    assert profile.factor("flipflop", "width").axis_label == "units"
    assert profile.factor("flipflop", "trial_length").axis_label == "n_steps"


def test_the_complexity_sweep_overrides_a_knob_set_in_the_config():
    profile = profile_from_dict(_config(n_bits=3))
    cond = experiment.condition(profile, "flipflop", 1)
    assert cond.task_config.n_bits == 1
    only_width = profile_from_dict(
        _flipflop(complexity=[], config={"n_bits": 3}, factors=FACTORS)
    )
    assert "complexity" not in only_width.factors("flipflop")
    assert (
        experiment.condition(only_width, "flipflop", 8, "width").task_config.n_bits == 3
    )


@pytest.mark.parametrize(
    "factor, words",
    [
        ({"field": "n_steps", "values": [1, 2]}, ["field = 'n_steps'", "'task'"]),
        ({"field": "optim.lr", "values": [1, 2]}, ["field = 'optim.lr'", "'train'"]),
        (
            {"field": "task.n_stepz", "values": [1, 2]},
            ["'task.n_stepz' is not a field of FlipFlopConfig", "n_steps"],
        ),
        ({"field": "task.n_steps", "values": []}, ["values is empty"]),
        ({"field": "task.n_steps", "values": [10, 1]}, ["n_steps = 1", "[2"]),
        ({"field": "model.n_hidden", "values": [8, -4]}, ["n_hidden = -4"]),
        (
            {"field": "task.n_steps", "values": [10, 20], "row": "style"},
            ["row = 'style'", "feature_learning"],
        ),
        ({"field": "task.n_steps", "valuez": [10]}, ["unknown key(s) ['valuez']"]),
    ],
)
def test_bad_factors_name_the_value_and_what_is_valid(factor, words):
    message = _error(_flipflop(factors={"f": factor}))
    assert "tasks.flipflop" in message
    for word in words:
        assert word in message


def test_a_factor_may_not_be_called_complexity():
    message = _error(_flipflop(factors={"complexity": FACTORS["width"]}))
    assert "tasks.flipflop.complexity" in message


def test_an_unknown_factor_lists_the_swept_ones():
    profile = profile_from_dict(_flipflop(factors=FACTORS))
    with pytest.raises(ConfigError, match=r"'depth' is not swept.*'width'"):
        profile.factor("flipflop", "depth")


def test_a_bad_complexity_value_names_the_complexity_sweep():
    message = _error(_flipflop(complexity=[1, 0]))
    assert "tasks.flipflop.complexity" in message and "n_bits = 0" in message


def test_repeated_factor_values_are_refused():
    message = _error(_flipflop(complexity=[2, 2]))
    assert "[2, 2] repeats a value" in message


def test_a_dsa_rank_beyond_the_embedding_is_refused():
    message = _error(_raw(dynamics={"n_delays": 2, "rank": 500}))
    assert "rank = 500" in message and "rank <= " in message
    narrow = {"field": "model.n_hidden", "values": [2, 8], "row": "width"}
    message = _error(
        _raw(
            dynamics={"n_delays": 2, "rank": 6},
            tasks={"flipflop": {**BASE["tasks"]["flipflop"], "factors": {"w": narrow}}},
        )
    )
    assert "rank <= 4" in message


def test_invalid_yaml_is_a_config_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("tasks:\n  flipflop:\n    complexity: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML"):
        load_profile(path)


# -- per-task sizes --------------------------------------------------------


def test_a_task_can_override_networks_training_and_evaluation():
    two = _raw(
        train={"lr": 0.01, "max_epochs": 5},
        eval={"n_trials": 16},
        tasks={
            "flipflop": BASE["tasks"]["flipflop"],
            "delayed": {
                "complexity": [1],
                "n_networks": 5,
                "train": {"max_epochs": 9},
                "eval": {"n_trials": 4},
            },
        },
    )
    p = profile_from_dict(two)
    assert p.seeds_for("flipflop") == (0, 1, 2)
    assert p.seeds_for("delayed") == (0, 1, 2, 3, 4)
    assert p.train_for("flipflop") == p.train
    assert p.train_for("delayed").max_epochs == 9
    assert p.train_for("delayed").lr == 0.01  # the rest is the profile's
    assert p.eval_for("flipflop").n_trials == 16
    assert p.eval_for("delayed").n_trials == 4
    cond = experiment.condition(p, "delayed", 1)
    assert cond.seeds == (0, 1, 2, 3, 4) and cond.train.max_epochs == 9
    assert experiment.condition(p, "flipflop", 1).train == p.train


def test_a_train_factor_applies_over_the_tasks_training():
    p = profile_from_dict(
        _flipflop(train={"max_epochs": 7}, factors={"lr": FACTORS["lr"]})
    )
    cond = experiment.condition(p, "flipflop", 0.02, "lr")
    assert (cond.train.lr, cond.train.max_epochs) == (0.02, 7)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"n_networks": 1}, ["tasks.flipflop.n_networks = 1", "valid: [2, inf]"]),
        ({"n_networks": 2.5}, ["n_networks = 2.5", "expected int | None"]),
        ({"train": {"epochs": 3}}, ["tasks.flipflop.train: unknown key(s)"]),
        ({"train": {"lr": -1}}, ["tasks.flipflop.train", "lr = -1"]),
        ({"train": 3}, ["tasks.flipflop.train = 3", "expected dict"]),
        ({"eval": {"n_trials": 0}}, ["tasks.flipflop.eval", "n_trials = 0"]),
    ],
)
def test_bad_task_sizes_name_the_value_and_what_is_valid(changes, words):
    message = _error(_flipflop(**changes))
    for word in words:
        assert word in message


def test_a_task_override_is_checked_when_the_profile_is_built_by_hand():
    p = profile_from_dict(_raw())
    sweep = TaskSweep(config={}, complexity=(1,), train={"bogus": 1})
    p = dataclasses.replace(p, tasks={"flipflop": sweep})
    with pytest.raises(ConfigError, match=r"tasks.flipflop.train: unknown key"):
        p.train_for("flipflop")
    with pytest.raises(ConfigError, match=r"task 'sine' is not in profile"):
        p.eval_for("sine")


# -- input a new user gets wrong ----------------------------------------------


def _write(tmp_path, text: str):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


def test_exponent_numbers_without_a_dot_are_floats(tmp_path):
    text = "train: {lr: 1e-3}\ntasks: {flipflop: {complexity: [1]}}\n"
    assert load_profile(_write(tmp_path, text)).train.lr == 1e-3


def test_an_exponent_number_is_still_refused_where_an_integer_belongs(tmp_path):
    text = "n_networks: 1e1\ntasks: {flipflop: {complexity: [1]}}\n"
    with pytest.raises(ConfigError, match=r"n_networks = 10.0 .* expected int"):
        load_profile(_write(tmp_path, text))


@pytest.mark.parametrize(
    "text, key, line",
    [
        (
            "n_networks: 2\nn_networks: 40\ntasks: {flipflop: {complexity: [1]}}\n",
            "n_networks",
            2,
        ),
        (
            "tasks:\n  flipflop:\n    config: {n_steps: 10, n_steps: 20}\n"
            "    complexity: [1]\n",
            "n_steps",
            3,
        ),
    ],
)
def test_a_key_given_twice_is_refused_with_its_line(tmp_path, text, key, line):
    with pytest.raises(ConfigError) as info:
        load_profile(_write(tmp_path, text))
    message = str(info.value)
    assert f"key {key!r} is given twice (line {line})" in message
    assert "mine.yaml" in message


@pytest.mark.parametrize("name", ["w/x y", "..", "1st", "a-b", "_x", "g" * 41])
def test_factor_names_that_cannot_name_files_are_refused(name):
    factor = {"field": "model.n_hidden", "values": [4, 8]}
    message = _error(_flipflop(factors={name: factor}))
    assert repr(name) in message and "letters, digits and underscores" in message


def test_a_forty_letter_factor_name_is_accepted():
    factor = {"field": "model.n_hidden", "values": [4, 8]}
    profile = profile_from_dict(_flipflop(factors={"g" * 40: factor}))
    assert "g" * 40 in profile.factors("flipflop")


@pytest.mark.parametrize(
    "values, shown",
    [(["standard", "mup"], "'standard'"), ([1.0, float("nan")], "nan")],
)
def test_factor_values_must_be_numbers(values, shown):
    factor = {"field": "train.lr", "values": values}
    message = _error(_flipflop(factors={"lr": factor}))
    assert shown in message and "not a finite number" in message


def test_factor_values_equal_as_numbers_are_one_value():
    factor = {"field": "train.lr", "values": [1, 1.0]}
    assert "repeats a value" in _error(_flipflop(factors={"lr": factor}))


def test_dsa_config_for_a_task_not_in_the_profile_names_its_tasks():
    p = profile_from_dict(_raw())
    with pytest.raises(ConfigError, match=r"'sine' is not in profile.*flipflop"):
        experiment.dsa_config_for(p, "sine")


@pytest.mark.parametrize("kind", ["empty", "file"])
def test_a_results_variable_that_names_no_folder_is_refused(
    tmp_path, monkeypatch, kind
):
    value = " " if kind == "empty" else str(tmp_path / "a_file")
    if kind == "file":
        (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("DEGEN_RESULTS", value)
    with pytest.raises(ConfigError, match="DEGEN_RESULTS"):
        experiment.default_store()


def test_trials_too_short_for_the_delay_embedding_are_refused_at_load():
    # 10 delays span 10 steps and the next-step fit needs 2 embedded steps:
    # 11 steps is the shortest trial, and a sweep down to 10 must stop here,
    # before training, naming the factor value.
    short = {"field": "task.n_steps", "values": [11, 10], "row": "complexity"}
    raw = _raw(dynamics={"n_delays": 10, "rank": 4})
    raw["tasks"]["flipflop"]["factors"] = {"short": short}
    message = _error(raw)
    assert "tasks.flipflop.short = 10 gives trials of 10 steps" in message
    assert "at least 11 steps" in message
    raw["tasks"]["flipflop"]["factors"]["short"]["values"] = [11, 12]
    assert profile_from_dict(raw).values("flipflop", "short") == (11, 12)
