"""A trial's configuration: the sweep's base tree with the values Optuna sampled.

Ray hands a trial its sampled values as a nested dict (OptunaSearch unflattens the
`/`-path names); the base tree is resolved once in the driver and shipped with the
trainable, so workers on other machines never read the sweep's YAML files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vunet_core import Config, config_from_tree, flat_config, flatten
from vunet_core.paths import apply_overrides


def sampled_flat(sampled: Mapping[str, Any]) -> dict[str, Any]:
    """Nested or flat sampled values -> {`/`-path: value}."""
    return flatten(sampled)


def trial_tree(base_tree: Mapping[str, Any], sampled: Mapping[str, Any]) -> dict[str, Any]:
    return apply_overrides(base_tree, sampled_flat(sampled))


def trial_cfg(base_tree: Mapping[str, Any], sampled: Mapping[str, Any]) -> Config:
    return config_from_tree(trial_tree(base_tree, sampled))


def trial_flat_config(base_tree: Mapping[str, Any], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """Every resolved config value of the trial under its `/`-path name."""
    return flat_config(trial_cfg(base_tree, sampled))
