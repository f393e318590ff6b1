"""What a trial hands the driver each epoch, and which epochs save its training state (issue 33).

Two channels, one job each, so the driver never reads more than it shows:

- every epoch, the trial writes the epoch's *outputs* into its own folder on the sweep's storage,
  `<trial dir>/epochs/epoch_NNNN/`: the sample grid, the eval outputs, the few contact-sheet pairs
  already cut out (`contact.npz`, a few KB: the driver no longer decodes the ~1000 eval PNGs) and
  the epoch record, all before the report, so they are complete when the driver sees it. The
  driver logs them to MLflow, keeps the contact pairs, and removes the folder
  (:mod:`sweeps.trial_events`);
- the *training state* (model + optimizer, ~120 MB on the 32 px recipe) goes into a Tune
  checkpoint only every `every` epochs, at the epochs in `extra` (ASHA's rungs, when the sweep
  passes them) and at the last epoch; the epochs in between report without a checkpoint.

A trial that Ray restores (a retry after a crash, or `--resume` after the driver was killed, even
with kill -9) continues from its newest state, so it trains again at most `every - 1` epochs and
reports them again; the driver logs each epoch once (MLflow, Optuna and the scheduler all skip an
epoch they already have). Tune keeps two checkpoints per trial, so its saved state always names
one that exists.

Imports neither torch nor vunet_core: the driver-scale benchmark's stand-in trial reports
through this module too.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sweeps.files import (
    CONTACT_FILE,
    CONTACT_KINDS,
    CONTACT_ROWS,
    EPOCH_RECORD,
    EPOCHS_DIR,
    EVAL_DIR,
    MODEL_STATE,
    SAMPLE_GRID,
    epoch_dirname,
)

STATE_EVERY = 4  # epochs between saved training states (besides `extra` and the last epoch)


@dataclass(frozen=True)
class EpochFiles:
    """One finished epoch, as the trial has it on local disk."""

    epoch: int
    step: int
    metrics: dict[str, Any]
    sample_grid: Path
    eval_dir: Path | None
    state: Path  # the model + optimizer state file (moved into the checkpoint when one is saved)


def saves_state(epoch: int, last_epoch: int, every: int = STATE_EVERY, extra: Collection[int] = ()) -> bool:
    """Whether this epoch's report carries the training state."""
    return epoch >= last_epoch or epoch in extra or (every > 0 and epoch % every == 0)


def report_epoch(
    files: EpochFiles, last_epoch: int, every: int = STATE_EVERY, extra: Collection[int] = ()
) -> tuple[int, int]:
    """Write the epoch's outputs for the driver, then report (with the state when it is due);
    returns (bytes written to the storage, training states written: 0 or 1)."""
    from ray import tune

    record = json.dumps({"epoch": files.epoch, "step": files.step})
    written = write_outputs(files, record, *trial_storage())
    report = {**files.metrics, "epoch": files.epoch, "step": files.step}
    if not saves_state(files.epoch, last_epoch, every, extra):
        tune.report(report)
        return written, 0
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp)
        shutil.move(files.state, ckpt / MODEL_STATE)  # moved: Ray's checkpoint is the trial's only copy
        (ckpt / EPOCH_RECORD).write_text(record)
        size = (ckpt / MODEL_STATE).stat().st_size + len(record)
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(ckpt)))
    return written + size, 1


def trial_storage() -> tuple[Any, str]:
    """The running trial's filesystem and its folder there (where Tune puts its checkpoints)."""
    from ray import tune

    storage = tune.get_context().get_storage()
    return storage.storage_filesystem, storage.trial_fs_path


def write_outputs(files: EpochFiles, record: str, fs: Any, trial_fs_path: str) -> int:
    """`<trial dir>/epochs/epoch_NNNN/` on the storage (replaced if a re-run epoch left one),
    complete or not at all; returns the bytes written."""
    import pyarrow.fs as pafs

    target = f"{trial_fs_path}/{EPOCHS_DIR}/{epoch_dirname(files.epoch)}"
    if isinstance(fs, pafs.LocalFileSystem):  # built beside its place, then renamed into it
        parent = Path(target).parent
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".", dir=parent) as tmp:
            size = _build(files, record, Path(tmp) / "epoch")
            shutil.rmtree(target, ignore_errors=True)
            (Path(tmp) / "epoch").rename(target)
        return size
    with tempfile.TemporaryDirectory(prefix="vunet-epoch-") as tmp:
        size = _build(files, record, Path(tmp) / "epoch")
        # a re-run epoch's old folder; an object store may still list one the driver is removing
        with contextlib.suppress(FileNotFoundError):
            fs.delete_dir(target)
        fs.create_dir(target, recursive=True)
        pafs.copy_files(f"{tmp}/epoch", target, destination_filesystem=fs)
    return size


def _build(files: EpochFiles, record: str, out: Path) -> int:
    """The epoch's outputs in `out`; returns their bytes."""
    out.mkdir()
    shutil.copy2(files.sample_grid, out / SAMPLE_GRID)
    if files.eval_dir is not None and files.eval_dir.is_dir():
        shutil.copytree(files.eval_dir, out / EVAL_DIR)
        if (files.eval_dir / "index.json").is_file():
            contact_pairs(files.eval_dir, out / CONTACT_FILE)
    (out / EPOCH_RECORD).write_text(record)  # last: a folder with its record is complete
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def contact_pairs(eval_dir: Path, target: Path) -> Path:
    """The contact sheets' fixed pairs of one epoch's eval outputs as a small `.npz` (the same
    rows :func:`sweeps.contact.keep` would take from the whole eval outputs)."""
    from PIL import Image

    index = json.loads((eval_dir / "index.json").read_text())
    rows = index["examples"]
    idx = np.linspace(0, len(rows) - 1, min(CONTACT_ROWS, len(rows))).round().astype(np.int64)
    arrays: dict[str, Any] = {}
    for kind in (k for k in CONTACT_KINDS if k in index["image_kinds"]):
        frames = []
        for i in idx:
            with Image.open(eval_dir / rows[int(i)][kind]) as img:
                frames.append(np.asarray(img.convert("RGB")))
        arrays[kind] = np.stack(frames)
    tmp = target.with_name(target.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(target)
    return target
