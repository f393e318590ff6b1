"""A trial's per-epoch outputs (issue 33): the trial cuts out the contact pairs and writes its
epoch folder; the driver logs it through the outbox (eval outputs moved, not copied), keeps the
contact pairs without decoding the eval PNGs, and removes the folder; a checkpoint that holds
only the training state queues nothing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import pytest
from PIL import Image

from sweeps import contact
from sweeps.epoch_output import EpochFiles, contact_pairs, write_outputs
from sweeps.files import CONTACT_FILE, CONTACT_KINDS, CONTACT_ROWS, EPOCHS_DIR, MODEL_STATE
from sweeps.mlflow_trials import MlflowTrials
from sweeps.outbox import Outbox
from sweeps.progress import ProgressLines
from sweeps.storage import epoch_outputs
from sweeps.trial_events import TrialEvents
from vunet_core import CHECKPOINT_NAME, load_eval_outputs

KINDS = ("appearance", "pose", "target", "reconstruction", "transfer", "other_appearance", "other_transfer", "prior")


def eval_outputs(root: Path, pairs: int = 9, seed: int = 0) -> Path:
    """Eval outputs in vunet_core's format: index.json + one PNG per pair and kind."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    rows = []
    for n in range(pairs):
        row: dict[str, Any] = {"key": f"p{n}", "losses": {"val/transfer/l1": float(n)}}
        for kind in KINDS:
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"{n:05d}_{kind}.png")
            row[kind] = f"{n:05d}_{kind}.png"
        rows.append(row)
    (root / "index.json").write_text(json.dumps({"step": 3, "image_kinds": list(KINDS), "examples": rows}))
    return root


def epoch_files(root: Path, epoch: int) -> EpochFiles:
    root.mkdir(parents=True, exist_ok=True)
    (root / "grid.png").write_bytes(b"grid")
    (root / "last.pt").write_bytes(b"state")
    return EpochFiles(epoch, 3 * epoch, {}, root / "grid.png", eval_outputs(root / f"eval_{epoch}"), root / "last.pt")


def test_the_names_agree_with_vunet_core_and_the_contact_sheets() -> None:
    assert MODEL_STATE == CHECKPOINT_NAME  # spelt out in sweeps.files so that it loads without torch
    assert CONTACT_ROWS == contact.ROWS and set(contact.KINDS) <= set(CONTACT_KINDS)


def test_the_pairs_the_trial_cuts_out_are_those_the_driver_took_from_the_whole_eval_outputs(tmp_path: Path) -> None:
    old = tmp_path / "old"
    eval_outputs(old / "eval")
    (old / "meta.json").write_text(json.dumps({"epoch": 2, "step": 6}))
    new = tmp_path / "new"
    new.mkdir()
    contact_pairs(old / "eval", new / CONTACT_FILE)
    (new / "meta.json").write_text(json.dumps({"epoch": 2, "step": 6}))
    from_eval = contact.keep(old, tmp_path / "cache_old")
    from_cut = contact.keep(new, tmp_path / "cache_new")
    assert from_eval is not None and from_cut is not None and from_cut.name == "epoch_0002.npz"
    images = load_eval_outputs(old / "eval").images
    with np.load(from_eval) as a, np.load(from_cut) as b:
        assert set(a.files) <= set(b.files)
        for kind in a.files:
            np.testing.assert_array_equal(a[kind], b[kind])
        np.testing.assert_array_equal(b["transfer"], images["transfer"][[0, 3, 5, 8]])


def test_an_epoch_folder_is_replaced_whole_when_a_restored_trial_runs_the_epoch_again(tmp_path: Path) -> None:
    fs, trial_dir = pafs.LocalFileSystem(), str(tmp_path / "trial")
    write_outputs(epoch_files(tmp_path / "a", 1), '{"epoch": 1, "step": 3}', fs, trial_dir)
    folder = tmp_path / "trial" / EPOCHS_DIR / "epoch_0001"
    (folder / "stale.txt").write_text("from the first run")
    size = write_outputs(epoch_files(tmp_path / "b", 1), '{"epoch": 1, "step": 3}', fs, trial_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["contact.npz", "eval", "meta.json", "samples.png"]
    assert size == sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert [p.name for p in folder.parent.iterdir()] == ["epoch_0001"]  # no temporary folder left


@pytest.mark.parametrize("remote", [False, True])
def test_the_driver_takes_the_reported_epochs_only_and_removes_them(tmp_path: Path, remote: bool) -> None:
    local = pafs.LocalFileSystem()
    fs = pafs.SubTreeFileSystem(str(tmp_path / "store"), local) if remote else local
    trial_dir = "trial" if remote else str(tmp_path / "store" / "trial")
    (tmp_path / "store").mkdir()
    for epoch in (1, 2, 3):
        write_outputs(epoch_files(tmp_path / f"w{epoch}", epoch), json.dumps({"epoch": epoch}), fs, trial_dir)
    trial = SimpleNamespace(storage=SimpleNamespace(storage_filesystem=fs, trial_fs_path=trial_dir))
    with epoch_outputs(trial, upto=2) as folders:
        assert [p.name for p in folders] == ["epoch_0001", "epoch_0002"]
        assert all((p / "eval" / "index.json").is_file() for p in folders)
    left = tmp_path / "store" / "trial" / EPOCHS_DIR
    assert [p.name for p in left.iterdir()] == ["epoch_0003"]  # not reported yet: it may still be written
    with epoch_outputs(SimpleNamespace(trial_id="no storage"), upto=9) as folders:
        assert folders == []


def test_a_result_logs_its_epoch_outputs_once_and_keeps_the_contact_pairs(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    outbox = Outbox(sweep_dir, f"sqlite:///{tmp_path / 'mlflow.db'}", "0")  # not started: calls stay queued
    mlflow = MlflowTrials(outbox, "parent", {}, "val/transfer/l1")
    events = TrialEvents(mlflow, ProgressLines("val/transfer/l1", 3, "min"), sweep_dir)
    fs, trial_dir = pafs.LocalFileSystem(), str(tmp_path / "store" / "t1")
    trial = SimpleNamespace(
        trial_id="t1",
        config={"sweep": {"stage": "search", "number": 1}},
        last_result={},
        status="RUNNING",
        storage=SimpleNamespace(storage_filesystem=fs, trial_fs_path=trial_dir),
    )
    for epoch in (1, 2):
        write_outputs(epoch_files(tmp_path / f"w{epoch}", epoch), json.dumps({"epoch": epoch}), fs, trial_dir)
        events.on_trial_result(0, [trial], trial, {"training_iteration": epoch, "val/transfer/l1": 0.5})
    # the same epoch again (a restored trial re-runs it): its metrics and files are not queued twice
    write_outputs(epoch_files(tmp_path / "w2b", 2), json.dumps({"epoch": 2}), fs, trial_dir)
    events.on_trial_result(0, [trial], trial, {"training_iteration": 2, "val/transfer/l1": 0.4})
    calls = [json.loads(p.read_text()) for p in outbox.pending()]
    file_calls = [(c["op"], c["args"].get("step") or c["args"]["artifact_path"]) for c in calls if c["files"]]
    assert file_calls == [
        ("log_image", 1), ("log_artifact", "samples/epoch_0001"), ("log_artifacts", "eval/epoch_0001"),
        ("log_image", 2), ("log_artifact", "samples/epoch_0002"), ("log_artifacts", "eval/epoch_0002"),
    ]  # fmt: skip
    metric_steps = [m[3] for c in calls if c["op"] == "log_batch" for m in c["args"].get("metrics", [])]
    assert sorted(set(metric_steps)) == [1, 2] and metric_steps.count(2) == metric_steps.count(1)
    evals = [Path(c["files"]["dir"]) for c in calls if c["op"] == "log_artifacts"]
    assert all((d / "index.json").is_file() for d in evals)  # moved in whole
    assert sorted(p.name for p in (sweep_dir / "contact" / "t1").iterdir()) == ["epoch_0001.npz", "epoch_0002.npz"]
    assert not any((tmp_path / "store" / "t1" / EPOCHS_DIR).iterdir())  # taken, then removed


def test_a_checkpoint_with_only_the_training_state_queues_no_files(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    outbox = Outbox(sweep_dir, f"sqlite:///{tmp_path / 'mlflow.db'}", "0")
    mlflow = MlflowTrials(outbox, "parent", {}, "val/transfer/l1")
    ckpt = tmp_path / "checkpoint_000000"
    ckpt.mkdir()
    (ckpt / MODEL_STATE).write_bytes(b"state")
    (ckpt / "meta.json").write_text(json.dumps({"epoch": 4, "step": 12}))
    trial = SimpleNamespace(trial_id="t1", config={"sweep": {"stage": "search", "number": 1}})
    mlflow.checkpoint(trial, ckpt)
    contact.cache_checkpoint(trial, ckpt, sweep_dir)
    assert mlflow.image_steps.get("t1", set()) == set()  # the epoch's pictures still come from its folder
    assert not [p for p in outbox.pending() if json.loads(p.read_text())["files"]]
    assert not (sweep_dir / "contact").exists()
