"""Task registry: a task name and its config values give a sampler."""

from __future__ import annotations

from degen.config import ConfigError, from_dict
from degen.tasks.base import Batch, masked_mse
from degen.tasks.delayed import Delayed, DelayedConfig
from degen.tasks.flipflop import FlipFlop, FlipFlopConfig
from degen.tasks.path import Path, PathConfig
from degen.tasks.sine import Sine, SineConfig

TASKS = {
    "flipflop": (FlipFlopConfig, FlipFlop),
    "delayed": (DelayedConfig, Delayed),
    "sine": (SineConfig, Sine),
    "path": (PathConfig, Path),
}


def task_config(name: str, values: dict | None = None, where: str | None = None):
    """The frozen config of task ``name`` built from ``values``; ``where``
    names the source of the values in error messages."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {sorted(TASKS)}")
    config_cls, _ = TASKS[name]
    return from_dict(config_cls, values, where=where or f"tasks.{name}")


def make_task(name: str, values: dict | None = None):
    """A sampler for task ``name`` with config ``values``."""
    config = task_config(name, values)
    return TASKS[name][1](config)


__all__ = [
    "TASKS",
    "Batch",
    "Delayed",
    "DelayedConfig",
    "FlipFlop",
    "FlipFlopConfig",
    "Path",
    "PathConfig",
    "Sine",
    "SineConfig",
    "make_task",
    "masked_mse",
    "task_config",
]
