"""Sweeps survive trouble: diverged, crashed and early-stopped trials, Ctrl-C + --resume."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml

from tests.sweeps.test_sweep_cli import RUN, SMOKE, children, client_for, run_cli, sweep_env

pytestmark = pytest.mark.slow


def write_spec(path: Path, name: str, **changes: Any) -> Path:
    """The smoke sweep under another name, without confirmation unless `confirm` is given."""
    spec = yaml.safe_load(SMOKE.read_text())
    spec["name"] = name
    spec["confirm"] = False
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
    assert len(kids) == len(rows) == 4  # 4 values: the space is exhausted before num_samples 6
    assert "search space exhausted" in out.stdout
    statuses = {(k.info.status, k.data.tags["trial_state"]) for k in kids}
    assert statuses == {
        ("FINISHED", "completed"),
        ("FINISHED", "early_stopped"),  # a normal outcome: no red mark in the UI
        ("FAILED", "diverged"),
        ("FAILED", "crashed"),
    }
    diverged = next(k for k in kids if k.data.tags["trial_state"] == "diverged")
    assert "at step" in diverged.data.tags["diverged_at"]
    # Disk: only the answer keeps its optimizer state; stopped trials keep weights. A checkpoint holds
    # the training state only: each epoch's sample grid and eval outputs are in the trial's run, once.
    sweep_dir = tmp_path / "sweeps_out" / "faults"
    best_id = json.loads((sweep_dir / "best_trial.json").read_text())["trial_id"]
    whole = set()
    for state_file in (sweep_dir / "tune").glob("*/checkpoint_*/last.pt"):
        payload = torch.load(state_file, map_location="cpu", weights_only=True)
        assert payload["model"] and not (state_file.parent / "samples.png").exists()
        if payload["optimizer"] is not None:
            whole.add(json.loads((state_file.parents[1] / "result.json").read_text().splitlines()[0])["trial_id"])
    assert whole == {best_id}
    assert not list((sweep_dir / "tune").glob("*/epochs/epoch_*"))  # the driver took every epoch's outputs
    client = client_for(tmp_path)
    for kid in kids:
        epochs = int(next(r["epochs"] for r in rows if r["trial_id"] == kid.data.tags["ray_trial_id"]) or 0)
        if kid.data.tags["trial_state"] in ("completed", "early_stopped"):
            grids = sorted(a.path for a in client.list_artifacts(kid.info.run_id, "samples"))
            evals = sorted(a.path for a in client.list_artifacts(kid.info.run_id, "eval"))
            assert grids == [f"samples/epoch_{e:04d}" for e in range(1, epochs + 1)]
            assert evals == [f"eval/epoch_{e:04d}" for e in range(1, epochs + 1)]
    assert "sweep directory: " in out.stdout and "other trials keep model weights" in out.stdout
    # Optuna hears the truth: completed, stopped early (PRUNED at its last epoch), diverged, crashed.
    study = optuna.load_study(
        study_name="faults", storage=f"sqlite:///{tmp_path / 'sweeps_out' / 'faults' / 'optuna.db'}"
    )
    by_state = {r["trial_id"]: r for r in rows}
    State = optuna.trial.TrialState
    expected = {
        "completed": State.COMPLETE,
        "early_stopped": State.PRUNED,
        "diverged": State.FAIL,
        "crashed": State.FAIL,
    }
    trials = [t for t in study.trials if "duplicate_of" not in t.user_attrs]  # repeats drawn again are FAIL
    assert len(trials) == len(rows) and {t.user_attrs["trial"] for t in trials} == {0, 1, 2, 3}
    for t in trials:
        r = by_state[t.user_attrs["tune_trial_id"]]
        assert t.state == expected[r["state"]] and t.user_attrs["trial_state"] == r["state"]
        if r["state"] in ("completed", "early_stopped"):  # one intermediate value per reported epoch
            assert sorted(t.intermediate_values) == list(range(1, int(r["epochs"]) + 1))
            assert t.value == pytest.approx(float(r["val/transfer/l1"]))
    assert any(t.state == State.PRUNED for t in study.trials)


def test_sweep_interrupted_in_confirmation_resumes_without_rerunning_trials(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path / "resume.yaml",
        "resume",
        num_samples=3,
        max_concurrent_trials=1,
        confirm={"top_k": 1, "seeds": [1, 2], "max_seeds": 2},  # one round
    )
    proc = subprocess.Popen(
        [*RUN, str(spec)], cwd=tmp_path, env=sweep_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.time() + 300
        # "confirm baseline seed 1 (<id>) completed after 2 epochs: ..." when a confirmation trial ends.
        while not any(line.startswith("confirm ") and ") completed after" in line for line in lines):
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
    sweep_dir = tmp_path / "sweeps_out" / "resume"
    assert not (sweep_dir / "best_config.yaml").exists() and not (sweep_dir / "confirm.csv").exists()
    parent, kids = children(client_for(tmp_path), "resume")
    assert parent.info.status == "KILLED" and not [k for k in kids if k.info.status == "RUNNING"]
    done_before = {k.data.tags["ray_trial_id"] for k in kids if k.info.status == "FINISHED"}

    out = run_cli([str(spec), "--resume"], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(sweep_dir / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and all(r["state"] == "completed" and r["epochs"] == "2" for r in rows)
    with open(sweep_dir / "confirm.csv") as fh:
        confirmed = list(csv.DictReader(fh))
    assert [r["candidate"] for r in confirmed][0] == "baseline" and len(confirmed) == 2
    assert all(r["seed_1"] and r["seed_2"] for r in confirmed)
    client = client_for(tmp_path)
    parent, kids = children(client, "resume")
    assert parent.info.status == "FINISHED" and "confirm/baseline_mean" in parent.data.metrics
    stages = [k.data.tags["stage"] for k in kids]
    assert stages.count("search") == 3 and stages.count("confirm") == 4  # each trial ran once
    assert all(k.info.status == "FINISHED" for k in kids)
    for kid in kids:  # one metric point per epoch, no duplicates from the restart
        steps = [m.step for m in client.get_metric_history(kid.info.run_id, "val/transfer/l1")]
        assert sorted(steps) == [1, 2]
    started_again = [line for line in out.stdout.splitlines() if line.endswith(" started")]
    assert not [line for line in started_again if any(f"({t})" in line for t in done_before)]
    # The answer is the confirmed winner's config (here the baseline unless a candidate was better).
    record = json.loads((sweep_dir / "best_trial.json").read_text())
    winner = next(r for r in confirmed if r["candidate"] == record["confirmation"]["candidate"])
    assert record["trial_id"] == winner["search_trial_id"]
