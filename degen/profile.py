"""Sweep profiles: the sizes of a run (``sweeps/<name>.yaml``), validated.

A profile names the networks (how many, their width, how they train), the
tasks and the values of each factor to sweep, and the settings of every
measure. ``smoke`` is for the tests, ``default`` for a laptop CPU and
``paper`` for a GPU at the paper's scale.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from degen.config import ConfigError, check_range, from_dict
from degen.metrics.dynamics import DSAConfig
from degen.metrics.weights import WeightDistanceConfig
from degen.model import ModelConfig
from degen.tasks import TASKS, task_config
from degen.train import TrainConfig

FACTORS = ("complexity",)


@dataclass(frozen=True)
class EvalConfig:
    """The fixed trials every network of a condition is measured on."""

    n_trials: int = 64  # trials for the OOD loss and the hidden states
    seed: int = 12345  # the evaluation trials' seed (the same for every network)

    def __post_init__(self):
        check_range("EvalConfig", "n_trials", self.n_trials, 1)
        check_range("EvalConfig", "seed", self.seed, 0)


@dataclass(frozen=True)
class TaskSweep:
    """One task in a profile: its fixed config values and the swept factors."""

    config: dict = field(default_factory=dict)  # task config values
    complexity: tuple[int, ...] = ()  # values of the task's complexity knob
    dynamics: dict = field(default_factory=dict)  # DSA settings for this task


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
    tasks: dict[str, TaskSweep] = field(default_factory=dict)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.n_networks))

    def values(self, task: str, factor: str = "complexity") -> tuple:
        """The swept values of ``factor`` for ``task``."""
        if task not in self.tasks:
            raise ConfigError(
                f"task {task!r} is not in profile {self.name!r}; "
                f"its tasks: {sorted(self.tasks)}"
            )
        if factor not in FACTORS:
            raise ConfigError(f"factor = {factor!r}; valid factors: {list(FACTORS)}")
        return getattr(self.tasks[task], factor)


_SECTIONS = {
    "model": ModelConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "dynamics": DSAConfig,
    "weights": WeightDistanceConfig,
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
        raw = yaml.safe_load(f)
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {path} must be a YAML mapping, got {raw!r}")
    raw.setdefault("name", path.stem)
    return profile_from_dict(raw, where=f"profile {path.name}")


def profile_from_dict(raw: dict, where: str = "profile") -> Profile:
    """Build and validate a :class:`Profile` from a plain mapping."""
    raw = dict(raw)
    valid = [f.name for f in dataclasses.fields(Profile)]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {valid}")
    for key in ("name", "tasks"):
        if key not in raw:
            raise ConfigError(f"{where}: missing key {key!r}")
    for key, cls in _SECTIONS.items():
        raw[key] = from_dict(cls, raw.get(key), where=f"{where}: {key}")
    tasks_raw = raw["tasks"]
    if not isinstance(tasks_raw, dict) or not tasks_raw:
        raise ConfigError(
            f"{where}: tasks = {tasks_raw!r}; give a mapping of task names "
            f"({sorted(TASKS)}) to their sweeps"
        )
    tasks = {}
    for name, sweep_raw in tasks_raw.items():
        sweep = from_dict(TaskSweep, sweep_raw, where=f"{where}: tasks.{name}")
        task_config(name, sweep.config)  # unknown task or bad value stops here
        knob = TASKS[name][1].complexity
        if knob in sweep.config:
            raise ConfigError(
                f"{where}: tasks.{name}.config sets {knob!r}, which the "
                "complexity sweep sets; remove it"
            )
        for value in sweep.complexity:
            task_config(name, {**sweep.config, knob: value})
        if not sweep.complexity:
            raise ConfigError(
                f"{where}: tasks.{name}.complexity is empty; give the values of "
                f"{knob!r} to sweep"
            )
        dsa_values = {**dataclasses.asdict(raw["dynamics"]), **sweep.dynamics}
        from_dict(DSAConfig, dsa_values, where=f"{where}: tasks.{name}.dynamics")
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
