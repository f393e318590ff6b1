"""`/`-path toolkit: override grammar, flatten/unflatten, merging without mutation."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from vunet_core.paths import (
    PathsError,
    apply_overrides,
    check_writable_dir,
    flatten,
    get_path,
    load_yaml,
    merge_trees,
    parse_overrides,
    split_config_files,
    unflatten,
)


def test_override_grammar_parses_yaml_scalars_and_lists() -> None:
    args = [
        "--losses/KL/end_ramp_val",
        "1e-3",
        "training/batch_size",
        "8",
        "training/channels_last",
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
        "training/channels_last": True,
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


@pytest.mark.parametrize(
    "args",
    [
        ["--dry-runx"],  # odd count
        ["--dry-runx", "training/seed", "1"],
        ["--dry-runx", "1"],  # even count: the flag would otherwise read as a path
        ["training/seed", "1", "--dry-runx", "x"],
        ["training/seed", "1", "-x"],
    ],
)
def test_a_mistyped_option_is_named_not_taken_for_a_path(args: list[str]) -> None:
    flag = next(a for a in args[::2] if a.startswith("-"))
    with pytest.raises(PathsError) as exc:
        parse_overrides(args)
    assert str(exc.value) == f"unknown option {flag}; see --help"


def test_options_that_are_paths_or_bare_keys_and_negative_values_still_parse() -> None:
    assert parse_overrides(["--training/seed", "-3", "a/b", "-.5"]) == {"training/seed": -3, "a/b": -0.5}
    assert parse_overrides(["--num_samples", "3"], bare_keys=("num_samples",)) == {"num_samples": 3}
    with pytest.raises(PathsError, match="unknown option --num_sample;"):
        parse_overrides(["--num_sample", "3"], bare_keys=("num_samples",))


def test_split_config_files_keeps_overrides_and_refuses_other_files(tmp_path: Path) -> None:
    assert split_config_files(["a.yaml", "b.yml", "losses/KL/weight", "0.5"]) == (
        ["a.yaml", "b.yml"],
        ["losses/KL/weight", "0.5"],
    )
    (tmp_path / "losses" / "KL").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:  # a known setting is never a file, even where such a folder exists
        mp.chdir(tmp_path)
        items = ["a.yaml", "losses/KL", "0.5"]
        assert split_config_files(items, settings=("losses/KL",)) == (["a.yaml"], ["losses/KL", "0.5"])
        with pytest.raises(PathsError, match="losses/KL: is a directory"):
            split_config_files(items)
    (tmp_path / "cfg").write_text("{}")
    for item, message in (
        ("cfg.json", "cfg.json: config files must be YAML (.yaml or .yml)"),
        ("conf.toml", "conf.toml: config files must be YAML"),
        (str(tmp_path / "cfg"), "cfg: config files must be YAML"),  # an existing file without a suffix
        (str(tmp_path), "is a directory; config files must be YAML files"),
    ):
        with pytest.raises(PathsError) as exc:
            split_config_files(["a.yaml", item, "losses/KL/weight", "0.5"])
        assert message in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00bin", "not UTF-8 text YAML (byte 0xff at offset 0)"),
        (b"training: {seed: 1}\x00\x01", "not UTF-8 text YAML (control character #x00 at offset 19)"),
        (None, "is a directory; expected a YAML file"),
    ],
)
def test_unreadable_yaml_is_one_line_naming_the_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "cfg.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(PathsError) as exc:
        load_yaml(path)
    assert str(exc.value).startswith(f"{path}: {message}") and "\n" not in str(exc.value)


def test_writable_dir_check_creates_nothing(tmp_path: Path) -> None:
    check_writable_dir(tmp_path / "new" / "runs", "--runs-dir")
    assert not (tmp_path / "new").exists()
    (tmp_path / "somefile").write_text("x")
    with pytest.raises(PathsError, match=r"--runs-dir .*somefile/sub: .*somefile is a file, not a directory"):
        check_writable_dir(tmp_path / "somefile" / "sub", "--runs-dir")


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
