"""Config tree <-> :class:`Config`: building a validated Config from nested dicts, files and overrides, and back.

:func:`config_from_tree` builds a Config from a partial nested dict over the defaults, reporting
an unknown path (with the closest known one, :func:`closest_path`) or a bad value as
:class:`ConfigError` naming the ``/``-path; :func:`resolve_config` stacks YAML files and
``/``-path overrides first. The other way, :func:`config_to_tree`, :func:`flat_config` and
:func:`render_config` give the nested dict, the ``/``-path -> value map (MLflow params, search-space
checks) and the YAML text of a Config; :func:`known_paths` lists every leaf path.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vunet_core.config.fields import ConfigError, FieldError
from vunet_core.config.root import Config
from vunet_core.config.values import coerce_value
from vunet_core.paths import flatten, merge_trees, unflatten


def config_to_tree(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (YAML-ready) of a config dataclass."""
    return dataclasses.asdict(cfg)


def known_paths(cls: type = Config, prefix: str = "") -> list[str]:
    """Every leaf `/`-path of a config class, in declaration order."""
    out: list[str] = []
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        sub = _dataclass_type(cls, f)
        out.extend(known_paths(sub, path + "/") if sub else [path])
    return out


@functools.cache
def _default(cls: type) -> Any:
    """The default instance of a config class, built once (frozen; read through config_to_tree)."""
    return cls()


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Resolved field types of a config class (cached: resolving them is slow)."""
    return typing.get_type_hints(cls)


def _dataclass_type(cls: type, f: dataclasses.Field[Any]) -> type | None:
    hint = _hints(cls)[f.name]
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def closest_path(path: str) -> str | None:
    """The known path most similar to `path`, if any is reasonably close."""
    candidates = known_paths()
    match = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
    if match:
        return match[0]
    leaf = path.rsplit("/", 1)[-1]
    by_leaf = difflib.get_close_matches(leaf, [c.rsplit("/", 1)[-1] for c in candidates], n=1, cutoff=0.8)
    return next((c for c in candidates if by_leaf and c.endswith("/" + by_leaf[0])), None)


def unknown_path_error(path: str) -> ConfigError:
    hint = closest_path(path)
    suffix = f"; did you mean {hint}?" if hint else ""
    return ConfigError(f"unknown config path {path}{suffix}")


def config_from_tree(tree: dict[str, Any] | None) -> Config:
    """Build and validate a Config from a (partial) nested dict over the defaults."""
    cfg: Config = _build(Config, tree or {}, "")
    return cfg


def _build(cls: type, tree: Any, prefix: str) -> Any:
    if not isinstance(tree, dict):
        raise ConfigError(f"{prefix.rstrip('/') or 'config'}: expected a mapping, got {tree!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in tree.items():
        if key not in fields:
            sub_paths = list(flatten(value)) if isinstance(value, dict) and value else []
            raise unknown_path_error(f"{prefix}{key}" + (f"/{sub_paths[0]}" if sub_paths else ""))
    default = _default(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = f"{prefix}{name}"
        sub = _dataclass_type(cls, f)
        if name not in tree:
            continue
        if sub is not None:
            base = config_to_tree(getattr(default, name))
            if not isinstance(tree[name], dict):
                raise ConfigError(f"{path}: expected a mapping, got {tree[name]!r}")
            kwargs[name] = _build(sub, merge_trees(base, tree[name]), path + "/")
        else:
            kwargs[name] = coerce_value(path, tree[name], _hints(cls)[name], f)
    try:
        return cls(**kwargs)
    except FieldError as exc:  # name the field from the top of the config
        raise exc.under(prefix.rstrip("/")) from None


def flat_config(cfg: Config) -> dict[str, Any]:
    """`/`-path -> value of every leaf (for MLflow params and search-space checks)."""
    return flatten(config_to_tree(cfg))


def replace_paths(cfg: Config, values: dict[str, Any]) -> Config:
    """A new validated Config with `/`-path values set (the input is not changed)."""
    return config_from_tree(merge_trees(config_to_tree(cfg), unflatten(values)))


def resolve_config(files: Iterable[str | Path] = (), overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults <- stacked YAML files (later wins) <- `/`-path overrides; validated.

    Raises ConfigError (bad path/value) or PathsError (bad file/override grammar).
    """
    from vunet_core.paths import apply_overrides, merge_yaml_files

    tree = apply_overrides(merge_yaml_files(files), dict(overrides or {}))
    return config_from_tree(tree)


def render_config(cfg: Config) -> str:
    """The fully resolved config as YAML (printed before training, saved with runs)."""
    from vunet_core.paths import to_yaml

    return to_yaml(config_to_tree(cfg))
