"""Sweep-file loading and validation: every shipped search space loads, the resolved base
tree stacks base files <- fixed <- overrides <- sweep settings, and each bad input yields
exactly one clear line naming the file, the key and (where it can) the fix."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sweeps.search import baseline_point
from sweeps.spec import ConfirmSpec, Distribution, Margin, SpecError, SweepSpec, load_spec
from vunet_core import Config, config_from_tree, parse_overrides

ROOT = Path(__file__).resolve().parents[2]

VALID: dict[str, Any] = {
    "name": "t",
    "fixed": {"training/steps_per_epoch": 2, "model": {"base_channels": 8}},
    "parameters": {
        "losses/KL/end_ramp_val": {"distribution": "log_uniform", "min": 1e-3, "max": 1.0},
        "model/appearance_input": {"values": ["crops", "image"]},
        "losses/color_gradient/weight": {
            "distribution": "uniform",
            "min": 0,
            "max": 10,
            "step": 2.5,
            "when": {"model/appearance_input": "image"},
        },
        "losses/KL/ramp_shape": {"value": "linear"},
    },
    "metric": {"name": "val/transfer/l1", "mode": "min"},
    "num_samples": 4,
    "max_epochs": 2,
}


def write(tmp_path: Path, data: dict[str, Any] | str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def variant(**changes: Any) -> dict[str, Any]:
    """VALID with `a/b` keys set (None deletes); `parameters/<path>` addresses a parameter."""
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        key = key.replace("__", "/")
        section, _, rest = key.partition("/")
        node, leaf = (
            (data.setdefault(section, {}), rest) if section in ("parameters", "fixed") and rest else (data, key)
        )
        if "/" in leaf and section not in ("parameters", "fixed"):
            head, leaf = leaf.split("/", 1)
            node = node.setdefault(head, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return data


def problems(tmp_path: Path, data: dict[str, Any], overrides: dict[str, Any] | None = None) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, data), overrides)
    return info.value.problems


@pytest.mark.parametrize("path", sorted((ROOT / "search_spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_search_space_loads(path: Path) -> None:
    spec = load_spec(path)
    assert spec.name == path.stem
    cfg = spec.base_config()
    assert cfg.training.num_epochs == spec.max_epochs and cfg.training.progress is False
    assert spec.parameters and spec.metric == "val/transfer/l1" and spec.mode == "min"
    assert set(baseline_point(spec)) <= set(spec.parameters)


def test_smoke_is_tiny() -> None:
    spec = load_spec(ROOT / "search_spaces" / "smoke.yaml")
    cfg = spec.base_config()
    assert spec.num_samples == 2 and spec.baseline and spec.max_epochs <= 2
    assert cfg.model.spatial_size == 32 and cfg.model.max_channels <= 16 and cfg.training.steps_per_epoch <= 3


def test_valid_spec_resolves_defaults_and_tree(tmp_path: Path) -> None:
    from vunet_core import config_to_tree

    spec = load_spec(write(tmp_path, VALID))
    assert isinstance(spec, SweepSpec)
    assert (spec.name, spec.description, spec.base_files, spec.source_path) == ("t", "", [], tmp_path / "sweep.yaml")
    assert spec.fixed == {"training/steps_per_epoch": 2, "model/base_channels": 8}  # nested -> flat
    assert spec.overrides == {} and spec.spec_overrides == {}
    assert list(spec.parameters) == list(VALID["parameters"])  # already in `when` order
    assert spec.parameters["model/appearance_input"] == Distribution("categorical", values=("crops", "image"))
    assert spec.parameters["losses/color_gradient/weight"].when == {"model/appearance_input": ["image"]}
    assert spec.parameters["losses/KL/ramp_shape"] == Distribution("constant", value="linear")
    assert (spec.metric, spec.mode, spec.num_samples, spec.max_epochs) == ("val/transfer/l1", "min", 4, 2)
    # the defaults of everything VALID leaves out
    assert (spec.max_concurrent_trials, spec.cpu, spec.gpu, spec.seed, spec.max_failures) == (2, 1.0, 0.0, 0, 1)
    assert (spec.gpu_auto, spec.time_budget_s, spec.baseline, spec.sampler, spec.storage) == (
        False, None, True, "tpe", None,
    )  # fmt: skip
    assert (spec.scheduler.type, spec.scheduler.grace_period, spec.scheduler.reduction_factor) == ("asha", 1, 2.0)
    # a baseline turns confirmation on: 3 fresh seeds (not training/seed 0), twice as many at most, 1% margin
    assert spec.confirm == ConfirmSpec(top_k=1, seeds=(1, 2, 3), max_seeds=6, margin=Margin(0.01, relative=True))
    no_mode = variant(metric={"name": "val/transfer/l1"})
    assert load_spec(write(tmp_path, no_mode, "no_mode.yaml")).mode == "min"  # the metric's own direction

    tree = spec.base_tree()
    expected = config_to_tree(Config())  # no base files: the embedded defaults ...
    expected["training"].update(steps_per_epoch=2, num_epochs=2, progress=False)  # ... <- fixed <- sweep settings
    expected["training"]["num_threads"] = 1  # torch threads = the trial's CPUs (default 0 = torch's choice)
    expected["model"]["base_channels"] = 8
    assert tree == expected
    assert tree["training"]["num_epochs"] == 2 and tree["training"]["seed"] == 0
    assert tree["training"]["steps_per_epoch"] == 2 and tree["model"]["base_channels"] == 8
    assert tree["losses"]["KL"]["start_ramp_it"] == 0.5  # untouched default ramp
    assert spec.base_config() == config_from_tree(tree)
    tree["model"]["base_channels"] = 99
    assert spec.base_tree()["model"]["base_channels"] == 8  # a copy each time


def test_parameters_are_ordered_after_their_condition(tmp_path: Path) -> None:
    params = dict(reversed(list(VALID["parameters"].items())))
    spec = load_spec(write(tmp_path, variant(parameters=params)))
    order = list(spec.parameters)
    assert order.index("model/appearance_input") < order.index("losses/color_gradient/weight")


def test_base_files_stack_relative_to_the_spec_then_fixed_then_overrides(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "a.yaml").write_text(
        "model: {base_channels: 4, drop_prob: 0.2}\ntraining: {batch_size: 3}\n"
    )
    (tmp_path / "configs" / "b.yaml").write_text("model/base_channels: 6\n")
    sub = tmp_path / "spaces"
    sub.mkdir()
    data = variant(base=["../configs/a.yaml", "../configs/b.yaml"], fixed={"training/batch_size": 5})
    spec = load_spec(write(sub, data), {"model/drop_prob": 0.3, "training/val_batch_size": 7})
    cfg = spec.base_config()
    assert spec.base_files == [(tmp_path / "configs" / n).resolve() for n in ("a.yaml", "b.yaml")]
    assert (cfg.model.base_channels, cfg.training.batch_size) == (6, 5)  # later file, then fixed, win
    assert (cfg.model.drop_prob, cfg.training.val_batch_size) == (0.3, 7)  # overrides last
    assert spec.overrides == {"model/drop_prob": 0.3, "training/val_batch_size": 7}


def test_sweep_settings_can_be_overridden_from_the_command_line(tmp_path: Path) -> None:
    over = {"resources/gpu": 0.5, "num_samples": 16, "scheduler/type": "fifo", "training/device": "cuda"}
    spec = load_spec(write(tmp_path, VALID), over)
    assert (spec.gpu, spec.num_samples, spec.scheduler.type) == (0.5, 16, "fifo")
    assert spec.base_config().training.device == "cuda"
    assert spec.spec_overrides == {k: v for k, v in over.items() if k != "training/device"}


def test_constants_apply_to_the_base_and_every_trial(tmp_path: Path) -> None:
    data = variant(**{"parameters/losses/KL/ramp_shape": {"value": "log"}})
    assert load_spec(write(tmp_path, data)).base_config().losses.KL.ramp_shape == "log"


def test_scientific_notation_without_a_dot_is_a_number(tmp_path: Path) -> None:
    text = yaml.safe_dump(variant(parameters={})).replace("parameters: {}", "")
    text += "parameters:\n  losses/KL/end_ramp_val: {distribution: log_uniform, min: 1e-3, max: 1}\n"
    assert load_spec(write(tmp_path, text)).parameters["losses/KL/end_ramp_val"].low == 1e-3


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: t\nparameters:\n  a: {min: 1\nmetric: x\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(f"{path}:4: malformed YAML")


def test_duplicate_keys_are_malformed(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"sweep.yaml:2: malformed YAML: duplicate key 'name'"):
        load_spec(write(tmp_path, "name: a\nname: b\n"))


def test_spec_error_takes_one_line_or_many() -> None:
    assert str(SpecError("one problem")) == "one problem" and SpecError("one problem").problems == ["one problem"]
    assert str(SpecError(["a", "b"])) == "a\nb"


def test_missing_sweep_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such sweep file"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00bin", "not UTF-8 text YAML (byte 0xff at offset 0); is it a binary file?"),
        (b"name: t\n\x00\x01\x02", "not UTF-8 text YAML (control character #x00 at offset 8); is it a binary file?"),
        (None, "is a directory; expected a sweep YAML file (e.g. search_spaces/smoke.yaml)"),
    ],
)
def test_unreadable_sweep_file_is_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "sweep.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems == [f"{path}: {message}"]


def test_unreadable_base_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bin")
    (tmp_path / "configs").mkdir()
    (tmp_path / "nan.yaml").write_text("optimizer: {lr: 1e999}\n")  # plain YAML (base files) reads it as text
    for base, message in (
        ("bin.yaml", "bin.yaml: not UTF-8 text YAML (byte 0xff at offset 0)"),
        ("configs", "base[0]: configs: is a directory"),
        ("nan.yaml", "optimizer/lr: got '1e999', expected a number"),
    ):
        lines = problems(tmp_path, variant(base=[base]))
        assert len(lines) == 1 and message in lines[0], lines


def test_text_numbers_that_overflow_are_rejected(tmp_path: Path) -> None:
    text = yaml.safe_dump(variant(num_samples=None), sort_keys=False) + "num_samples: 1e999\n"
    assert problems(tmp_path, text)[0].endswith("num_samples: got inf, expected an integer >= 1")  # type: ignore[arg-type]
    text = yaml.safe_dump(variant(fixed=None), sort_keys=False) + "fixed: {optimizer/lr: 1e999}\n"
    assert "fixed/optimizer/lr: got inf, expected a finite number" in problems(tmp_path, text)[0]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optimizer/lr", ".nan"], "override optimizer/lr: got nan, expected a finite number"),
        (["optimizer/lr", "1e999"], "override optimizer/lr: got inf, expected a finite number"),
        (
            ["training/batch_size", "99999999999999999999999"],
            "override training/batch_size: got 99999999999999999999999",
        ),
        (["num_samples", "99999999999999999999999"], "num_samples: got 99999999999999999999999, expected an integer"),
        (["losses/perceptual/feature_weights", "[1, 1, 1, 1, 1, .inf]"], "feature_weights[5]: got inf, expected a"),
    ],
)
def test_command_line_numbers_must_be_finite_and_64_bit(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, VALID), parse_overrides(args))
    assert len(info.value.problems) == 1 and message in info.value.problems[0], info.value.problems


def test_run_cli_refuses_nan_and_binary_files_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bin")
    for args, message in (
        ([str(ROOT / "search_spaces" / "smoke.yaml"), "optimizer/lr", ".nan"], "optimizer/lr: got nan, expected a"),
        (["bin.yaml"], "bin.yaml: not UTF-8 text YAML"),
    ):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "sweeps" / "run.py"), *args, "--out-dir", str(tmp_path / "out")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()},
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin.yaml"]  # nothing created


def test_problem_lines_carry_the_yaml_line(tmp_path: Path) -> None:
    text = yaml.safe_dump(VALID, sort_keys=False) + "num_sample: 3\n"
    lines = problems(tmp_path, text)  # type: ignore[arg-type]
    assert lines == [
        f"{tmp_path / 'sweep.yaml'}:{text.count(chr(10))}: num_sample: unknown sweep setting; did you mean num_samples?"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = variant(num_samples=0, max_concurrent_trials=0, bogus=1, metric={"name": "val/transfer/l2", "mode": "up"})
    lines = problems(tmp_path, data)
    assert len(lines) == 5, lines
    assert all(line.startswith(str(tmp_path / "sweep.yaml")) for line in lines)


BAD = {
    "unknown top-level key": (dict(num_sample=3), "num_sample", "did you mean num_samples?"),
    "unknown distribution key": (
        {"parameters/losses/KL/end_ramp_val": {"distribution": "log_uniform", "min": 0.1, "mx": 1}},
        "parameters/losses/KL/end_ramp_val/",
        "did you mean max?",
    ),
    "unknown kind": (
        {"parameters/losses/KL/end_ramp_val": {"distribution": "loguniform", "min": 0.1, "max": 1}},
        "distribution",
        "did you mean log_uniform?",
    ),
    "unknown fixed path": (
        {"fixed/losses/KL/end_ramp_vall": 1},
        "fixed/losses/KL/end_ramp_vall",
        "did you mean losses/KL/end_ramp_val?",
    ),
    "unknown searched path": (
        {"parameters/model/dropprob": {"distribution": "uniform", "min": 0, "max": 0.5}},
        "parameters/model/dropprob",
        "did you mean model/drop_prob?",
    ),
    "section instead of a setting": ({"parameters/losses/KL": {"value": 1}}, "parameters/losses/KL", "is a section"),
    "unknown when path": (
        {
            "parameters/losses/color_L2/weight": {
                "distribution": "uniform",
                "min": 0,
                "max": 1,
                "when": {"model/x": "a"},
            }
        },
        "when/model/x",
        "not a categorical parameter",
    ),
    "when on a numeric parameter": (
        {
            "parameters/losses/color_L2/weight": {
                "distribution": "uniform",
                "min": 0,
                "max": 1,
                "when": {"losses/KL/end_ramp_val": 1},
            }
        },
        "when/losses/KL/end_ramp_val",
        "not a categorical parameter",
    ),
    "when value it cannot take": (
        {
            "parameters/losses/color_L2/weight": {
                "distribution": "uniform",
                "min": 0,
                "max": 1,
                "when": {"model/appearance_input": ["image", "pixels"]},
            }
        },
        "when/model/appearance_input",
        "cannot take ['pixels']",
    ),
    "wrong type in fixed": (
        {"fixed/model/spatial_size": "big"},
        "fixed/model/spatial_size",
        "got 'big', expected an integer",
    ),
    "float distribution on an int path": (
        {"parameters/model/max_channels": {"distribution": "uniform", "min": 8, "max": 32}},
        "parameters/model/max_channels",
        "use int_uniform",
    ),
    "int distribution on a float path": (
        {"parameters/losses/color_L2/weight": {"distribution": "int_uniform", "min": 0, "max": 10}},
        "parameters/losses/color_L2/weight",
        "use uniform with a step",
    ),
    "choice the config does not have": (
        {"parameters/model/appearance_input": {"values": ["crops", "image", "pixels"]}},
        "parameters/model/appearance_input",
        "expected one of crops, image",
    ),
    "bound outside the config limit": (
        {"parameters/model/drop_prob": {"distribution": "uniform", "min": 0, "max": 1}},
        "parameters/model/drop_prob",
        "expected <= 0.99",
    ),
    "hole inside an int range": (
        {"parameters/model/spatial_size": {"distribution": "int_uniform", "min": 32, "max": 64, "step": 16}},
        "parameters/model/spatial_size",
        "48 is not a valid value here",
    ),
    "inverted range": (
        {"parameters/losses/KL/end_ramp_val": {"distribution": "uniform", "min": 1, "max": 0.5}},
        "parameters/losses/KL/end_ramp_val",
        "empty or inverted range: min 1.0 >= max 0.5",
    ),
    "empty range": (
        {"parameters/training/batch_size": {"distribution": "int_uniform", "min": 4, "max": 4}},
        "parameters/training/batch_size",
        "empty or inverted range",
    ),
    "log range with zero": (
        {"parameters/losses/KL/end_ramp_val": {"distribution": "log_uniform", "min": 0, "max": 1}},
        "min",
        "needs min > 0",
    ),
    "negative step": (
        {"parameters/losses/color_L2/weight": {"distribution": "uniform", "min": 0, "max": 1, "step": -0.1}},
        "step",
        "expected a positive number",
    ),
    "step larger than the range": (
        {"parameters/losses/color_L2/weight": {"distribution": "uniform", "min": 0, "max": 1, "step": 2}},
        "step",
        "larger than the range",
    ),
    "step not dividing the range": (
        {"parameters/training/batch_size": {"distribution": "int_uniform", "min": 2, "max": 9, "step": 3}},
        "step",
        "use max 8",
    ),
    "step on a log range": (
        {"parameters/losses/KL/end_ramp_val": {"distribution": "log_uniform", "min": 0.1, "max": 1, "step": 0.1}},
        "step",
        "takes no step",
    ),
    "fixed and searched": ({"fixed/losses/KL/end_ramp_val": 0.5}, "fixed/losses/KL/end_ramp_val", "also searched"),
    "reserved path": ({"fixed/training/num_epochs": 9}, "fixed/training/num_epochs", "set by max_epochs"),
    "metric not reported": ({"metric": {"name": "val/transfer/l2"}}, "metric/name", "did you mean val/transfer/l1?"),
    "bad mode": ({"metric": {"name": "val/transfer/l1", "mode": "lowest"}}, "metric/mode", "expected min or max"),
    "no metric": ({"metric": None}, "metric", "required"),
    "num_samples < 1": ({"num_samples": 0}, "num_samples", "expected an integer >= 1"),
    "max_concurrent_trials < 1": ({"max_concurrent_trials": 0}, "max_concurrent_trials", ">= 1"),
    "max_epochs < 1": ({"max_epochs": 0}, "max_epochs", ">= 1"),
    "grace period beyond max_epochs": (
        {"scheduler": {"type": "asha", "grace_period": 3}},
        "scheduler/grace_period",
        "more than max_epochs 2",
    ),
    "unknown scheduler": ({"scheduler": {"type": "hyperband"}}, "scheduler/type", "expected asha or fifo"),
    "missing base file": ({"base": ["../nope.yaml"]}, "base[0]", "../nope.yaml: no such file"),
    "bad name": ({"name": "my sweep"}, "name", "letters, digits"),
    "fractional gpu above 1": (
        {"resources": {"cpu": 1, "gpu": 1.5}},
        "resources/gpu",
        "a fraction up to 1 or a whole number",
    ),
    "cuda without a gpu": ({"fixed/training/device": "cuda"}, "resources/gpu", "training/device is cuda"),
    "searching a ramped weight": (
        {"parameters/losses/KL/weight": {"distribution": "uniform", "min": 0, "max": 1}},
        "parameters/losses/KL/weight",
        "would replace the ramp of losses/KL in the base config by a constant weight",
    ),
    "baseline value not among the values": (
        {"parameters/model/appearance_input": {"values": ["image"]}},
        "parameters/model/appearance_input",
        "base value 'crops' (baseline trial) is not among values",
    ),
    "baseline value not representable on a log range": (
        {"parameters/losses/color_L2/weight": {"distribution": "log_uniform", "min": 0.1, "max": 1}},
        "parameters/losses/color_L2/weight",
        "base value 0.0 (baseline trial)",
    ),
    "invalid constant": (
        {"parameters/losses/KL/ramp_shape": {"value": "cubic"}},
        "parameters/losses/KL/ramp_shape/value",
        "'cubic' is not a valid value here",
    ),
    "constant with a condition": (
        {"parameters/losses/KL/ramp_shape": {"value": "log", "when": {"model/appearance_input": "image"}}},
        "parameters/losses/KL/ramp_shape/when",
        "does not apply to a constant",
    ),
    "seed out of range": ({"seed": -1}, "seed", "from 0 to 4294967295"),
    "max_failures negative": ({"max_failures": -1}, "max_failures", ">= 0"),
    "time budget not positive": ({"time_budget_s": 0}, "time_budget_s", "seconds > 0 or null"),
    "baseline not a bool": ({"baseline": "yes please"}, "baseline", "expected true or false"),
    "nan fixed": ({"fixed/optimizer/lr": float("nan")}, "fixed/optimizer/lr", "got nan, expected a finite number"),
    "inf in a fixed list": (
        {"fixed/losses/perceptual/feature_weights": [1, 1, 1, 1, 1, float("inf")]},
        "fixed/losses/perceptual/feature_weights[5]",
        "got inf, expected a finite number",
    ),
    "int beyond 64 bits fixed": (
        {"fixed/training/batch_size": 99999999999999999999999},
        "fixed/training/batch_size",
        "fits in 64 bits",
    ),
    "inf bound": (
        {"parameters/losses/KL/end_ramp_val": {"distribution": "uniform", "min": 0, "max": float("inf")}},
        "parameters/losses/KL/end_ramp_val/max",
        "got inf, expected a finite number",
    ),
    "nan bound": (
        {"parameters/losses/KL/end_ramp_val": {"distribution": "uniform", "min": float("nan"), "max": 1}},
        "parameters/losses/KL/end_ramp_val/min",
        "got nan, expected a finite number",
    ),
    "int bound beyond 64 bits": (
        {"parameters/training/batch_size": {"distribution": "int_uniform", "min": 1, "max": 10**23}},
        "parameters/training/batch_size/max",
        "fits in 64 bits",
    ),
    "nan step": (
        {"parameters/losses/color_L2/weight": {"distribution": "uniform", "min": 0, "max": 1, "step": float("nan")}},
        "parameters/losses/color_L2/weight/step",
        "got nan, expected a positive number",
    ),
    "range wider than a float": (
        {"parameters/losses/color_L2/weight": {"distribution": "uniform", "min": -1e308, "max": 1e308}},
        "parameters/losses/color_L2/weight",
        "too wide to sample",
    ),
    "nan among values": (
        {"parameters/model/drop_prob": {"values": [0.1, float("nan")]}},
        "parameters/model/drop_prob/values",
        "got nan, expected a finite number",
    ),
    "int beyond 64 bits among values": (
        {"parameters/model/max_channels": {"values": [16, 2**64]}},
        "parameters/model/max_channels/values",
        "fits in 64 bits",
    ),
    "nan constant": (
        {"parameters/optimizer/eps": {"value": float("nan")}},
        "parameters/optimizer/eps/value",
        "got nan, expected a finite number",
    ),
    "num_samples beyond 64 bits": ({"num_samples": 10**23}, "num_samples", "expected an integer >= 1"),
    "inf num_samples": ({"num_samples": float("inf")}, "num_samples", "expected an integer >= 1"),
    "nan time budget": ({"time_budget_s": float("nan")}, "time_budget_s", "seconds > 0 or null"),
    "inf reduction factor": (
        {"scheduler": {"type": "asha", "reduction_factor": float("inf")}},
        "scheduler/reduction_factor",
        "expected a number > 1",
    ),
    "list path searched": (
        {"parameters/losses/perceptual/gram_weights": {"values": [0, 1]}},
        "gram_weights",
        "Optuna cannot search",
    ),
}


@pytest.mark.parametrize("changes,key,message", BAD.values(), ids=BAD.keys())
def test_each_bad_input_gives_one_line_naming_file_and_key(
    tmp_path: Path, changes: dict[str, Any], key: str, message: str
) -> None:
    lines = problems(tmp_path, variant(**changes))
    assert len(lines) == 1, lines
    assert lines[0].startswith(str(tmp_path / "sweep.yaml")) and key in lines[0] and message in lines[0], lines[0]


def test_conditional_values_are_checked_where_the_condition_holds(tmp_path: Path) -> None:
    size = {"values": [32, 64]}
    box = {"distribution": "int_uniform", "min": 1, "max": 3, "when": {"model/spatial_size": 64}}
    spec = load_spec(write(tmp_path, variant(parameters={"model/spatial_size": size, "model/box_factor": box})))
    assert spec.parameters["model/box_factor"].when == {"model/spatial_size": [64]}  # box 3 is valid at 64 px
    box["when"] = {"model/spatial_size": 32}
    lines = problems(tmp_path, variant(parameters={"model/spatial_size": size, "model/box_factor": box}))
    assert len(lines) == 1 and "parameters/model/box_factor: 3 is not a valid value here" in lines[0], lines


def test_a_cycle_of_conditions_is_reported(tmp_path: Path) -> None:
    params = {
        "model/appearance_input": {"values": ["crops", "image"], "when": {"model/posterior_feedback": "mean"}},
        "model/posterior_feedback": {"values": ["sample", "mean"], "when": {"model/appearance_input": "image"}},
    }
    assert any("conditions form a cycle" in line for line in problems(tmp_path, variant(parameters=params)))


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"losses/KL/end_ramp_val": 0.5}, "override losses/KL/end_ramp_val: is searched in parameters and cannot"),
        ({"losses/KL/end_ramp_vall": 0.5}, "did you mean losses/KL/end_ramp_val?"),
        ({"training/num_epochs": 3}, "override training/num_epochs: set by max_epochs"),
        ({"confirm": 3}, "confirm: got 3, expected false, true or {top_k: K, seeds: [S, ...]}"),
        ({"sampler": "grid"}, "sampler: got 'grid', expected one of tpe, random"),
        ({"confirm/top_k": 4}, "confirm/top_k: got 4, expected an integer from 1 to 3"),
        ({"parameters/x": 1}, "cannot be set from the command line"),
        ({"model/spatial_size": 48}, "override model/spatial_size: got 48, expected a power of 2"),
        ({"model/box_factor": 9}, "override model/box_factor: got 9, the appearance encoder needs >= 2 scales"),
        ({"optimizer/lr_decay_begin": 10**6}, "override optimizer/lr_decay_begin: got 1000000, expected a fraction"),
    ],
)
def test_bad_overrides(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    lines = problems(tmp_path, VALID, overrides)
    assert len(lines) == 1 and message in lines[0], lines


def test_confirmation_is_on_by_default_with_fresh_seeds(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, VALID))
    assert spec.confirm == ConfirmSpec(top_k=1, seeds=(1, 2, 3), max_seeds=6, margin=Margin(0.01, relative=True))
    # The trials' seed is an ordinary config path; the default confirmation seeds avoid it.
    seeded = load_spec(write(tmp_path, variant(**{"fixed/training/seed": 2})))
    assert seeded.base_tree()["training"]["seed"] == 2 and seeded.confirm == ConfirmSpec(1, (0, 1, 3))
    assert load_spec(write(tmp_path, VALID), {"confirm": False}).confirm is None
    custom = load_spec(write(tmp_path, variant(confirm={"top_k": 2, "seeds": [7, 8]})))
    assert custom.confirm == ConfirmSpec(2, (7, 8), max_seeds=4)
    sequential = load_spec(write(tmp_path, variant(confirm={"seeds": [7, 8], "max_seeds": 6, "margin": 0.002})))
    assert sequential.confirm == ConfirmSpec(1, (7, 8), 6, Margin(0.002, relative=False))
    assert sequential.confirm.rounds == 3 and sequential.confirm.round_seeds(3, avoid=0) == (11, 12)
    assert load_spec(write(tmp_path, VALID), {"confirm/margin": "2.5%"}).confirm.margin == Margin(0.025)  # type: ignore[union-attr]
    assert load_spec(write(tmp_path, variant(baseline=False))).confirm is None  # nothing to confirm against


@pytest.mark.parametrize(
    ("confirm", "message"),
    [
        ({"seeds": [0, 1]}, "confirm/seeds: 0 is the search trials' training/seed; confirmation needs fresh seeds"),
        ({"seeds": [3]}, "confirm/seeds: got [3], expected a list of at least 2 distinct integers >= 0"),
        ({"seeds": [3, 3]}, "expected a list of at least 2 distinct integers"),
        ({"seeds": [1, -2]}, "expected a list of at least 2 distinct integers"),
        ({"top_k": 0}, "confirm/top_k: got 0, expected an integer from 1 to 3"),
        ({"topk": 1}, "confirm/topk: unknown confirm key"),
        ({"max_seeds": 2}, "confirm/max_seeds: got 2, expected at least the 3 confirm/seeds"),
        ({"margin": -0.1}, "confirm/margin: got -0.1, expected a number >= 0"),
        ({"margin": ".nan"}, "confirm/margin: got '.nan', expected a number >= 0"),
        (
            {"margin": "1 px"},
            "confirm/margin: got '1 px', expected a number >= 0 in the objective's units or a percentage",
        ),
        ({"margin": "inf%"}, "confirm/margin: got 'inf%'"),
    ],
)
def test_bad_confirm_sections(tmp_path: Path, confirm: dict[str, Any], message: str) -> None:
    lines = problems(tmp_path, variant(confirm=confirm))
    assert len(lines) == 1 and message in lines[0], lines


def test_confirm_needs_a_baseline(tmp_path: Path) -> None:
    lines = problems(tmp_path, variant(baseline=False, confirm={"top_k": 1}))
    assert len(lines) == 1 and "confirm: compares candidates with the baseline; set baseline: true" in lines[0]


def test_training_seed_can_be_searched_as_a_repeat_dimension(tmp_path: Path) -> None:
    data = variant(**{"parameters/training/seed": {"values": [0, 1, 2]}}, baseline=False)
    spec = load_spec(write(tmp_path, data))
    assert spec.parameters["training/seed"] == Distribution("categorical", values=(0, 1, 2))


def test_baseline_false_allows_unrepresentable_base_values(tmp_path: Path) -> None:
    data = variant(baseline=False, **{"parameters/model/appearance_input": {"values": ["image"]}})
    spec = load_spec(write(tmp_path, data))
    assert spec.baseline is False
    assert config_from_tree(spec.base_tree()).model.appearance_input == "crops"


@pytest.mark.parametrize(
    ("metric", "mode"),
    [
        ("val/transfer/appearance_gain", "max"),
        ("val/transfer/l1_wrong_appearance", "min"),
        ("val/floor/copy_appearance_l1", "min"),
    ],
)
def test_transfer_evidence_metrics_are_accepted_as_objectives(tmp_path: Path, metric: str, mode: str) -> None:
    spec = load_spec(write(tmp_path, variant(metric={"name": metric})))
    assert spec.metric == metric and spec.mode == mode  # the gain is maximized unless told otherwise


def test_single_training_cli_refuses_bad_arguments_before_tracking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweeps.train_best import main as train_main

    config = tmp_path / "best_config.yaml"
    config.write_text(f"data: {{cache_dir: {tmp_path / 'cache'}}}\n")
    (tmp_path / "somefile").write_text("x")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bin")
    for argv, message in (
        ([str(config), "--dry-runx"], "error: unknown option --dry-runx; see --help"),
        ([str(config), "training/seed", "1", "--dry-runx", "1"], "error: unknown option --dry-runx; see --help"),
        ([str(config), "optimizer/lr", ".inf"], "error: optimizer/lr: got inf, expected a finite number"),
        ([str(tmp_path / "bin.yaml")], "bin.yaml: not UTF-8 text YAML"),
        ([str(config), "--runs-dir", str(tmp_path / "somefile" / "sub")], "somefile is a file, not a directory"),
    ):
        assert train_main(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_config.yaml", "bin.yaml", "somefile"]


def test_loading_a_sweep_builds_its_base_config_once(monkeypatch: pytest.MonkeyPatch) -> None:
    load_spec(ROOT / "search_spaces" / "kl_ramp.yaml")  # warm caches (the defaults are built once per process)
    built = []
    check = Config.__post_init__
    monkeypatch.setattr(Config, "__post_init__", lambda self: (built.append(1), check(self))[1])
    spec = load_spec(ROOT / "search_spaces" / "kl_ramp.yaml")
    # One base config, then one per checked bound of each searched range (4 float ranges, 2 bounds each).
    assert len(spec.parameters) == 4 and all(d.kind in ("uniform", "log_uniform") for d in spec.parameters.values())
    assert len(built) == 1 + 2 * len(spec.parameters)


def test_a_weight_in_fixed_or_an_override_makes_a_ramped_term_constant(tmp_path: Path) -> None:
    ramped = variant(parameters={"model/appearance_input": {"values": ["crops", "image"]}})
    assert load_spec(write(tmp_path, ramped)).base_config().losses.KL.ramped  # the default ramp
    fixed = copy.deepcopy(ramped)
    fixed["fixed"]["losses/KL/weight"] = 0.5
    for data, overrides in ((fixed, None), (ramped, {"losses/KL/weight": 0.5})):
        kl = load_spec(write(tmp_path, data), overrides).base_config().losses.KL
        assert not kl.ramped and kl.weight == 0.5
    # a searched ramp key then has no ramp to be part of: named, not silently half-applied
    with_ramp_param = copy.deepcopy(fixed)
    with_ramp_param["parameters"]["losses/KL/end_ramp_val"] = VALID["parameters"]["losses/KL/end_ramp_val"]
    assert any("a ramp needs all of" in p for p in problems(tmp_path, with_ramp_param))


def test_a_constant_weight_is_searchable_once_fixed_drops_the_ramp(tmp_path: Path) -> None:
    data = variant(**{"parameters/losses/KL/end_ramp_val": None})
    data["parameters"]["losses/KL/weight"] = {"distribution": "log_uniform", "min": 1e-4, "max": 1.0}
    assert any("would replace the ramp of losses/KL" in p for p in problems(tmp_path, data))
    for key in ("start_ramp_it", "end_ramp_it", "start_ramp_val", "end_ramp_val"):
        data["fixed"][f"losses/KL/{key}"] = None
    spec = load_spec(write(tmp_path, data))
    assert not spec.base_config().losses.KL.ramped and "losses/KL/weight" in spec.parameters
