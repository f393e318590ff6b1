"""Ray Tune function trainable around `vunet_core.train_epochs`.

Builds the typed config from the sweep's base tree and the sampled values,
continues from `tune.get_checkpoint()` when Ray restores the trial (a retry after
a crash, or a resumed sweep), and reports once per epoch with a checkpoint that
holds the training state, that epoch's sample grid and its eval outputs. The files
go into the checkpoint before the report, because a trial the scheduler stops is
killed right after its last report.

A non-finite loss ends the trial with a last report `trial_state=diverged` and the
worst possible objective, instead of an exception: Ray would otherwise retry it
from its last checkpoint, where it diverges again deterministically.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from sweeps.files import EPOCH_RECORD, EVAL_DIR, MODEL_STATE, SAMPLE_GRID
from sweeps.search import sampled_flat, trial_cfg
from vunet_core import Config, DivergedError, train_epochs

FAULT_ENV = "VUNET_SWEEPS_FAULT"  # test seam: "crash:<path>=<value>" crashes trials with that config value


def run_trial(config: dict[str, Any], base_tree: dict[str, Any], metric: str, mode: str) -> None:
    """The function Ray runs for each trial."""
    cfg = trial_cfg(base_tree, config)
    # The work files live outside the trial directory: Tune syncs that directory while the
    # trial runs, and a checkpoint file moved away mid-sync made the sync fail.
    with tempfile.TemporaryDirectory(prefix="vunet-trial-") as tmp:
        _train(cfg, Path(tmp), config, metric, mode)


def _train(cfg: Config, work: Path, config: dict[str, Any], metric: str, mode: str) -> None:
    resume = _restore(work)
    _maybe_inject_fault(config)
    try:
        for result in train_epochs(cfg, work, resume=resume, progress=False):
            with tempfile.TemporaryDirectory() as tmp:
                ckpt_dir = Path(tmp)
                # Moved, not copied: Ray's checkpoint is the trial's only copy of the state.
                shutil.move(result.checkpoint, ckpt_dir / MODEL_STATE)
                shutil.copy2(result.sample_grid, ckpt_dir / SAMPLE_GRID)
                if result.eval_dir is not None:
                    shutil.copytree(result.eval_dir, ckpt_dir / EVAL_DIR)
                (ckpt_dir / EPOCH_RECORD).write_text(json.dumps({"epoch": result.epoch, "step": result.step}))
                tune.report(
                    {**result.metrics, "epoch": result.epoch, "step": result.step},
                    checkpoint=tune.Checkpoint.from_directory(str(ckpt_dir)),
                )
    except DivergedError as exc:
        worst = float("inf") if mode == "min" else float("-inf")
        tune.report({metric: worst, "trial_state": "diverged", "diverged_step": exc.step, "diverged_term": exc.term})


def _restore(work: Path) -> Path | None:
    """Copy Ray's checkpoint (if any) into the trial's work dir; returns the file to resume from."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    target = work / "checkpoints"
    target.mkdir(parents=True, exist_ok=True)
    with checkpoint.as_directory() as d:
        shutil.copy2(Path(d) / MODEL_STATE, target / MODEL_STATE)
    return target / MODEL_STATE


def _maybe_inject_fault(config: dict[str, Any]) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec.startswith("crash:"):
        return
    path, _, value = spec[len("crash:") :].partition("=")
    if str(sampled_flat(config).get(path)) == value:
        raise RuntimeError(f"injected crash ({FAULT_ENV}={spec})")
