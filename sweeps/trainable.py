"""Ray Tune function trainable around `vunet_core.train_epochs`.

Builds the typed config from the sweep's base tree and the sampled values,
continues from `tune.get_checkpoint()` when Ray restores the trial (a retry after
a crash, or a resumed sweep), and reports once per epoch through
:func:`sweeps.epoch_output.report_epoch`: that epoch's sample grid, eval outputs and
contact-sheet pairs go to the trial's `epochs/` folder for the driver, and the training
state goes into a checkpoint every `state_every` epochs, at `state_epochs` and at the
last epoch (a restored trial re-runs at most `state_every - 1` epochs). Everything is
written before the report, because a trial the scheduler stops is killed right after
its last report.

A non-finite loss ends the trial with a last report `trial_state=diverged` and the
worst possible objective, instead of an exception: Ray would otherwise retry it
from its last checkpoint, where it diverges again deterministically.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ray import tune

from sweeps.epoch_output import STATE_EVERY, EpochFiles, report_epoch
from sweeps.files import MODEL_STATE
from sweeps.search import sampled_flat, trial_cfg
from vunet_core import Config, DivergedError, train_epochs

FAULT_ENV = "VUNET_SWEEPS_FAULT"  # test seam: "crash:<path>=<value>" crashes trials with that config value


def run_trial(
    config: dict[str, Any],
    base_tree: dict[str, Any],
    metric: str,
    mode: str,
    state_every: int = STATE_EVERY,
    state_epochs: Collection[int] = (),
) -> None:
    """The function Ray runs for each trial; the training state is saved every `state_every`
    epochs, at `state_epochs` (e.g. the scheduler's rungs) and at the last epoch."""
    cfg = trial_cfg(base_tree, config)
    # The work files live outside the trial directory: Tune syncs that directory while the
    # trial runs, and a checkpoint file moved away mid-sync made the sync fail.
    with tempfile.TemporaryDirectory(prefix="vunet-trial-") as tmp:
        _train(cfg, Path(tmp), config, (metric, mode), (state_every, tuple(state_epochs)))


def _train(
    cfg: Config, work: Path, config: dict[str, Any], objective: tuple[str, str], saves: tuple[int, tuple[int, ...]]
) -> None:
    metric, mode = objective
    resume = _restore(work)
    _maybe_inject_fault(config)
    try:
        for result in train_epochs(cfg, work, resume=resume, progress=False):
            files = EpochFiles(
                result.epoch, result.step, result.metrics, result.sample_grid, result.eval_dir, result.checkpoint
            )
            report_epoch(files, cfg.training.num_epochs, every=saves[0], extra=saves[1])
            if result.eval_dir is not None:  # written for the driver: the work copy is not needed again
                shutil.rmtree(result.eval_dir, ignore_errors=True)
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
