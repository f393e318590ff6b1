"""Every trial as a child MLflow run of the sweep's run (called by :mod:`sweeps.trial_events`).

Both stages' trials are children of the parent run, tagged `stage=search` or
`stage=confirm` (with `candidate`, `seed` and `search_trial_id`). Runs in the driver and
only queues calls on the sweep's :class:`~sweeps.outbox.Outbox`
(sent in the background, kept on disk while the server is down), so tracking never
holds up Tune's loop. Params when a trial starts (the complete resolved config under
`/`-path names, the sampled ones listed in the `sampled_params` tag), metrics on every
report (step = epoch), the sample grid and eval outputs of every epoch, and the
final state: FINISHED + `trial_state=completed` or `early_stopped` (stopped by the
scheduler: a normal outcome, not a red mark in the UI), FAILED + `trial_state=diverged`
or `crashed`; KILLED only for trials of an interrupted sweep. After the driver was
killed, an epoch already logged (a trial replayed from an older checkpoint) is not logged
again, and one Tune checkpointed but MLflow never got is logged from Tune's record.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sweeps.files import EPOCH_RECORD, EVAL_DIR, SAMPLE_GRID, eval_artifact, samples_artifact
from sweeps.outbox import Outbox
from sweeps.search import sampled_flat, trial_flat_config, trial_meta
from sweeps.storage import checkpoint_files
from sweeps.tracking import MAX_BATCH, PARENT_TAG, STATE_TAG, TRIAL_ID_TAG, metric_values, param_str
from sweeps.trial_info import TrialState, is_baseline, stage, trial_label

log = logging.getLogger(__name__)

MLFLOW_STATUS = {
    TrialState.COMPLETED: "FINISHED",
    TrialState.EARLY_STOPPED: "FINISHED",
    TrialState.DIVERGED: "FAILED",
    TrialState.CRASHED: "FAILED",
}


class MlflowTrials:
    """Child run per trial, logged from the driver through the outbox. Never raises: a tracking
    problem is logged and the sweep carries on."""

    def __init__(self, outbox: Outbox, parent_run_id: str, base_tree: dict[str, Any], metric: str) -> None:
        self.outbox = outbox
        self.parent_run_id = parent_run_id
        self.base_tree = base_tree
        self.metric = metric
        self.opened: set[str] = set()
        self.active: set[str] = set()  # started or resumed in this session and not ended yet
        self.metric_steps: dict[str, set[int]] = {}
        self.image_steps: dict[str, set[int]] = {}
        self._load_logged_steps()

    @property
    def trial_ids(self) -> set[str]:
        """Trials that have a run (created, or queued to be)."""
        return set(self.outbox.runs) | self.opened

    def _load_logged_steps(self) -> None:
        """Epochs already queued or in MLflow, per trial (for a resumed sweep). Called before the
        sender starts, so no call moves from the queue to the server in between."""
        for path in self.outbox.pending():
            item = json.loads(path.read_text())
            if item["op"] == "log_batch" and item["args"].get("metrics"):
                self.metric_steps.setdefault(item["key"], set()).update(m[3] for m in item["args"]["metrics"])
            elif item["op"] == "log_image":
                self.image_steps.setdefault(item["key"], set()).add(int(item["args"]["step"]))
            elif item["op"] == "create_run":
                self.opened.add(item["key"])
        for key, run_id in self.outbox.runs.items():
            try:
                history = self.outbox.client.get_metric_history(run_id, self.metric)
                samples = self.outbox.client.list_artifacts(run_id, "samples")
            except Exception as exc:  # noqa: BLE001 - a store that does not answer now is retried once
                log.warning("MLflow: could not read what run %s holds (%s); retrying once", run_id, exc)
                time.sleep(2)
                history = self.outbox.client.get_metric_history(run_id, self.metric)
                samples = self.outbox.client.list_artifacts(run_id, "samples")
            self.metric_steps.setdefault(key, set()).update(m.step for m in history)
            epochs = {int(a.path.rsplit("_", 1)[-1]) for a in samples if a.path[-4:].isdigit()}
            self.image_steps.setdefault(key, set()).update(epochs)

    def _open_run(self, trial: Any) -> None:
        """The trial's run: created on first start, set RUNNING again when Ray resumes or retries it."""
        key = trial.trial_id
        self.active.add(key)
        if key in self.trial_ids:
            self.outbox.put("set_status", key, status="RUNNING")
            return
        sampled = sampled_flat(trial.config)
        tags = {
            PARENT_TAG: self.parent_run_id,
            TRIAL_ID_TAG: key,
            STATE_TAG: str(TrialState.RUNNING),
            "sampled_params": ",".join(sorted(sampled)),
            "baseline": str(is_baseline(trial)).lower(),
            "stage": stage(trial),
        }
        meta = trial_meta(trial.config)
        if meta.confirming:
            tags.update(candidate=meta.candidate, seed=str(meta.seed), search_trial_id=meta.search_trial)
        name = trial_label(trial).replace(" (", " ").rstrip(")")
        self.outbox.put("create_run", key, tags=tags, run_name=name, match_tag=TRIAL_ID_TAG)
        params = [[k, param_str(v)] for k, v in trial_flat_config(self.base_tree, trial.config).items()]
        for i in range(0, len(params), MAX_BATCH):
            self.outbox.put("log_batch", key, params=params[i : i + MAX_BATCH])
        self.opened.add(key)

    def opened_run(self, trial: Any) -> None:
        """A trial started: its run is created (params, tags), or set RUNNING again on a retry."""
        self._safely(self._open_run, trial)

    def restored(self, trial: Any) -> None:
        """A trial restored by --resume: reopen its run and log what a killed driver missed."""
        self._safely(self._open_run, trial)
        self._safely(self._catch_up, trial)

    def result(self, trial: Any, result: dict[str, Any]) -> None:
        """An epoch's metrics (step = epoch), each epoch once."""
        self._safely(lambda t: self._log_result(t, result), trial)

    def checkpoint(self, trial: Any, path: Path) -> None:
        """A checkpoint's sample grid and eval outputs (a checkpoint written before the trials
        had an `epochs/` folder), each epoch once."""
        self._safely(lambda t: self._log_files(t, path), trial)

    def epoch_outputs(self, trial: Any, path: Path) -> None:
        """An epoch's outputs folder (:mod:`sweeps.epoch_output`), each epoch once; its eval
        outputs are moved into the outbox, not copied (the folder is removed afterwards)."""
        self._safely(lambda t: self._log_files(t, path, move=True), trial)

    def _catch_up(self, trial: Any) -> None:
        """A driver killed right after Tune recorded a checkpoint leaves that epoch unlogged, and
        the restored trial continues after it: log it from Tune's record of the checkpoint."""
        latest = getattr(trial, "latest_checkpoint_result", None)
        if latest is None:
            return
        metrics = dict(latest.metrics or {})
        metrics.setdefault("training_iteration", metrics.get("epoch", 0))
        self._log_result(trial, metrics)
        if latest.checkpoint is not None:
            with checkpoint_files(latest.checkpoint) as path:
                self._log_files(trial, path)

    def _log_result(self, trial: Any, result: dict[str, Any]) -> None:
        step = int(result.get("training_iteration", 0))
        done = self.metric_steps.setdefault(trial.trial_id, set())
        if step in done or step <= 0:
            return
        self._ensure_run(trial)
        now = int(time.time() * 1000)
        items = [[k, v, now, step] for k, v in metric_values(result).items()]
        for i in range(0, len(items), MAX_BATCH):
            self.outbox.put("log_batch", trial.trial_id, metrics=items[i : i + MAX_BATCH])
        done.add(step)

    def _log_files(self, trial: Any, path: Path, move: bool = False) -> None:
        meta = path / EPOCH_RECORD
        if not meta.is_file() or not (path / SAMPLE_GRID).is_file():  # a checkpoint with the state only
            return
        epoch = int(json.loads(meta.read_text())["epoch"])
        done = self.image_steps.setdefault(trial.trial_id, set())
        if epoch in done:
            return
        self._ensure_run(trial)
        key, grid = trial.trial_id, path / SAMPLE_GRID
        self.outbox.put("log_image", key, files={"image": grid}, image_key="samples", step=epoch)
        self.outbox.put("log_artifact", key, files={"file": grid}, artifact_path=samples_artifact(epoch))
        moved = {"move": True} if move else {}  # the folder is the caller's to give away
        self.outbox.put(
            "log_artifacts", key, files={"dir": path / EVAL_DIR}, artifact_path=eval_artifact(epoch), **moved
        )
        done.add(epoch)

    def _ensure_run(self, trial: Any) -> None:
        if trial.trial_id not in self.trial_ids:
            self._open_run(trial)

    def finish(self, trial: Any, state: TrialState) -> None:
        """The trial ended in `state`: tags, error log, run status."""

        def finish(t: Any) -> None:
            self._ensure_run(t)
            tags: dict[str, Any] = {STATE_TAG: str(state)}
            if state == TrialState.DIVERGED:
                tags["diverged_at"] = (
                    f"{t.last_result.get('diverged_term')} at step {t.last_result.get('diverged_step')}"
                )
            if state == TrialState.CRASHED and getattr(t, "error_file", None):
                self.outbox.put("log_artifact", t.trial_id, files={"file": Path(t.error_file)}, artifact_path="error")
            self.outbox.put("log_batch", t.trial_id, tags=[[k, str(v)] for k, v in tags.items()])
            self.outbox.put("set_status", t.trial_id, status=MLFLOW_STATUS[state])
            self.active.discard(t.trial_id)

        self._safely(finish, trial)

    def end_active(self, status: str, trial_state_tag: str) -> None:
        """End the runs of trials still running (an interrupted or failed sweep); like every
        call here it never raises (the driver calls it while it handles another error)."""

        def end(key: str) -> None:
            self.outbox.put("log_batch", key, tags=[[STATE_TAG, trial_state_tag]])
            self.outbox.put("set_status", key, status=status)

        for key in sorted(self.active):
            self._safely(lambda _: end(key), SimpleNamespace(trial_id=key))  # noqa: B023 - called at once
        self.active.clear()

    def _safely(self, fn: Any, trial: Any) -> None:
        """Tracking must never stop the sweep: log and carry on."""
        try:
            fn(trial)
        except Exception:  # noqa: BLE001 - a full disk or a bad value is reported, not fatal
            log.exception("MLflow logging failed for trial %s", getattr(trial, "trial_id", "?"))
