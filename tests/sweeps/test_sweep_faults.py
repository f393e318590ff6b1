"""Sweeps survive trouble: diverged, crashed and early-stopped trials, Ctrl-C + --resume."""

from __future__ import annotations

import csv
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.sweeps.test_sweep_cli import RUN, SMOKE, children, client_for, run_cli, sweep_env

pytestmark = pytest.mark.slow


def write_spec(path: Path, name: str, **changes: Any) -> Path:
    spec = yaml.safe_load(SMOKE.read_text())
    spec["name"] = name
    spec.update(changes)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_diverged_crashed_and_early_stopped_trials_do_not_stop_the_sweep(tmp_path: Path) -> None:
    # lr 1e12 diverges, lr 1e-9 learns nothing (ASHA stops it), lr 0.002 crashes by injection.
    spec = write_spec(
        tmp_path / "faults.yaml",
        "faults",
        parameters={"optimizer/lr": {"values": [0.001, 1.0e-9, 1.0e12, 0.002]}},
        num_samples=6,
        max_concurrent_trials=1,
        max_epochs=3,
        scheduler={"type": "asha", "grace_period": 1, "reduction_factor": 2},
        max_failures=1,
    )
    fixed = yaml.safe_load(spec.read_text())
    fixed["fixed"]["training"]["steps_per_epoch"] = 4
    fixed["fixed"]["losses/KL"] = {"weight": 1.0}
    spec.write_text(yaml.safe_dump(fixed, sort_keys=False))
    out = run_cli([str(spec)], tmp_path, VUNET_SWEEPS_FAULT="crash:optimizer/lr=0.002")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(tmp_path / "sweeps_out" / "faults" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    by_lr = {float(r["optimizer/lr"]): r["state"] for r in rows}
    assert by_lr == {0.001: "completed", 1e-9: "early_stopped", 1e12: "diverged", 0.002: "crashed"}
    _, kids = children(client_for(tmp_path), "faults")
    assert len(kids) == len(rows) == 6
    statuses = {(k.info.status, k.data.tags["trial_state"]) for k in kids}
    assert statuses == {
        ("FINISHED", "completed"),
        ("KILLED", "early_stopped"),
        ("FAILED", "diverged"),
        ("FAILED", "crashed"),
    }
    diverged = next(k for k in kids if k.data.tags["trial_state"] == "diverged")
    assert "at step" in diverged.data.tags["diverged_at"]


def test_interrupted_sweep_resumes_without_rerunning_trials(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "resume.yaml", "resume", num_samples=3, max_concurrent_trials=1)
    proc = subprocess.Popen(
        [*RUN, str(spec)], cwd=tmp_path, env=sweep_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.time() + 300
        # The driver prints "trial N (<id>) completed after E epochs: ..." when a trial finishes.
        while not any(") completed after" in line for line in lines):
            assert proc.poll() is None and time.time() < deadline, "".join(lines)[-3000:]
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=180)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines)
    assert proc.returncode == 130, output[-3000:]
    assert "--resume" in output
    client = client_for(tmp_path)
    parent, kids = children(client, "resume")
    assert parent.info.status == "KILLED" and not [k for k in kids if k.info.status == "RUNNING"]

    out = run_cli([str(spec), "--resume"], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(tmp_path / "sweeps_out" / "resume" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and len({r["trial_id"] for r in rows}) == 3
    assert all(r["state"] == "completed" and r["epochs"] == "2" for r in rows)
    parent, kids = children(client_for(tmp_path), "resume")
    assert parent.info.status == "FINISHED"
    assert sorted(k.data.tags["ray_trial_id"] for k in kids) == sorted(r["trial_id"] for r in rows)
    assert all(k.info.status == "FINISHED" for k in kids)
    for kid in kids:  # one metric point per epoch, no duplicates from the restart
        steps = [m.step for m in client_for(tmp_path).get_metric_history(kid.info.run_id, "val/transfer/l1")]
        assert sorted(steps) == [1, 2]
