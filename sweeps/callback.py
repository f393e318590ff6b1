"""Ray Tune callback that records every trial as a child MLflow run of the sweep's run.

Runs in the driver: params when a trial starts (the complete resolved config under
`/`-path names, the sampled ones listed in the `sampled_params` tag), metrics on
every report (step = epoch), the sample grid and eval outputs of every checkpoint,
and the final state: FINISHED (completed), KILLED + `trial_state=early_stopped`
(stopped by the scheduler), FAILED + `trial_state=diverged` or `crashed`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from ray import tune

from sweeps.outcome import is_baseline, trial_number, trial_state
from sweeps.tracking import (
    PARENT_TAG,
    STATE_TAG,
    TRIAL_ID_TAG,
    find_child_runs,
    log_checkpoint_files,
    log_metrics,
    log_params,
    set_tags,
)
from sweeps.trial_config import sampled_flat, trial_flat_config

log = logging.getLogger(__name__)

MLFLOW_STATUS = {"completed": "FINISHED", "early_stopped": "KILLED", "diverged": "FAILED", "crashed": "FAILED"}


class MlflowTrialLogger(tune.Callback):
    """Child run per trial, logged from the driver."""

    def __init__(
        self, tracking_uri: str, experiment_id: str, parent_run_id: str, base_tree: dict[str, Any], max_epochs: int
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.base_tree = base_tree
        self.max_epochs = max_epochs
        self._client: MlflowClient | None = None
        self.runs: dict[str, str] = {}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
            self.runs = find_child_runs(self._client, self.experiment_id, self.parent_run_id)
        return self._client

    def _open_run(self, trial: Any) -> str:
        """The trial's run: created on first start, reopened when Ray resumes or retries it."""
        client = self.client
        if trial.trial_id in self.runs:
            run_id = self.runs[trial.trial_id]
            client.update_run(run_id, status="RUNNING")  # resumed or retried: continue the same run
            return run_id
        sampled = sampled_flat(trial.config)
        tags = {
            PARENT_TAG: self.parent_run_id,
            TRIAL_ID_TAG: trial.trial_id,
            STATE_TAG: "running",
            "sampled_params": ",".join(sorted(sampled)),
            "baseline": str(is_baseline(trial)).lower(),
        }
        run = client.create_run(self.experiment_id, tags=tags, run_name=f"trial {trial_number(trial)} {trial.trial_id}")
        run_id = str(run.info.run_id)
        log_params(client, run_id, trial_flat_config(self.base_tree, trial.config))
        self.runs[trial.trial_id] = run_id
        return run_id

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._safely(self._open_run, trial)

    def on_trial_restore(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._safely(self._open_run, trial)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        step = int(result.get("training_iteration", 0))
        self._safely(lambda t: log_metrics(self.client, self._run_of(t), result, step), trial)

    def on_checkpoint(self, iteration: int, trials: list[Any], trial: Any, checkpoint: Any, **info: Any) -> None:
        path = Path(getattr(checkpoint, "path", ""))
        self._safely(lambda t: log_checkpoint_files(self.client, self._run_of(t), path), trial)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial, trial_state(trial.last_result or {}, error=False, max_epochs=self.max_epochs))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finish(trial, "crashed")

    def _run_of(self, trial: Any) -> str:
        return self.runs.get(trial.trial_id) or self._open_run(trial)

    def _finish(self, trial: Any, state: str) -> None:
        def finish(t: Any) -> None:
            run_id = self._run_of(t)
            tags: dict[str, Any] = {STATE_TAG: state}
            if state == "diverged":
                tags["diverged_at"] = (
                    f"{t.last_result.get('diverged_term')} at step {t.last_result.get('diverged_step')}"
                )
            if state == "crashed" and getattr(t, "error_file", None):
                self.client.log_artifact(run_id, str(t.error_file), artifact_path="error")
            set_tags(self.client, run_id, tags)
            self.client.set_terminated(run_id, status=MLFLOW_STATUS[state])

        self._safely(finish, trial)

    def _safely(self, fn: Any, trial: Any) -> None:
        """Tracking must never stop the sweep: log and carry on."""
        try:
            fn(trial)
        except Exception:  # noqa: BLE001 - any store hiccup is reported, not fatal
            log.exception("MLflow logging failed for trial %s", getattr(trial, "trial_id", "?"))
