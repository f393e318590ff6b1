"""`vunet-train` CLI: train, evaluate only, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vunet_core.checkpoint import (
    CHECKPOINT_NAME,
    TrainingState,
    check_same_architecture,
    checkpoint_config,
    read_checkpoint,
    save_checkpoint,
)
from vunet_core.cli import main
from vunet_core.config import replace_paths, resolve_config
from vunet_core.evaluation import load_eval_outputs
from vunet_core.model import VUNet


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vunet_core.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _base_file(tmp_path: Path, overrides: dict[str, Any]) -> Path:
    base = tmp_path / "tiny.yaml"
    base.write_text(yaml.safe_dump({**overrides, "training/num_epochs": 1}))
    return base


def test_train_then_evaluate_only(tiny_overrides: dict[str, Any], tmp_path: Path) -> None:
    base = _base_file(tmp_path, tiny_overrides)
    out = _run(["-b", str(base), "--training/name", "clitest", "losses/KL/end_ramp_val", "0.5", "-t"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("model:\n")  # the resolved config comes first
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.endswith("_clitest")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["losses"]["KL"]["end_ramp_val"] == 0.5
    for sub in ("checkpoints/last.pt", "samples/epoch_0001.png", "eval/epoch_0001/index.json", "metrics.jsonl"):
        assert (run_dir / sub).is_file(), sub
    mtime = (run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns

    out = _run(["-p", str(run_dir)], tmp_path)
    assert out.returncode == 0, out.stderr
    assert '"val/transfer/l1"' in out.stdout
    evaluated = load_eval_outputs(run_dir / "eval" / "step_0000003")
    assert len(evaluated) == 8
    assert (run_dir / "checkpoints" / "last.pt").stat().st_mtime_ns == mtime  # no update


def test_bad_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = _run(["--losses/KL/end_ramp_vale", "1", "-t"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: unknown config path losses/KL/end_ramp_vale; did you mean losses/KL/end_ramp_val?"
    ]
    assert not (tmp_path / "runs").exists()


def test_bad_value_and_missing_file_exit_2(tmp_path: Path) -> None:
    out = _run(["training/batch_size", "-3", "-t"], tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == "error: training/batch_size: got -3, expected >= 1"
    out = _run(["-b", "missing.yaml", "-t"], tmp_path)
    assert out.returncode == 2 and "missing.yaml: no such file" in out.stderr
    out = _run(["-p", str(tmp_path / "nope")], tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a failed call (a traceback or a second line fails the test)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_non_finite_override_is_one_line_and_runs_nothing(tmp_path: Path, tiny_overrides: dict[str, Any]) -> None:
    base = _base_file(tmp_path, tiny_overrides)
    out = _run(["-b", str(base), "-t", "optimizer/lr", ".nan"], tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("error: optimizer/lr: got nan, expected a finite number")
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["training/batch_size", "99999999999999999999999"], "error: training/batch_size: got 99999999999999999999999"),
        (["losses/perceptual/feature_weights", "[1, 1, 1, 1, 1, .inf]"], "feature_weights[5]: got inf, expected a"),
        (["--dry-runx"], "error: unknown option --dry-runx; see --help"),
        (["--dry-runx", "training/seed", "1"], "error: unknown option --dry-runx; see --help"),
        (["training/seed", "1", "--dry-runx", "2"], "error: unknown option --dry-runx; see --help"),
    ],
)
def test_bad_numbers_and_unknown_options_exit_2(
    tmp_path: Path, tiny_overrides: dict[str, Any], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    base = _base_file(tmp_path, tiny_overrides)
    assert main(["-b", str(base), "-t", "--runs-dir", str(tmp_path / "runs"), *args]) == 2
    assert message in _error_line(capsys) and not (tmp_path / "runs").exists()


def test_config_files_must_be_readable_yaml(
    tmp_path: Path, tiny_overrides: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    base = _base_file(tmp_path, tiny_overrides)
    runs = ["--runs-dir", str(tmp_path / "runs")]
    (tmp_path / "cfg.json").write_text("{}")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bin")
    (tmp_path / "nan.yaml").write_text("optimizer: {lr: .nan}\n")
    (tmp_path / "dir.yaml").mkdir()
    for files, message in (
        (["cfg.json"], "cfg.json: config files must be YAML (.yaml or .yml)"),
        ([str(base), "cfg.json", "losses/KL/weight", "1"], "cfg.json: config files must be YAML"),
        (["bin.yaml"], "bin.yaml: not UTF-8 text YAML"),
        (["dir.yaml"], "dir.yaml: is a directory; expected a YAML file"),
        ([str(tmp_path)], "is a directory; config files must be YAML files"),
        ([str(base), "nan.yaml"], "optimizer/lr: got nan, expected a finite number"),
    ):
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(tmp_path)
            assert main(["-b", *files, "-t", *runs]) == 2, files
        assert message in _error_line(capsys)
    # Overrides after the files still work: this one is parsed, applied and found out of range.
    assert main(["-b", str(base), "losses/KL/weight", "-1", "-t", *runs]) == 2
    assert _error_line(capsys) == "error: losses/KL/weight: got -1.0, expected >= 0.0"
    assert not (tmp_path / "runs").exists()


def test_runs_dir_that_cannot_be_created_is_one_line(
    tmp_path: Path, tiny_overrides: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    base = _base_file(tmp_path, tiny_overrides)
    (tmp_path / "somefile").write_text("not a directory")
    assert main(["-b", str(base), "-t", "--runs-dir", str(tmp_path / "somefile" / "sub")]) == 2
    line = _error_line(capsys)
    assert line.startswith("error: --runs-dir ") and "somefile is a file, not a directory" in line
    assert capsys.readouterr().out == ""  # refused before the config is printed or data prepared


def _checkpoint(tmp_path: Path, overrides: dict[str, Any]) -> Path:
    """A real checkpoint (untrained tiny model) of a run directory."""
    cfg = resolve_config([], overrides)
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / CHECKPOINT_NAME, VUNet(cfg.model), None, TrainingState(0, 0, 0, cfg))
    return run


def test_architecture_cannot_change_for_a_checkpoint(
    tmp_path: Path, tiny_overrides: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run = _checkpoint(tmp_path, tiny_overrides)
    ckpt = run / "checkpoints" / CHECKPOINT_NAME
    for args, message in (
        (["model/base_channels", "32"], f"error: model/base_channels: got 32, but checkpoint {ckpt} has 8;"),
        (["-t", "model/appearance_input", "image"], "error: model/appearance_input: got 'image', but checkpoint"),
        (["-b", str(_base_file(tmp_path, {**tiny_overrides, "model/max_channels": 32}))], "model/max_channels: got 32"),
    ):
        assert main(["-p", str(run), *args]) == 2
        line = _error_line(capsys)
        assert message in line and "cannot change when continuing or evaluating a run" in line
    saved = checkpoint_config(read_checkpoint(ckpt))
    changed = replace_paths(
        saved, {"model/drop_prob": 0.3, "model/temperature": 0.5, "model/posterior_feedback": "mean"}
    )
    check_same_architecture(changed, saved, ckpt)  # sampling settings may change
