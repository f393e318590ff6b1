"""What the driver does on each trial event, in one place: the one Tune callback of a sweep.

Tune calls :class:`TrialEvents` in the driver process; each event reads top to bottom:

- started: create the trial's MLflow run (or set it RUNNING again on a retry), print a line;
- restored (``--resume``): reopen the run and log what a killed driver missed (the epochs
  its trial reported, and the outputs it left, up to the result Tune recorded);
- result: log the epoch's metrics; take the epoch's outputs the trial wrote for it
  (:mod:`sweeps.epoch_output`: sample grid, eval outputs, contact-sheet pairs, from wherever the
  storage is), log them, keep the contact pairs, remove the folder; print the epoch line (and,
  once a minute, the table);
- checkpoint: only the training state now; a checkpoint from before the trials wrote `epochs/`
  folders still has its sample grid and eval outputs logged and cached;
- complete / error: decide how the trial ended, once (:func:`~sweeps.trial_info.end_state`),
  end its run with that state and print it.

MLflow calls only queue on the sweep's outbox (:mod:`sweeps.outbox`), so no event waits for
the tracking server; none of them raises into Tune's loop. Per report the driver reads a few
small files and renames one folder: its cost does not grow with the eval outputs or the trials.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ray import tune

from sweeps.contact import cache_checkpoint
from sweeps.mlflow_trials import MlflowTrials
from sweeps.progress import ProgressLines
from sweeps.storage import checkpoint_files, epoch_outputs
from sweeps.trial_info import TrialState, end_state

log = logging.getLogger(__name__)


class TrialEvents(tune.Callback):
    def __init__(self, mlflow: MlflowTrials, progress: ProgressLines, sweep_dir: Path) -> None:
        self.mlflow = mlflow
        self.progress = progress
        self.sweep_dir = sweep_dir

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.mlflow.opened_run(trial)
        self.progress.started(trial)

    def on_trial_restore(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.mlflow.restored(trial)
        self._outputs(trial, int((trial.last_result or {}).get("training_iteration", 0) or 0))

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        self.mlflow.result(trial, result)
        self._outputs(trial, int(result.get("training_iteration", 0) or 0))
        self.progress.epoch(trial, result, trials)

    def _outputs(self, trial: Any, upto: int) -> None:
        """Log and cache the epoch outputs the trial wrote up to epoch `upto`, then drop them."""
        try:
            with epoch_outputs(trial, upto) as folders:
                for path in folders:
                    cache_checkpoint(trial, path, self.sweep_dir)  # first: the outbox takes eval/ away
                    self.mlflow.epoch_outputs(trial, path)
        except OSError as exc:  # storage unreachable now: this epoch's pictures are missed, not the sweep
            log.warning("trial %s: could not read its epoch outputs (%s)", trial.trial_id, exc)

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        try:
            with checkpoint_files(checkpoint) as path:  # fetched from remote storage, if it is there
                self.mlflow.checkpoint(trial, path)
                cache_checkpoint(trial, path, self.sweep_dir)
        except OSError as exc:  # storage unreachable now: this epoch's pictures are missed, not the sweep
            log.warning("trial %s: could not read its checkpoint's files (%s)", trial.trial_id, exc)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        progress = self.progress
        self._ended(
            trial,
            end_state(trial.last_result or {}, error=False, max_epochs=progress.max_epochs, metric=progress.metric),
        )

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial, TrialState.CRASHED)

    def _ended(self, trial: Any, state: TrialState) -> None:
        self.mlflow.finish(trial, state)
        self.progress.ended(trial, state)
