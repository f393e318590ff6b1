"""The real sweep CLI end to end (Ray, Optuna, MLflow on temporary directories).

One smoke sweep runs per module and several tests read what it left: the sweep
directory, `best_config.yaml`, and the MLflow store (parent run, one child per trial,
params, per-epoch metrics, image series, eval outputs, final states).
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pytest
import torch
import yaml
from mlflow import MlflowClient
from PIL import Image

from sweeps.contact import HEADER_H, PAD
from vunet_core import config_from_tree, load_eval_outputs

ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, str(ROOT / "sweeps" / "run.py")]
SMOKE = ROOT / "search_spaces" / "smoke.yaml"

pytestmark = pytest.mark.slow


def sweep_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    return {**env, "RAY_USAGE_STATS_ENABLED": "0", **extra}


def run_cli(args: list[str], cwd: Path, timeout: float = 400, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*RUN, *args], cwd=cwd, env=sweep_env(**env), capture_output=True, text=True, timeout=timeout)


def client_for(cwd: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")


def children(client: MlflowClient, sweep: str) -> tuple[Any, list[Any]]:
    exp = client.get_experiment_by_name(sweep)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("role") == "sweep"]
    assert len(parents) == 1
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], kids


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    cwd = tmp_path_factory.mktemp("smoke")
    out = run_cli([str(SMOKE)], cwd)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return cwd, out


def test_smoke_sweep_completes_with_baseline_and_best_config(smoke: tuple[Path, Any]) -> None:
    cwd, out = smoke
    sweep_dir = cwd / "sweeps_out" / "smoke"
    best = sweep_dir / "best_config.yaml"
    cfg = config_from_tree(yaml.safe_load(best.read_text()))
    assert cfg.model.spatial_size == 32 and cfg.training.num_epochs == 2
    assert "baseline (" in out.stdout and f"reuse it:    python sweeps/train_best.py {best}" in out.stdout
    rows = (sweep_dir / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 and all(",completed," in r for r in rows[1:])
    assert (sweep_dir / "optuna.db").is_file() and (sweep_dir / "optimization_history.png").is_file()
    trial_dirs = [d for d in (sweep_dir / "tune").iterdir() if d.is_dir()]
    assert len(trial_dirs) == 2 and all(len(list(d.glob("checkpoint_*"))) == 1 for d in trial_dirs)
    confirm_dirs = [d for d in (sweep_dir / "confirm").iterdir() if d.is_dir()]
    assert len(confirm_dirs) == 4 and all(len(list(d.glob("checkpoint_*"))) == 1 for d in confirm_dirs)
    # Confirmation: the baseline and the best sampled trial, 2 fresh seeds each, and a verdict.
    with open(sweep_dir / "confirm.csv") as fh:
        confirmed = list(csv.DictReader(fh))
    assert [r["candidate"] for r in confirmed] == ["baseline", "trial 1"]
    assert all(float(r["seed_1"]) > 0 and float(r["seed_2"]) > 0 for r in confirmed)
    assert confirmed[1]["verdict"] in ("better", "equivalent", "undecided", "worse")
    assert (sweep_dir / "confirm.png").stat().st_size > 10_000
    record = json.loads((sweep_dir / "best_trial.json").read_text())
    winner = next(r for r in confirmed if r["candidate"] == record["confirmation"]["candidate"])
    assert record["trial_id"] == winner["search_trial_id"]
    with open(sweep_dir / "results.csv") as fh:
        searched = {r["trial_id"]: r for r in csv.DictReader(fh)}
    assert cfg.losses.KL.end_ramp_val == pytest.approx(float(searched[record["trial_id"]]["losses/KL/end_ramp_val"]))
    assert "\nconfirmation: 2 configs, 2 fresh seeds for the baseline (at most 2)" in out.stdout
    assert "best_config.yaml is" in out.stdout
    assert not list(sweep_dir.rglob("work"))  # trials keep their work files outside the sweep dir


def test_stdout_tells_the_story_without_ray_tables_or_ansi_codes(smoke: tuple[Path, Any]) -> None:
    cwd, out = smoke
    assert "\x1b[" not in out.stdout and "\x1b[" not in out.stderr  # not a terminal: no colour codes
    assert "== Status ==" not in out.stdout and "+----" not in out.stdout  # no Tune status table
    assert "(run_trial pid=" not in out.stdout + out.stderr  # trial workers' log lines stay in Ray's logs
    assert re.search(r"^trial 0 \(\w+\) completed after 2 epochs: val/transfer/l1 [\d.]+$", out.stdout, re.M)
    log = cwd / "sweeps_out" / "smoke" / "sweep.log"
    assert f"Ray, Optuna and MLflow logs: {log}" in out.stdout
    assert "Started a local Ray instance" in log.read_text()
    # Trial numbers are Optuna's: the table's `trial` column, the MLflow run names and the study agree.
    study = optuna.load_study(study_name="smoke", storage=f"sqlite:///{cwd / 'sweeps_out' / 'smoke' / 'optuna.db'}")
    _, kids = children(client_for(cwd), "smoke")
    names = {k.data.tags["ray_trial_id"]: k.info.run_name for k in kids if k.data.tags["stage"] == "search"}
    for t in study.trials:
        assert names[t.user_attrs["tune_trial_id"]] == f"trial {t.number} {t.user_attrs['tune_trial_id']}"
        assert f"\n{t.number}      {t.user_attrs['tune_trial_id']}  " in out.stdout


def test_verbose_brings_back_rays_status_table(tmp_path: Path) -> None:
    out = run_cli([str(SMOKE), "confirm", "false", "num_samples", "1", "--verbose"], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "== Status ==" in out.stdout and "Ray, Optuna and MLflow logs" not in out.stdout
    assert "Started a local Ray instance" in out.stderr


def test_smoke_sweep_is_tracked_in_mlflow(smoke: tuple[Path, Any]) -> None:
    cwd, _ = smoke
    client = client_for(cwd)
    parent, runs = children(client, "smoke")
    kids = [k for k in runs if k.data.tags["stage"] == "search"]
    assert len(kids) == 2
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best_config.yaml", "results.csv", "search_space.yaml", "base_config.yaml"} <= parent_files
    assert {"confirm.csv", "confirm.png"} <= parent_files
    # One contact sheet per milestone (FIFO: the last epoch): baseline and trial 1 side by side.
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "contact_sheets")] == [
        "contact_sheets/epoch_0002.png"
    ]
    sheet = Image.open(cwd / "sweeps_out" / "smoke" / "contact_sheets" / "epoch_0002.png")
    tile = 32 * 3  # 32 px images enlarged 3x
    # 3 inputs + 2 x (transfer, other) + 1 + 2 prior samples columns; a title row and a label row over 4 rows of tiles
    assert sheet.size == (10 * (tile + PAD) + PAD, HEADER_H + 4 * (tile + PAD) + PAD)
    assert parent.info.status == "FINISHED" and parent.data.tags["best_trial_id"]
    best_run = [k for k in kids if k.data.tags["ray_trial_id"] == parent.data.tags["best_trial_id"]]
    assert [k.info.run_id for k in best_run] == [parent.data.tags["best_run_id"]]  # never empty
    assert sum(k.data.tags["baseline"] == "true" for k in kids) == 1
    confirms = [k for k in runs if k.data.tags["stage"] == "confirm"]
    assert sorted((k.data.tags["candidate"], k.data.tags["seed"]) for k in confirms) == [
        ("baseline", "1"), ("baseline", "2"), ("trial 1", "1"), ("trial 1", "2"),
    ]  # fmt: skip
    assert all(k.info.status == "FINISHED" and k.data.params["training/seed"] == k.data.tags["seed"] for k in confirms)
    metrics = parent.data.metrics
    assert metrics["confirm/delta_ci_low"] <= metrics["confirm/delta"] <= metrics["confirm/delta_ci_high"]
    assert {"confirm/best_mean", "confirm/baseline_mean"} <= set(metrics)
    for kid in kids:
        run_id = kid.info.run_id
        assert kid.info.status == "FINISHED" and kid.data.tags["trial_state"] == "completed"
        assert kid.data.params["losses/KL/end_ramp_val"] and kid.data.params["model/spatial_size"] == "32"
        assert kid.data.tags["sampled_params"] == "losses/KL/end_ramp_val,losses/color_L2/weight"
        history = client.get_metric_history(run_id, "val/transfer/l1")
        assert sorted(m.step for m in history) == [1, 2]
        assert {a.path for a in client.list_artifacts(run_id, "eval")} == {"eval/epoch_0001", "eval/epoch_0002"}
        eval_files = {Path(a.path).name for a in client.list_artifacts(run_id, "eval/epoch_0002")}
        assert {"index.json", "losses.csv", "00000_transfer.png", "00000_prior.png"} <= eval_files
        # As the README shows: eval outputs read back from MLflow's artifacts.
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="eval/epoch_0002", tracking_uri=client.tracking_uri
        )
        outputs = load_eval_outputs(local)
        assert outputs.images["transfer"].shape[1:] == (32, 32, 3)
        history_2 = next(m.value for m in history if m.step == 2)
        assert outputs.losses["val/transfer/l1"].mean() == pytest.approx(history_2, rel=1e-5)
        images = [a.path for a in client.list_artifacts(run_id, "images")]
        assert sum(p.endswith(".png") and "+step+" in p for p in images) == 2  # an image series, one per epoch
    runs = client.search_runs([parent.info.experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_best_config_reproduces_its_trial_as_a_tracked_single_run(smoke: tuple[Path, Any]) -> None:
    cwd, _ = smoke
    best = cwd / "sweeps_out" / "smoke" / "best_config.yaml"
    record = json.loads((best.parent / "best_trial.json").read_text())
    assert yaml.safe_load(best.read_text())["training"]["num_threads"] == 1  # the trial's thread count
    cmd = [sys.executable, str(ROOT / "sweeps" / "train_best.py"), str(best)]  # the trial's length: 2 epochs
    out = subprocess.run(cmd, cwd=cwd, env=sweep_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"training/num_threads 1: torch threads (0 = every core), as in trial {record['trial_id']}" in out.stdout
    assert f"training/seed 0: seed, as in trial {record['trial_id']}" in out.stdout
    client = client_for(cwd)
    exp = client.get_experiment_by_name("smoke")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id], filter_string="tags.role = 'single_training'")
    assert run.info.status == "FINISHED"
    assert run.data.tags["source_trial_id"] == record["trial_id"] and run.data.tags["source_run_id"] == record["run_id"]
    # The checkpoint is stored once: in the run directory, named by a tag, not copied into the local store.
    assert Path(run.data.tags["checkpoint"]).is_file() and not client.list_artifacts(run.info.run_id, "checkpoints")
    for name in ("val/transfer/l1", "val/transfer/appearance_gain", "train/loss/total"):
        trial = {m.step: m.value for m in client.get_metric_history(record["run_id"], name)}
        single = {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}
        assert sorted(single) == sorted(trial) == [1, 2]
        assert single[2] == pytest.approx(trial[2], rel=1e-5, abs=1e-7), name  # the trial's final value


def test_reuse_notes_say_what_is_kept_and_map_schedules_to_the_new_length() -> None:
    from sweeps.train_best import reuse_notes
    from vunet_core import resolve_config

    source = resolve_config([], {"training/num_epochs": 8, "training/steps_per_epoch": 60, "training/num_threads": 1})
    longer = resolve_config([], {"training/num_epochs": 80, "training/steps_per_epoch": 60, "training/num_threads": 1})
    notes = reuse_notes(source, longer, {"trial_id": "abc_00002"})
    assert notes == [
        "training/num_threads 1: torch threads (0 = every core), as in trial abc_00002",
        "training/seed 0: seed, as in trial abc_00002",
        "schedule optimizer LR decay 5-480 of 480 steps -> 48-4800 of 4800",
        "schedule losses/KL ramp 240-360 of 480 steps -> 2400-3600 of 4800",
    ]
    all_cores = resolve_config([], {"training/num_threads": 0})
    assert reuse_notes(source, all_cores, {})[0] == (
        "training/num_threads 0: torch threads (0 = every core), overridden; 1 in the config file"
    )
    assert len(reuse_notes(source, source, {})) == 2  # same length: nothing to map


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "name: x\nparameters: {losses/KL/end_ramp_vale: {distribution: uniform, min: 0, max: 1}}\n",
            "did you mean losses/KL/end_ramp_val",
        ),
        ("name: x\nparameters: {losses/KL/end_ramp_val: {distribution: uniform, min: 1, max: 0}}\n", "min"),
        ("name: x\nmetric: {name: val/transfer/nope, mode: min}\n", "val/transfer/nope"),
        ("name: x\nparameters: {\n", "line"),
    ],
)
def test_bad_spec_is_one_line_exit_2_nothing_written(tmp_path: Path, content: str, message: str) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(content)
    out = run_cli([str(spec)], tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "sweeps_out").exists() and not (tmp_path / "mlflow.db").exists()


def test_unreachable_tracking_server_stops_before_ray(tmp_path: Path) -> None:
    out = run_cli([str(SMOKE)], tmp_path, timeout=120, MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "MLflow tracking server http://127.0.0.1:9 is unreachable" in lines[0]
    assert "Ray" not in out.stdout and not (tmp_path / "sweeps_out").exists()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("file:///{tmp}/mlruns", "The filesystem tracking backend (e.g., './mlruns') is in maintenance mode"),
        ("sqlite:///{tmp}/no/such/dir/mlflow.db", "/no/such/dir does not exist; create it or fix the URI"),
        ("foo://bar", "unsupported URI 'foo://bar'"),
    ],
)
def test_a_store_mlflow_cannot_open_is_one_line_before_ray(tmp_path: Path, uri: str, message: str) -> None:
    out = run_cli([str(SMOKE)], tmp_path, timeout=120, MLFLOW_TRACKING_URI=uri.format(tmp=tmp_path))
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: MLflow store ") and message in lines[0], lines
    assert "Ray" not in out.stdout and not (tmp_path / "sweeps_out").exists()


def test_dry_run_times_sampled_configs_and_writes_nothing_but_data(tmp_path: Path) -> None:
    out = run_cli([str(SMOKE), "--dry-run", "resources/gpu", "auto"], tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "s/step" in out.stdout and "[0] baseline" in out.stdout and "[1]" in out.stdout
    if not torch.cuda.is_available():  # the packing line says what auto chose and why
        assert "resources/gpu auto: no CUDA device here, so 0 (trials train on the CPU)" in out.stdout
    else:
        assert "trials fit per GPU" in out.stdout
    assert not (tmp_path / "sweeps_out").exists() and not (tmp_path / "mlflow.db").exists()
