"""`vunet-train` CLI: train, evaluate only, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from vunet_core.evaluation import load_eval_outputs


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
