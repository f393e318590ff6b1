"""A trial's configuration: the sweep's base tree with the values Optuna sampled.

Ray hands a trial its sampled values as a nested dict (the searchers nest the
`/`-path names), plus one `sweep` entry that is not a config value: the trial's stage
(`search` or `confirm`), whether it is the baseline and, in confirmation, its candidate
and seed. The base tree is resolved once in the driver and shipped with the trainable,
so workers on other machines never read the sweep's YAML files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vunet_core import Config, apply_overrides, config_from_tree, flat_config, flatten, unflatten

META = "sweep"  # the trial config's entry about the trial itself (never a config path)


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{`/`-path: value} -> the nested dict Tune shows and hands to the trial."""
    return unflatten(flat)


def trial_meta(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `sweep` entry of a trial config: stage, baseline, candidate, seed (empty if none)."""
    meta = config.get(META)
    return dict(meta) if isinstance(meta, Mapping) else {}


def sampled_flat(sampled: Mapping[str, Any]) -> dict[str, Any]:
    """Nested or flat sampled values -> {`/`-path: value}, without the `sweep` entry."""
    return flatten({k: v for k, v in sampled.items() if k != META})


def trial_tree(base_tree: Mapping[str, Any], sampled: Mapping[str, Any]) -> dict[str, Any]:
    return apply_overrides(base_tree, sampled_flat(sampled))


def trial_cfg(base_tree: Mapping[str, Any], sampled: Mapping[str, Any]) -> Config:
    return config_from_tree(trial_tree(base_tree, sampled))


def trial_flat_config(base_tree: Mapping[str, Any], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """Every resolved config value of the trial under its `/`-path name."""
    return flat_config(trial_cfg(base_tree, sampled))
