"""Config: defaults, tree round trip, validation errors naming the path."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest
import yaml

from vunet_core.config import (
    Config,
    ConfigError,
    LossTerm,
    ModelConfig,
    PerceptualTerm,
    TrainingConfig,
    config_from_tree,
    config_to_tree,
    flat_config,
    known_paths,
    render_config,
    replace_paths,
    resolve_config,
)
from vunet_core.paths import PathsError


def test_round_trip_dataclass_tree_dataclass() -> None:
    cfg = replace_paths(Config(), {"losses/KL/end_ramp_val": 0.25, "model/spatial_size": 128, "model/box_factor": 1})
    assert config_from_tree(config_to_tree(cfg)) == cfg
    assert config_from_tree(yaml.safe_load(render_config(cfg))) == cfg


def test_defaults_follow_the_original_recipe() -> None:
    cfg = Config()
    assert (cfg.optimizer.lr, cfg.optimizer.beta1, cfg.optimizer.beta2) == (1e-3, 0.5, 0.9)
    kl = cfg.losses.KL
    # The reference's 100k-step schedules as fractions: LR decay 1k..100k, KL ramp 50k..75k.
    assert cfg.training.schedule_units == "fraction"
    assert (cfg.optimizer.lr_decay_begin, cfg.optimizer.lr_decay_end) == (0.01, 1.0)
    assert (kl.start_ramp_it, kl.end_ramp_it, kl.start_ramp_val, kl.end_ramp_val) == (0.5, 0.75, 1e-6, 1.0)
    assert cfg.losses.color_L1.weight == 5.0 * 127.5
    assert cfg.model.drop_prob == 0.1 and cfg.training.init_batches == 4


def test_every_field_has_a_doc() -> None:
    def walk(obj: object) -> None:
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            assert f.metadata.get("doc"), f.name
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value)

    walk(Config())
    assert "losses/KL/end_ramp_val" in known_paths()
    assert set(flat_config(Config())) == set(known_paths())


def test_unknown_path_suggests_closest() -> None:
    with pytest.raises(ConfigError) as exc:
        resolve_config([], {"losses/KL/end_ramp_vale": 1.0})
    assert str(exc.value) == "unknown config path losses/KL/end_ramp_vale; did you mean losses/KL/end_ramp_val?"


def test_unknown_section_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown config path trainig/batch_size; did you mean training/batch_size"):
        resolve_config([], {"trainig/batch_size": 4})


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("training/batch_size", "eight", "training/batch_size: got 'eight', expected an integer"),
        ("training/batch_size", 0, "training/batch_size: got 0, expected >= 1"),
        ("model/drop_prob", 1.5, "model/drop_prob: got 1.5, expected <= 0.99"),
        ("model/spatial_size", 48, "model/spatial_size: got 48, expected a power of 2"),
        ("model/appearance_input", "pixels", "model/appearance_input: got 'pixels', expected one of crops, image"),
        ("losses/KL/start_ramp_it", 1.5, "losses/KL/start_ramp_it: got 1.5, expected a fraction of the run's steps"),
        ("losses/KL/start_ramp_it", "half", "losses/KL/start_ramp_it: got 'half', expected a number or null"),
        ("optimizer/lr_decay_end", -0.5, "optimizer/lr_decay_end: got -0.5, expected >= 0"),
        ("training/channels_last", "yes", "training/channels_last: got 'yes', expected true or false"),
        ("training/precision", "fp16", "training/precision: got 'fp16', expected one of auto, fp32, bf16"),
        ("losses/perceptual/feature_weights", [1, 1], "losses/perceptual/feature_weights: got [1.0, 1.0], expected 6"),
        ("model/box_factor", 4, "model/box_factor: got 4, the appearance encoder needs >= 2 scales"),
    ],
)
def test_bad_values_name_path_value_and_allowed(path: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        resolve_config([], {path: value})
    assert str(exc.value).startswith(message)


FINITE = "expected a finite number"
INT64 = "expected a number that fits in 64 bits"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("optimizer/lr", float("nan"), f"optimizer/lr: got nan, {FINITE}"),
        ("optimizer/lr", float("inf"), f"optimizer/lr: got inf, {FINITE}"),
        ("losses/KL/end_ramp_val", float("-inf"), f"losses/KL/end_ramp_val: got -inf, {FINITE}"),
        ("training/batch_size", 99999999999999999999999, f"training/batch_size: got 99999999999999999999999, {INT64}"),
        ("training/seed", -(2**63) - 1, f"training/seed: got {-(2**63) - 1}, {INT64}"),
        ("optimizer/lr", 10**23, f"optimizer/lr: got {10**23}, {INT64}"),
        ("losses/perceptual/feature_weights", [1, 1, 1, 1, 1, float("nan")], f"feature_weights[5]: got nan, {FINITE}"),
    ],
)
def test_non_finite_and_oversized_numbers_are_rejected(path: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        resolve_config([], {path: value})
    assert message in str(exc.value)
    assert resolve_config([], {"training/seed": 2**63 - 1}).training.seed == 2**63 - 1  # the largest int64 is fine


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("optimizer: {lr: .nan}\n", f"optimizer/lr: got nan, {FINITE}"),
        ("optimizer/eps: 1.0e+999\n", f"optimizer/eps: got inf, {FINITE}"),
        ("losses:\n  perceptual: {gram_weights: [0, 0, 0, 0, 0, -.inf]}\n", f"gram_weights[5]: got -inf, {FINITE}"),
        (
            "training: {num_epochs: 99999999999999999999999}\n",
            f"training/num_epochs: got 99999999999999999999999, {INT64}",
        ),
    ],
)
def test_non_finite_numbers_in_yaml_files_are_rejected(tmp_path, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config([cfg])


def test_incomplete_ramp_is_an_error() -> None:
    with pytest.raises(ConfigError, match="losses/color_L2: a ramp needs all of .*missing end_ramp_it"):
        resolve_config(
            [],
            {
                "losses/color_L2/start_ramp_it": 10,
                "losses/color_L2/start_ramp_val": 0.0,
                "losses/color_L2/end_ramp_val": 1.0,
            },
        )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ModelConfig(spatial_size=48), "spatial_size: got 48, expected a power of 2"),
        (lambda: ModelConfig(spatial_size=64, box_factor=4), "box_factor: got 4, the appearance encoder needs"),
        (lambda: dataclasses.replace(Config().training, batch_size=0), "batch_size: got 0, expected >= 1"),
        (lambda: LossTerm(start_ramp_it=0.1), "a ramp needs all of start_ramp_it"),
        (lambda: dataclasses.replace(Config().losses.KL, ramp_shape="log", start_ramp_val=0.0), "log needs"),
        (lambda: PerceptualTerm(gram_weights=[1.0]), "gram_weights: got [1.0], expected 6 numbers >= 0"),
        (lambda: dataclasses.replace(Config(), training=TrainingConfig(schedule_units="steps")), "whole number"),
    ],
)
def test_a_config_object_cannot_be_built_invalid(build: object, message: str) -> None:
    # Not only trees: every dataclass checks itself when constructed or replaced, so a Config that exists is valid.
    with pytest.raises(ConfigError, match=re.escape(message)):
        build()  # type: ignore[operator]


def test_a_section_problem_is_named_from_the_top_of_the_config() -> None:
    with pytest.raises(ConfigError, match=re.escape("losses/KL/ramp_shape: log needs start_ramp_val and end_ramp_val")):
        config_from_tree({"losses": {"KL": {"ramp_shape": "log", "start_ramp_val": 0.0}}})
    with pytest.raises(ConfigError, match=re.escape("data/synthetic/num_identities: got 1, expected >= 2")):
        config_from_tree({"data": {"synthetic": {"num_identities": 1}}})


def test_weight_alone_makes_a_term_constant() -> None:
    cfg = resolve_config([], {"losses/KL/weight": 0.5})
    assert not cfg.losses.KL.ramped and cfg.losses.KL.weight == 0.5
    ramped = resolve_config([], {"losses/KL/end_ramp_val": 0.5})
    assert ramped.losses.KL.ramped and ramped.losses.KL.start_ramp_it == 0.5


RAMP_FILE = "losses:\n  KL: {start_ramp_it: 0.25, end_ramp_it: 0.5, start_ramp_val: 0.001, end_ramp_val: 0.05}\n"


@pytest.mark.parametrize(
    "upper, overrides",
    [
        (None, {"losses/KL/weight": 1}),  # a command-line override over a ramping file
        ("losses: {KL: {weight: 1}}\n", {}),  # a later file
        ("losses/KL/weight: 1\n", {}),  # a later file, slash key
    ],
)
def test_weight_alone_in_any_layer_clears_the_ramp_below(tmp_path, upper, overrides) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "base.yaml"
    base.write_text(RAMP_FILE)
    files = [base]
    if upper is not None:
        (tmp_path / "upper.yaml").write_text(upper)
        files.append(tmp_path / "upper.yaml")
    cfg = resolve_config(files, overrides)
    assert not cfg.losses.KL.ramped and cfg.losses.KL.weight == 1.0
    assert replace_paths(resolve_config([base]), {"losses/KL/weight": 1}).losses.KL == cfg.losses.KL


def test_weight_beside_ramp_keys_in_one_layer_keeps_the_ramp(tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "base.yaml"
    base.write_text(RAMP_FILE + "losses/KL/weight: 1\n")
    assert resolve_config([base]).losses.KL.end_ramp_val == 0.05
    over = resolve_config([base], {"losses/KL/weight": 1, "losses/KL/end_ramp_val": 0.5})
    assert over.losses.KL.ramped and (over.losses.KL.start_ramp_it, over.losses.KL.end_ramp_val) == (0.25, 0.5)


def test_stacking_later_files_win_and_overrides_last(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = tmp_path / "a.yaml"
    b = tmp_path / "b.yaml"
    a.write_text("training: {batch_size: 4, seed: 3}\nlosses:\n  KL: {end_ramp_val: 0.1}\n")
    b.write_text("training/batch_size: 2\n")
    cfg = resolve_config([a, b])
    assert (cfg.training.batch_size, cfg.training.seed, cfg.losses.KL.end_ramp_val) == (2, 3, 0.1)
    cfg = resolve_config([b, a], {"training/seed": 9})
    assert (cfg.training.batch_size, cfg.training.seed) == (4, 9)


def test_yaml_syntax_error_names_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  batch_size: 4\n  seed: [1, 2\n")
    with pytest.raises(PathsError, match=r"bad\.yaml: YAML syntax error at line \d+"):
        resolve_config([bad])


def test_missing_file_is_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PathsError, match="nope.yaml: no such file"):
        resolve_config([tmp_path / "nope.yaml"])


def test_import_does_not_load_sweep_libraries() -> None:
    code = "import sys, vunet_core; print(sorted(m for m in ('ray', 'optuna', 'mlflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
