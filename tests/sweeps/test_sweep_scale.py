"""Correctness at scale (issue 33): many trials through one driver, each epoch logged once.

Runs the real sweep (Ray Tune, the Optuna searcher, successive halving, the trial events, the
MLflow outbox and an sqlite store, the report, the contact sheets, a one-round confirmation) with
the driver-scale benchmark's torch-free stand-in trial (benchmarks/driver_scale.py), so 8 trials
fit at once on 2 cores: 40 trials of 3 epochs, ASHA rungs at epochs 1 and 2.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from PIL import Image

from sweeps.contact import HEADER_H, PAD
from tests.sweeps.test_sweep_cli import ROOT, children, client_for, sweep_env

pytestmark = pytest.mark.slow

TRIALS, WORKERS, EPOCHS = 40, 8, 3
CONFIRM = "{top_k: 1, seeds: [1, 2], max_seeds: 2}"  # one round: baseline + the best trial, 2 seeds each
OBJECTIVE = "val/transfer/l1"


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    work = tmp_path_factory.mktemp("scale")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "driver_scale.py"), "--one", str(WORKERS), "--work", str(work)]
    cmd += ["--trials", str(TRIALS), "--epochs", str(EPOCHS), "--epoch-s", "1", "--max-workers", str(WORKERS)]
    cmd += ["--confirm", CONFIRM]
    out = subprocess.run(cmd, env=sweep_env(), capture_output=True, text=True, timeout=400, check=False)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    assert out.returncode == 0 and lines, out.stdout[-3000:] + out.stderr[-3000:]
    return work, json.loads(lines[-1][len("RESULT ") :])


def _rows(sweep_dir: Path) -> dict[str, dict[str, str]]:
    with open(sweep_dir / "results.csv") as fh:
        return {r["trial_id"]: r for r in csv.DictReader(fh)}


def test_every_trial_has_one_run_with_every_epoch_once_and_the_report_agrees(scale: tuple[Path, Any]) -> None:
    work, result = scale
    name = f"scale{WORKERS}"
    sweep_dir = work / "out" / name
    rows = _rows(sweep_dir)
    assert result["exit"] == 0 and len(rows) == TRIALS
    assert {r["state"] for r in rows.values()} <= {"completed", "early_stopped"}
    assert any(r["state"] == "early_stopped" for r in rows.values())  # the scheduler stopped some at its rungs
    assert any(r["epochs"] == str(EPOCHS) for r in rows.values())
    client = client_for(work)
    parent, kids = children(client, name)
    assert parent.info.status == "FINISHED"
    search = [k for k in kids if k.data.tags["stage"] == "search"]
    confirm = [k for k in kids if k.data.tags["stage"] == "confirm"]
    # one child run per trial, named by its number; its state and epochs are the report's
    assert sorted(k.data.tags["ray_trial_id"] for k in search) == sorted(rows)
    assert len({k.info.run_name for k in search}) == TRIALS
    assert len(confirm) == 4 and {k.data.tags["seed"] for k in confirm} == {"1", "2"}
    # each report the driver took is one trial-epoch: none lost, none taken twice
    assert result["reports"] == sum(int(r["epochs"]) for r in rows.values()) + len(confirm) * EPOCHS
    for kid in search + confirm:
        run_id = kid.info.run_id
        assert kid.info.status == "FINISHED", (kid.info.run_name, kid.info.status)
        row = rows.get(kid.data.tags["ray_trial_id"])
        epochs = int(row["epochs"]) if row is not None else EPOCHS
        if row is not None:
            assert kid.data.tags["trial_state"] == row["state"]
            assert f"trial {row['trial']} " in kid.info.run_name + " "
        history = client.get_metric_history(run_id, OBJECTIVE)
        assert sorted(m.step for m in history) == list(range(1, epochs + 1)), kid.info.run_name
        other = client.get_metric_history(run_id, "train/loss/total")
        assert sorted(m.step for m in other) == list(range(1, epochs + 1)), kid.info.run_name
        if row is not None:
            last = max(history, key=lambda m: m.step).value
            assert float(row[OBJECTIVE]) == pytest.approx(last, rel=1e-6)
        # the epoch outputs: one eval folder and one sample grid per epoch
        evals = sorted(a.path for a in client.list_artifacts(run_id, "eval"))
        assert evals == [f"eval/epoch_{e:04d}" for e in range(1, epochs + 1)], kid.info.run_name
        images = [a.path for a in client.list_artifacts(run_id, "images")]
        assert sum(p.endswith(".png") and "+step+" in p for p in images) == epochs, kid.info.run_name
    # the driver took every epoch folder and sent every queued call
    assert not list((sweep_dir / "tune").glob("*/epochs/epoch_*"))
    # Tune's per-trial logs: result.json only (MLflow holds the metrics; no CSV or TensorBoard writers)
    trial_dirs = [d for d in (sweep_dir / "tune").iterdir() if d.is_dir() and d.name.startswith("trial_")]
    assert len(trial_dirs) == len(rows) and all((d / "result.json").is_file() for d in trial_dirs)
    assert not list((sweep_dir / "tune").glob("*/progress.csv")) and not list(
        (sweep_dir / "tune").glob("*/events.out*")
    )
    outbox = sweep_dir / "mlflow_outbox"
    assert not [p for p in outbox.glob("*.json") if p.stem.isdigit()] and not (outbox / "refused.log").exists()


def test_nothing_is_left_running_and_the_study_agrees(scale: tuple[Path, Any]) -> None:
    work, _ = scale
    name = f"scale{WORKERS}"
    sweep_dir = work / "out" / name
    rows = _rows(sweep_dir)
    client = client_for(work)
    exp = client.get_experiment_by_name(name)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert len(runs) == 1 + TRIALS + 4 and not [r for r in runs if r.info.status == "RUNNING"]
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    State = optuna.trial.TrialState
    assert not [t for t in study.trials if t.state == State.RUNNING]
    trials = {t.user_attrs["tune_trial_id"]: t for t in study.trials if "duplicate_of" not in t.user_attrs}
    assert sorted(trials) == sorted(rows)
    for tid, t in trials.items():
        row = rows[tid]
        assert t.state == (State.COMPLETE if row["state"] == "completed" else State.PRUNED)
        assert sorted(t.intermediate_values) == list(range(1, int(row["epochs"]) + 1))  # one value per epoch
        assert t.value == pytest.approx(float(row[OBJECTIVE]))


def test_contact_sheets_show_the_trials_epochs(scale: tuple[Path, Any]) -> None:
    work, _ = scale
    sweep_dir = work / "out" / f"scale{WORKERS}"
    rows = _rows(sweep_dir)
    # the driver kept each search trial's contact pairs for exactly the epochs it reported
    for tid, row in rows.items():
        cached = sorted(p.name for p in (sweep_dir / "contact" / tid).glob("epoch_*.npz"))
        assert cached == [f"epoch_{e:04d}.npz" for e in range(1, int(row["epochs"]) + 1)], tid
    # columns: the baseline, then the 3 best of those that reached the last epoch (sweeps.report.ranked)
    _, kids = children(client_for(work), f"scale{WORKERS}")
    search = [k for k in kids if k.data.tags["stage"] == "search"]
    baseline = next(k.data.tags["ray_trial_id"] for k in search if k.data.tags["baseline"] == "true")
    top = max(int(r["epochs"]) for r in rows.values())
    ranked = sorted((r for r in rows.values() if int(r["epochs"]) == top), key=lambda r: float(r[OBJECTIVE]))
    columns = [baseline] + [r["trial_id"] for r in ranked if r["trial_id"] != baseline][:3]
    sheets = sorted(p.name for p in (sweep_dir / "contact_sheets").glob("*.png"))
    assert sheets == [f"epoch_{e:04d}.png" for e in (1, 2, 3)]  # ASHA's rungs and the last epoch
    tile = 32 * 3
    for epoch in (1, 2, 3):
        sheet = np.asarray(Image.open(sweep_dir / "contact_sheets" / f"epoch_{epoch:04d}.png").convert("RGB"))
        assert sheet.shape[1] == (3 + 1 + 3 * len(columns)) * (tile + PAD) + PAD
        for c, tid in enumerate(columns):  # each trial's transfer column: its own cached pairs, or grey
            x, y = PAD + (3 + c) * (tile + PAD), HEADER_H + PAD
            shown = sheet[y : y + tile, x : x + tile]
            cache = sweep_dir / "contact" / tid / f"epoch_{epoch:04d}.npz"
            if int(rows[tid]["epochs"]) < epoch:
                assert not cache.exists() and (shown == 160).all()
                continue
            with np.load(cache) as pairs:
                expected = pairs["transfer"][0].repeat(3, 0).repeat(3, 1)
            assert (shown == expected).all(), (epoch, tid)
