"""Sweep profiles: the sizes of a run (``sweeps/<name>.yaml``), validated.

A profile names the networks (how many, their width, how they train), the
tasks and the values of each factor to sweep, and the settings of every
measure. ``smoke`` is for the tests, ``default`` for a laptop CPU and
``paper`` for a GPU at the paper's scale.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from degen.config import ConfigError, check_choice, check_range, from_dict
from degen.metrics.dynamics import DSAConfig, min_trial_steps
from degen.metrics.representation import SVCCAConfig
from degen.metrics.weights import WeightDistanceConfig
from degen.model import ModelConfig
from degen.tasks import TASKS, task_config
from degen.train import TrainConfig

# The rows of the paper's results table a swept factor can test.
ROWS = ("complexity", "feature_learning", "width", "regularization")
# Which config a swept field belongs to.
SWEPT_SECTIONS = ("task", "model", "train")


@dataclass(frozen=True)
class EvalConfig:
    """The fixed trials every network of a condition is measured on."""

    n_trials: int = 64  # trials for the OOD loss and the hidden states
    seed: int = 12345  # the evaluation trials' seed (the same for every network)

    def __post_init__(self):
        check_range("EvalConfig", "n_trials", self.n_trials, 1)
        check_range("EvalConfig", "seed", self.seed, 0)


@dataclass(frozen=True)
class ProbeConfig:
    """The fixed probe batch the feature-learning diagnostics use.

    The empirical NTK takes one backward pass per output entry, so only
    ``max_entries`` scored output entries (evenly spaced over the scored
    entries of ``n_trials`` trials) enter the kernel.
    """

    n_trials: int = 4
    max_entries: int = 128
    seed: int = 2024  # the same probe for every network and condition

    def __post_init__(self):
        check_range("ProbeConfig", "n_trials", self.n_trials, 1)
        check_range("ProbeConfig", "max_entries", self.max_entries, 2)
        check_range("ProbeConfig", "seed", self.seed, 0)


def _split_field(where: str, name) -> tuple[str, str]:
    """``"model.gamma"`` as ``("model", "gamma")``, or a ConfigError."""
    section, _, field_name = str(name).partition(".")
    if not isinstance(name, str) or section not in SWEPT_SECTIONS or not field_name:
        raise ConfigError(
            f"{where} = {name!r}; give '<section>.<field>' with section one of "
            f"{list(SWEPT_SECTIONS)}"
        )
    return section, field_name


@dataclass(frozen=True)
class Factor:
    """One swept factor: a config field and the values it takes."""

    field: str  # "<task|model|train>.<field>", e.g. "task.delay_max"
    values: tuple = ()
    row: str = "complexity"  # the row of the paper's table it tests
    label: str = ""  # axis label; the field name when empty
    # Fields set for every value of this factor, before the swept one, e.g.
    # {"model.parameterization": "mup"} for a sweep of gamma.
    base: dict = field(default_factory=dict)
    # Networks per condition along this factor; the task's when None.
    n_networks: int | None = None

    def __post_init__(self):
        _split_field("Factor.field", self.field)
        if not isinstance(self.base, dict):
            raise ConfigError(
                f"Factor.base = {self.base!r}; give a mapping of "
                "'<section>.<field>' to the value it takes for this factor"
            )
        if self.n_networks is not None:
            check_range("Factor", "n_networks", self.n_networks, 2)
        for key in self.base:
            _split_field("Factor.base", key)
            if key == self.field:
                raise ConfigError(
                    f"Factor.base sets {key!r}, the field the factor sweeps; "
                    "remove it from base"
                )
        check_choice("Factor", "row", self.row, ROWS)
        if not self.values:
            raise ConfigError("Factor.values is empty; give the values to sweep")
        for value in self.values:
            # The notebooks plot and fit trends against the values.
            number = isinstance(value, (int, float))
            if not number or (isinstance(value, float) and not math.isfinite(value)):
                raise ConfigError(
                    f"Factor.values = {list(self.values)!r}: {value!r} is not a "
                    "finite number or true/false; a factor's values are numbers "
                    "that its degeneracy is plotted against"
                )
        # 1 and 1.0 (and true and 1) are one value.
        if len({float(v) for v in self.values}) != len(self.values):
            raise ConfigError(
                f"Factor.values = {list(self.values)!r} repeats a value; give "
                "each value once"
            )

    @property
    def section(self) -> str:
        return self.field.partition(".")[0]

    @property
    def name(self) -> str:
        return self.field.partition(".")[2]

    @property
    def axis_label(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class TaskSweep:
    """One task in a profile: its fixed config values and the swept factors."""

    config: dict = field(default_factory=dict)  # task config values
    complexity: tuple = ()  # values of the task's complexity knob
    factors: dict = field(default_factory=dict)  # other factors: name -> Factor
    dynamics: dict = field(default_factory=dict)  # DSA settings for this task
    # Sizes for this task only, over the profile's: a slow task can train
    # fewer networks, for fewer epochs, or be measured on fewer trials.
    n_networks: int | None = None
    train: dict = field(default_factory=dict)  # TrainConfig fields
    eval: dict = field(default_factory=dict)  # EvalConfig fields


@dataclass(frozen=True)
class Profile:
    name: str
    description: str = ""
    device: str = "auto"  # used when the command line names no device
    n_networks: int = 8
    seed: int = 0  # network seeds are seed, seed + 1, ...
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    dynamics: DSAConfig = DSAConfig()
    weights: WeightDistanceConfig = WeightDistanceConfig()
    probe: ProbeConfig = ProbeConfig()
    representation: SVCCAConfig = SVCCAConfig()
    tasks: dict[str, TaskSweep] = field(default_factory=dict)
    # Factors swept for every task (the profile's top-level ``factors:``),
    # after each task's complexity knob and before its own factors.
    shared_factors: dict[str, Factor] = field(default_factory=dict)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.n_networks))

    def _sweep(self, task: str) -> TaskSweep:
        if task not in self.tasks:
            raise ConfigError(
                f"task {task!r} is not in profile {self.name!r}; "
                f"its tasks: {sorted(self.tasks)}"
            )
        return self.tasks[task]

    def seeds_for(self, task: str, factor: str | None = None) -> tuple[int, ...]:
        """The network seeds of ``task`` (along ``factor``, when given): as
        many as the factor's ``n_networks``, else the task's, else the
        profile's."""
        n = self._sweep(task).n_networks
        if factor is not None and self.factor(task, factor).n_networks is not None:
            n = self.factor(task, factor).n_networks
        return self.seeds if n is None else tuple(range(self.seed, self.seed + n))

    def train_for(self, task: str) -> TrainConfig:
        """The profile's training settings with the task's overrides applied."""
        overrides = self._sweep(task).train
        return _merged(TrainConfig, self.train, overrides, f"tasks.{task}.train")

    def eval_for(self, task: str) -> EvalConfig:
        """The profile's evaluation settings with the task's overrides applied."""
        overrides = self._sweep(task).eval
        return _merged(EvalConfig, self.eval, overrides, f"tasks.{task}.eval")

    def factors(self, task: str) -> dict[str, Factor]:
        """Every factor swept for ``task``, the complexity knob first."""
        sweep = self._sweep(task)
        factors = {}
        if sweep.complexity:
            knob = TASKS[task][1].complexity
            factors["complexity"] = Factor(f"task.{knob}", sweep.complexity)
        factors.update(self.shared_factors)
        factors.update(sweep.factors)
        return factors

    def factor(self, task: str, factor: str = "complexity") -> Factor:
        factors = self.factors(task)
        if factor not in factors:
            raise ConfigError(
                f"factor = {factor!r} is not swept for {task!r} in profile "
                f"{self.name!r}; its factors: {list(factors)}"
            )
        return factors[factor]

    def values(self, task: str, factor: str = "complexity") -> tuple:
        """The swept values of ``factor`` for ``task``."""
        return self.factor(task, factor).values


def _merged(cls, base, overrides: dict, where: str):
    """``base`` (a frozen config) with the fields in ``overrides`` replaced."""
    return from_dict(cls, {**dataclasses.asdict(base), **overrides}, where=where)


_SECTIONS = {
    "model": ModelConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "dynamics": DSAConfig,
    "weights": WeightDistanceConfig,
    "probe": ProbeConfig,
    "representation": SVCCAConfig,
}


def repo_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working
    directory) that holds degen's ``sweeps/`` and ``degen/``, if any."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "sweeps").is_dir() and (folder / "degen").is_dir():
            return folder
    return None


def profiles_dir() -> Path:
    if "DEGEN_PROFILES" in os.environ:
        return Path(os.environ["DEGEN_PROFILES"])
    for start in (None, Path(__file__).parent):
        root = repo_root(start)
        if root is not None:
            return root / "sweeps"
    return Path("sweeps")


def available_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


class _RepeatedKey(Exception):
    """A mapping in a profile names one key twice."""


class _ProfileLoader(yaml.SafeLoader):
    """Safe YAML with two changes that matter for sweep sizes: a number in
    exponent form without a dot (``1e-3``) is a float, as in YAML 1.2 (PyYAML
    follows YAML 1.1 and reads it as a string), and a key given twice in one
    mapping is an error instead of the last one silently winning."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _RepeatedKey(
                    f"key {key!r} is given twice (line {key_node.start_mark.line + 1});"
                    " give each key once"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_ProfileLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """A profile by name (``sweeps/<name>.yaml``) or by path to a YAML file."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ConfigError(
            f"profile = {name_or_path!r} has type {type(name_or_path).__name__}; "
            f"give a profile name ({available_profiles()}) or a path to a YAML file"
        )
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = profiles_dir() / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"profile {str(name_or_path)!r} not found (looked for {path}); "
            f"available profiles: {available_profiles()}"
        )
    with open(path) as f:
        try:
            raw = yaml.load(f, Loader=_ProfileLoader)
        except yaml.YAMLError as err:
            raise ConfigError(f"profile {path} is not valid YAML: {err}") from None
        except _RepeatedKey as err:
            raise ConfigError(f"profile {path}: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {path} must be a YAML mapping, got {raw!r}")
    raw.setdefault("name", path.stem)
    return profile_from_dict(raw, where=f"profile {path.name}")


def apply_factor(
    task: str,
    task_values: dict,
    model: ModelConfig,
    train: TrainConfig,
    factor: Factor,
    value,
    where: str = "profile",
):
    """The (task config, model, train) with ``factor``'s base fields set and
    its swept field set to ``value``."""
    settings = {**factor.base, factor.field: value}
    task_values = dict(task_values)
    changes = {"model": {}, "train": {}}
    for key, setting in settings.items():
        section, name = _split_field(where, key)
        if section == "task":
            task_values[name] = setting
        else:
            changes[section][name] = setting
    if changes["model"]:
        model = _merged(ModelConfig, model, changes["model"], where)
    if changes["train"]:
        train = _merged(TrainConfig, train, changes["train"], where)
    return task_config(task, task_values, where=where), model, train


def _check_factor_value(raw, task, sweep, train, factor, value, where):
    """Check one value of ``factor`` and return the task config it gives."""
    cls = {"task": TASKS[task][0], "model": ModelConfig, "train": TrainConfig}
    for key in (*factor.base, factor.field):
        section, name = _split_field(where, key)
        names = [f.name for f in dataclasses.fields(cls[section])]
        if name not in names:
            what = "field" if key == factor.field else "a key of base,"
            raise ConfigError(
                f"{where}: {what} {key!r} is not a field of "
                f"{cls[section].__name__}; valid: {names}"
            )
    return apply_factor(
        task, sweep.config, raw["model"], train, factor, value, where=where
    )[0]


def _factors_from(raw, where: str, task: str = "<task>") -> dict[str, Factor]:
    """Named factors from a ``factors:`` mapping (of ``task``, when given)."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where} = {raw!r}; give a mapping of factor names to "
            "{field, values, row, label, base}"
        )
    for fname in raw:
        if not (
            isinstance(fname, str)
            and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", fname)
        ):
            raise ConfigError(
                f"{where} has a factor named {fname!r}; a name is at most 40 "
                "letters, digits and underscores, starting with a letter (it "
                "names the factor's notebook files)"
            )
        if fname == "complexity":
            raise ConfigError(
                f"{where} names 'complexity'; set tasks.{task}.complexity to the "
                "values of the task's complexity knob instead"
            )
    return {
        fname: from_dict(Factor, fraw, where=f"{where}.{fname}")
        for fname, fraw in raw.items()
    }


def profile_from_dict(raw: dict, where: str = "profile") -> Profile:
    """Build and validate a :class:`Profile` from a plain mapping."""
    raw = dict(raw)
    valid = [f.name for f in dataclasses.fields(Profile) if f.name != "shared_factors"]
    valid.append("factors")
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {valid}")
    for key in ("name", "tasks"):
        if key not in raw:
            raise ConfigError(f"{where}: missing key {key!r}")
    for key, cls in _SECTIONS.items():
        raw[key] = from_dict(cls, raw.get(key), where=f"{where}: {key}")
    # The top-level ``factors:`` are swept for every task.
    shared = raw.pop("factors", None)
    shared = _factors_from({} if shared is None else shared, f"{where}: factors")
    raw["shared_factors"] = shared
    tasks_raw = raw["tasks"]
    if not isinstance(tasks_raw, dict) or not tasks_raw:
        raise ConfigError(
            f"{where}: tasks = {tasks_raw!r}; give a mapping of task names "
            f"({sorted(TASKS)}) to their sweeps"
        )
    tasks = {}
    for name, sweep_raw in tasks_raw.items():
        sweep = from_dict(TaskSweep, sweep_raw, where=f"{where}: tasks.{name}")
        # An unknown task or a bad value stops here.
        task_config(name, sweep.config, where=f"{where}: tasks.{name}.config")
        knob = TASKS[name][1].complexity
        own = _factors_from(sweep.factors, f"{where}: tasks.{name}.factors", name)
        twice = sorted(set(own) & set(shared))
        if twice:
            raise ConfigError(
                f"{where}: tasks.{name}.factors names {twice}, already swept for "
                "every task by the profile's factors; give each name once"
            )
        factors = {**shared, **own}
        if not sweep.complexity and not factors:
            raise ConfigError(
                f"{where}: tasks.{name} sweeps nothing; give complexity (the "
                f"values of {knob!r}) or factors"
            )
        sweep = dataclasses.replace(sweep, factors=own)
        if sweep.complexity:
            try:
                knob_factor = Factor(f"task.{knob}", sweep.complexity)
            except ConfigError as err:
                raise ConfigError(f"{where}: tasks.{name}.complexity: {err}") from None
            factors = {"complexity": knob_factor, **factors}
        # The task's own sizes, each checked as part of the config it changes.
        at = f"{where}: tasks.{name}"
        if sweep.n_networks is not None:
            check_range(at, "n_networks", sweep.n_networks, 2)
        train = _merged(TrainConfig, raw["train"], sweep.train, f"{at}.train")
        _merged(EvalConfig, raw["eval"], sweep.eval, f"{at}.eval")
        task_configs = {}
        for fname, fac in factors.items():
            for value in fac.values:
                task_configs[(fname, value)] = _check_factor_value(
                    raw, name, sweep, train, fac, value, f"{at}.{fname}"
                )
        dsa_values = {**dataclasses.asdict(raw["dynamics"]), **sweep.dynamics}
        dsa = from_dict(DSAConfig, dsa_values, where=f"{where}: tasks.{name}.dynamics")
        # Trials too short for the delay embedding are found here, not in a
        # notebook after training. Every task config's n_steps is its length.
        shortest = min_trial_steps(dsa.n_delays, dsa.delay_interval)
        for (fname, value), config in task_configs.items():
            if config.n_steps < shortest:
                raise ConfigError(
                    f"{where}: tasks.{name}.{fname} = {value!r} gives trials of "
                    f"{config.n_steps} steps, too short for the dynamics embedding "
                    f"(n_delays {dsa.n_delays}, delay_interval "
                    f"{dsa.delay_interval}); valid: trials of at least {shortest} "
                    "steps, or fewer or closer delays"
                )
        widths = [raw["model"].n_hidden]
        for f in factors.values():
            widths += list(f.values) if f.field == "model.n_hidden" else []
            widths += [f.base["model.n_hidden"]] if "model.n_hidden" in f.base else []
        if dsa.rank > dsa.n_delays * min(widths):
            raise ConfigError(
                f"{where}: tasks.{name}: dynamics rank = {dsa.rank} exceeds the "
                f"delay embedding's dimension (n_delays {dsa.n_delays} x "
                f"{min(widths)} units = {dsa.n_delays * min(widths)}); valid: "
                f"rank <= {dsa.n_delays * min(widths)}"
            )
        tasks[name] = sweep
    raw["tasks"] = tasks
    profile = from_dict(Profile, raw, where=where)
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", profile.device):
        raise ConfigError(
            f"{where}: device = {profile.device!r}; valid: 'auto', 'cpu', 'cuda[:i]'"
        )
    check_range(where, "n_networks", profile.n_networks, 2)
    check_range(where, "seed", profile.seed, 0)
    return profile
