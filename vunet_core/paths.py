"""The `/`-path toolkit: one string names a config value everywhere.

`losses/KL/end_ramp_val` is the same name in YAML (nested), on the command line
(`--losses/KL/end_ramp_val 0.5`), as an Optuna parameter and as an MLflow param.
This module parses `PATH VALUE` overrides, flattens and unflattens trees, merges
stacked YAML files (later files win) and renders a tree as YAML. Nothing here
mutates its inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

SEP = "/"


class PathsError(ValueError):
    """A malformed override list or YAML file; the message names what to fix."""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a/b": 1}. Lists are leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + SEP))
        else:
            out[path] = copy.deepcopy(value)
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"a/b": 1} -> {"a": {"b": 1}}."""
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        set_path(tree, path, copy.deepcopy(value), inplace=True)
    return tree


def get_path(tree: Mapping[str, Any], path: str) -> Any:
    """Value at `path`; KeyError naming the path when absent."""
    node: Any = tree
    for part in path.split(SEP):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def set_path(tree: dict[str, Any], path: str, value: Any, inplace: bool = False) -> dict[str, Any]:
    """Tree with `path` set to `value` (a copy unless `inplace`)."""
    out = tree if inplace else copy.deepcopy(tree)
    parts = path.split(SEP)
    if not all(parts):
        raise PathsError(f"malformed config path {path!r}: empty segment")
    node = out
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
    return out


def merge_trees(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: `over` wins; mappings merge recursively; inputs are untouched."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_trees(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_value(text: str) -> Any:
    """Command-line value as a YAML scalar or list: `1e-3` -> 0.001, `true`, `[1, 2]`."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        return _yaml_float(value)
    return value


def _yaml_float(text: str) -> Any:
    """YAML 1.1 reads `1e-3` as a string; users mean a number."""
    try:
        return float(text) if any(c.isdigit() for c in text) and text.strip().lower() not in ("nan",) else text
    except ValueError:
        return text


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """`["--a/b", "1", "c", "x"]` -> {"a/b": 1, "c": "x"} (flat, in order)."""
    if len(args) % 2:
        raise PathsError(f"override {args[-1]!r} has no value; write PATH VALUE pairs")
    out: dict[str, Any] = {}
    for path, value in zip(args[::2], args[1::2], strict=True):
        key = path[2:] if path.startswith("--") else path
        if not key or key.startswith("-") or any(not p for p in key.split(SEP)):
            raise PathsError(f"malformed config path {path!r}; write e.g. losses/KL/end_ramp_val 0.5")
        out[key] = parse_value(value)
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """One YAML mapping; errors name the file (and line for syntax errors)."""
    p = Path(path)
    if not p.is_file():
        raise PathsError(f"{p}: no such file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise PathsError(f"{p}: YAML syntax error at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise PathsError(f"{p}: YAML error: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PathsError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return _nest_slash_keys(data)


def _nest_slash_keys(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Allow `losses/KL/weight: 1` as a key in YAML too; nested parts merge deeper-last."""
    plain = {k: v for k, v in tree.items() if SEP not in str(k)}
    out = {k: _nest_slash_keys(v) if isinstance(v, Mapping) else v for k, v in plain.items()}
    slashed = sorted((k for k in tree if SEP in str(k)), key=lambda k: str(k).count(SEP))
    for key in slashed:
        out = merge_trees(out, unflatten({str(key): tree[key]}))
    return out


def merge_yaml_files(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Stack YAML files; later files win."""
    tree: dict[str, Any] = {}
    for p in paths:
        tree = merge_trees(tree, load_yaml(p))
    return tree


def apply_overrides(tree: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Tree with flat `/`-path overrides applied, shallower paths first (input untouched)."""
    out = copy.deepcopy(dict(tree))
    for path in sorted(overrides, key=lambda p: p.count(SEP)):
        out = set_path(out, path, overrides[path])
    return out


class _Dumper(yaml.SafeDumper):
    """Block-style mappings, one-line lists."""


def _flow_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Dumper.add_representer(list, _flow_list)


def to_yaml(tree: Mapping[str, Any]) -> str:
    """Readable YAML of a tree, keys in declaration order."""
    return yaml.dump(dict(tree), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
