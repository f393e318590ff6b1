"""The `/`-path toolkit: one string names a config value everywhere.

`losses/KL/end_ramp_val` is the same name in YAML (nested), on the command line
(`--losses/KL/end_ramp_val 0.5`), as an Optuna parameter and as an MLflow param.
This module parses `PATH VALUE` overrides, flattens and unflattens trees, reads and
merges stacked YAML files (later files win) and renders a tree as YAML. Its errors
(PathsError) are one line naming the file or argument to fix: an unknown option, a
config file that is not YAML, not UTF-8 text or a directory. Nothing here mutates
its inputs.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

SEP = "/"

# A loss term's ramp (vunet_core.config.LossTerm). A layer (a YAML file, a set of overrides) that
# sets a term's `weight` and none of these makes the term constant: the ramp of the layers below
# is cleared, so `losses/KL/weight 1` means KL at 1 from step 0 whatever the base files ramp.
RAMP_KEYS = ("start_ramp_it", "end_ramp_it", "start_ramp_val", "end_ramp_val")


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


def merge_trees(base: Mapping[str, Any], over: Mapping[str, Any], layer: bool = True) -> dict[str, Any]:
    """Deep merge: `over` wins; mappings merge recursively; inputs are untouched. When `over` is
    a layer above `base`, a `weight` set without ramp keys clears the ramp below it (RAMP_KEYS)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            below = _without_ramp(out[key]) if layer and _sets_constant(value) else out[key]
            out[key] = merge_trees(below, value, layer)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _sets_constant(layer: Mapping[str, Any]) -> bool:
    return "weight" in layer and not any(k in layer for k in RAMP_KEYS)


def _without_ramp(term: Mapping[str, Any]) -> dict[str, Any]:
    return {**term, **{k: None for k in RAMP_KEYS if k in term}}


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


def parse_overrides(args: Sequence[str], bare_keys: Collection[str] = ()) -> dict[str, Any]:
    """`["--a/b", "1", "c", "x"]` -> {"a/b": 1, "c": "x"} (flat, in order).

    A `-`-led item where a path belongs is a mistyped option unless it names a config
    path (those always contain `/`) or one of `bare_keys` (slash-less keys such as a
    sweep file's `num_samples`): PathsError "unknown option ...; see --help".
    """
    for item in args[::2]:
        if _looks_like_option(item) and not (SEP in item or item.lstrip("-") in bare_keys):
            raise PathsError(f"unknown option {item}; see --help")
    if len(args) % 2:
        raise PathsError(f"override {args[-1]!r} has no value; write PATH VALUE pairs")
    out: dict[str, Any] = {}
    for path, value in zip(args[::2], args[1::2], strict=True):
        key = path[2:] if path.startswith("--") else path
        if not key or key.startswith("-") or any(not p for p in key.split(SEP)):
            raise PathsError(f"malformed config path {path!r}; write e.g. losses/KL/end_ramp_val 0.5")
        out[key] = parse_value(value)
    return out


def _looks_like_option(item: str) -> bool:
    """`--dry-runx`, `-x`: yes; `-3` or `-.5` (a value one place off): no."""
    return item.startswith("-") and re.fullmatch(r"-[\d.].*", item) is None


YAML_SUFFIXES = (".yaml", ".yml")


def split_config_files(items: Sequence[str], settings: Collection[str] = ()) -> tuple[list[str], list[str]]:
    """Split what `-b` swallowed into YAML config files and the `PATH VALUE` overrides after them.

    `-b a.yaml losses/KL/weight 0.5` gives (["a.yaml"], ["losses/KL/weight", "0.5"]). The first
    non-YAML item starts the overrides unless it is an existing file or directory or has a
    file suffix such as `.json` (config paths never contain dots): PathsError naming it. Items
    in `settings` (the known config paths) are always overrides.
    """
    files = [f for f in items if f.endswith(YAML_SUFFIXES)]
    rest = [f for f in items if not f.endswith(YAML_SUFFIXES)]
    if rest and rest[0] not in settings:
        first = Path(rest[0])
        if first.is_dir():
            raise PathsError(f"{first}: is a directory; config files must be YAML files (.yaml or .yml)")
        if first.exists() or first.suffix[1:].isalpha():
            raise PathsError(f"{first}: config files must be YAML (.yaml or .yml)")
    return files, rest


def load_yaml(path: str | Path) -> dict[str, Any]:
    """One YAML mapping; errors name the file (and line for syntax errors), one line each."""
    p = Path(path)
    data = yaml_document(p, read_yaml_text(p))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PathsError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return _nest_slash_keys(data)


def read_yaml_text(p: Path, what: str = "a YAML file") -> str:
    """The UTF-8 text of a YAML file; PathsError (one line) when it is missing, a directory or unreadable.

    `what` names the expected file in the directory message, e.g. "a sweep YAML file".
    """
    if p.is_dir():
        raise PathsError(f"{p}: is a directory; expected {what}")
    if not p.exists():
        raise PathsError(f"{p}: no such file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        byte = f"byte 0x{exc.object[exc.start]:02x} at offset {exc.start}"
        raise PathsError(f"{p}: not UTF-8 text YAML ({byte}); is it a binary file?") from None
    except OSError as exc:
        raise PathsError(f"{p}: cannot read the file ({exc.strerror or type(exc).__name__})") from None


def yaml_document(p: Path, text: str) -> Any:
    """`yaml.safe_load(text)` with errors as one line naming `p` (and the line when known)."""
    try:
        return yaml.safe_load(text)
    except yaml.reader.ReaderError as exc:
        raise PathsError(f"{p}: {binary_text_problem(exc)}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise PathsError(f"{p}: YAML syntax error at {where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise PathsError(f"{p}: YAML error: {one_line(str(exc))}") from None


def binary_text_problem(exc: yaml.reader.ReaderError) -> str:
    """YAML refuses NUL and most control characters: the file is binary, not YAML text."""
    return (
        f"not UTF-8 text YAML (control character #x{exc.character:02x} at offset {exc.position}); is it a binary file?"
    )


def one_line(text: str) -> str:
    """Collapse whitespace (library messages span lines; user errors take one)."""
    return " ".join(text.split())


def check_writable_dir(path: Path, what: str) -> None:
    """PathsError unless `path` is, or can be created as, a writable directory (nothing is created).

    `what` names the setting in the message, e.g. "--runs-dir".
    """
    p = Path(path).expanduser().absolute()
    existing = next(a for a in (p, *p.parents) if a.exists())
    if not existing.is_dir():
        raise PathsError(f"{what} {path}: {existing} is a file, not a directory; choose another directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PathsError(f"{what} {path}: {existing} is not writable; choose another directory")


def _nest_slash_keys(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Allow `losses/KL/weight: 1` as a key in YAML too; nested parts merge deeper-last."""
    plain = {k: v for k, v in tree.items() if SEP not in str(k)}
    out = {k: _nest_slash_keys(v) if isinstance(v, Mapping) else v for k, v in plain.items()}
    slashed = sorted((k for k in tree if SEP in str(k)), key=lambda k: str(k).count(SEP))
    for key in slashed:  # parts of the same layer: no ramp is cleared
        out = merge_trees(out, unflatten({str(key): tree[key]}), layer=False)
    return out


def merge_yaml_files(paths: Iterable[str | Path]) -> dict[str, Any]:
    """Stack YAML files; later files win."""
    tree: dict[str, Any] = {}
    for p in paths:
        tree = merge_trees(tree, load_yaml(p))
    return tree


def apply_overrides(tree: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Tree with flat `/`-path overrides applied, shallower paths first (input untouched).
    A `.../weight` set without its sibling ramp keys clears the ramp in `tree` (see RAMP_KEYS)."""
    out = copy.deepcopy(dict(tree))
    for path in sorted(overrides, key=lambda p: p.count(SEP)):
        term, _, leaf = path.rpartition(SEP)
        if leaf == "weight" and not any(f"{term}{SEP}{k}" in overrides for k in RAMP_KEYS):
            try:
                below = get_path(out, term) if term else None
            except KeyError:
                below = None
            if isinstance(below, dict):
                out = set_path(out, term, _without_ramp(below))
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
