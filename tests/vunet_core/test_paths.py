"""`/`-path toolkit: override grammar, flatten/unflatten, merging without mutation."""

from __future__ import annotations

import copy

import pytest

from vunet_core.paths import (
    PathsError,
    apply_overrides,
    flatten,
    get_path,
    merge_trees,
    parse_overrides,
    unflatten,
)


def test_override_grammar_parses_yaml_scalars_and_lists() -> None:
    args = [
        "--losses/KL/end_ramp_val",
        "1e-3",
        "training/batch_size",
        "8",
        "training/bf16",
        "true",
        "losses/perceptual/feature_weights",
        "[1, 2.5, 0, 0, 0, 0]",
        "training/name",
        "my run",
        "a/b",
        "-2",
    ]
    parsed = parse_overrides(args)
    assert parsed == {
        "losses/KL/end_ramp_val": 0.001,
        "training/batch_size": 8,
        "training/bf16": True,
        "losses/perceptual/feature_weights": [1, 2.5, 0, 0, 0, 0],
        "training/name": "my run",
        "a/b": -2,
    }
    assert isinstance(parsed["losses/KL/end_ramp_val"], float)
    assert isinstance(parsed["training/batch_size"], int)


def test_override_needs_pairs_and_sane_paths() -> None:
    with pytest.raises(PathsError, match="has no value"):
        parse_overrides(["--a/b"])
    with pytest.raises(PathsError, match="malformed config path"):
        parse_overrides(["a//b", "1"])


def test_flatten_unflatten_round_trip() -> None:
    tree = {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}
    flat = flatten(tree)
    assert flat == {"a/b": 1, "a/c/d": [1, 2], "e": "x"}
    assert unflatten(flat) == tree
    assert get_path(tree, "a/c/d") == [1, 2]


def test_merge_and_overrides_do_not_mutate() -> None:
    base = {"a": {"b": 1, "c": 2}}
    over = {"a": {"c": 3}}
    frozen = copy.deepcopy((base, over))
    assert merge_trees(base, over) == {"a": {"b": 1, "c": 3}}
    overrides = {"a/b": 5}
    assert apply_overrides(base, overrides) == {"a": {"b": 5, "c": 2}}
    assert (base, over) == frozen and overrides == {"a/b": 5}


def test_deeper_paths_apply_after_shallower() -> None:
    out = apply_overrides({}, {"a/b": 1, "a": {"b": 0, "c": 2}})
    assert out == {"a": {"b": 1, "c": 2}}
