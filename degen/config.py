"""Frozen-dataclass configs: building them from plain dicts, validating fields.

Every config in degen is a frozen dataclass whose ``__post_init__`` calls the
checks below, so a bad value stops where it enters, with a message that names
the field, the value and what would be valid.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config or profile value that is unknown, of the wrong type or out of range."""


def check_range(
    owner: str,
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ConfigError unless ``low (<|<=) value (<|<=) high``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{owner}.{name} = {value!r}; it must be a finite number")
    ok = True
    if low is not None:
        ok &= value > low if low_open else value >= low
    if high is not None:
        ok &= value < high if high_open else value <= high
    if not ok:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        raise ConfigError(
            f"{owner}.{name} = {value!r} is out of range; "
            f"valid: {left}{lo}, {hi}{right}"
        )


def check_types(config: Any) -> None:
    """Raise ConfigError unless every field of the dataclass ``config`` has its
    annotated type (the check ``from_dict`` makes, for configs built directly)."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        _check_type(
            type(config).__name__,
            field.name,
            getattr(config, field.name),
            hints[field.name],
        )


def _check_type(owner: str, name: str, value: Any, annotation: Any) -> None:
    if not _type_ok(value, annotation):
        raise ConfigError(
            f"{owner}.{name} = {value!r} has type {type(value).__name__}; "
            f"expected {_type_name(annotation)}"
        )


def check_choice(owner: str, name: str, value: Any, choices: typing.Iterable) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(
            f"{owner}.{name} = {value!r} is not valid; choose one of {list(choices)}"
        )


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        if not isinstance(value, (tuple, list)):
            return False
        if args and args[-1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(args) == len(value) and all(
            _type_ok(v, a) for v, a in zip(value, args, strict=True)
        )
    if origin is dict:
        return isinstance(value, dict)
    if annotation is tuple:
        return isinstance(value, (tuple, list))
    if annotation is float:
        # ints are accepted where floats are expected (YAML writes 1e-3 as a float
        # but 1 as an int); bools are not numbers here.
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is not None:  # tuple[float, float], not "tuple"
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", None) or str(annotation).replace(
        "typing.", ""
    )


def from_dict(cls: type[T], values: dict | None, where: str | None = None) -> T:
    """Build the frozen dataclass ``cls`` from ``values``, rejecting unknown keys
    and values of the wrong type with a message naming them."""
    where = where or cls.__name__
    if not isinstance(values, (dict, type(None))):
        raise ConfigError(f"{where} must be a mapping, got {values!r}")
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; valid keys: {sorted(fields)}"
        )
    required = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in values]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}; required: {required}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        annotation = hints[name]
        _check_type(where, name, value, annotation)
        is_tuple = annotation is tuple or typing.get_origin(annotation) is tuple
        if is_tuple and isinstance(value, list):
            values[name] = tuple(value)
        elif annotation is float and isinstance(value, int):
            values[name] = float(value)
    try:
        return cls(**values)
    except ConfigError as err:
        # Say where the bad value came from (a profile file and section).
        if where == cls.__name__:
            raise
        raise ConfigError(f"{where}: {err}") from None


def to_dict(config: Any) -> dict:
    """A config as a plain, JSON-ready dict (tuples become lists)."""
    return json_ready(dataclasses.asdict(config))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
