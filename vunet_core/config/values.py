"""Leaf values of a config tree: checking a YAML or command-line value against its field's type.

:func:`coerce_value` accepts a value for one field (ints for floats, ``null`` only where the
field is optional, a list of numbers for list fields; a schedule point keeps an int as an int) or
raises :class:`ConfigError` naming the ``/``-path and the expected type; :func:`number_problem`
rejects numbers no setting can hold (``.nan``, ``.inf``, integers beyond signed 64 bits), and is
also what the sweeps' search spaces check their numbers with.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from vunet_core.config.fields import ConfigError

INT64_LIMIT = 2**63


def coerce_value(path: str, value: Any, hint: Any, f: dataclasses.Field[Any]) -> Any:
    """Check a leaf value against its type hint; ints are accepted for floats."""
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{path}: got null, expected {_type_name(hint)}")
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if f.metadata.get("schedule"):  # a step stays an int (480, not 480.0) in rendered configs
        number = _coerce_scalar(path, value, float, hint)
        return value if isinstance(value, int) else number
    if typing.get_origin(base) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: got {value!r}, expected a list of numbers")
        return [_coerce_scalar(f"{path}[{i}]", v, float) for i, v in enumerate(value)]
    return _coerce_scalar(path, value, base, hint)


def _coerce_scalar(path: str, value: Any, base: type, hint: Any = None) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[base]
    if not ok:
        raise ConfigError(f"{path}: got {value!r}, expected {_type_name(hint or base)}")
    if base in (int, float) and (problem := number_problem(value)):
        raise ConfigError(f"{path}: got {value!r}, {problem}")
    return float(value) if base is float else value


def number_problem(value: float) -> str | None:
    """Why a number cannot be a setting (not finite, or an integer beyond signed 64 bits), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "expected a finite number (not .nan or .inf; YAML reads 1e999 as .inf)"
    if isinstance(value, int) and not -INT64_LIMIT <= value < INT64_LIMIT:
        return "expected a number that fits in 64 bits (integers within +-2**63)"
    return None


def _type_name(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if isinstance(hint, types.UnionType):
        parts = [names.get(a, str(a)) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(parts) + " or null"
    return names.get(hint, str(hint))
