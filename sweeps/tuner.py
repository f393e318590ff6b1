"""Ray Tune wiring: searchers, scheduler, resources, storage, failures, for both stages.

The search stage: Optuna TPE over ask/tell (`sweeps.searcher.StudySearcher`) with its
study in `<sweep dir>/optuna.db` on the driver (open it with
`optuna-dashboard sqlite:///<sweep dir>/optuna.db`), ASHA, Tune state in `tune/` of the
sweep's storage (`sweeps.storage`: the sweep directory unless `--storage` names another
place). The confirmation stage: a fixed list of trials (candidates x seeds), FIFO, Tune
state in the storage's `confirm/`. `--resume` restores whichever stage was running
(searcher state included, so finished trials are not run again).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from sweeps import console
from sweeps.searcher import FixedPoints, StudySearcher
from sweeps.session import SweepSession
from sweeps.spec import SweepSpec
from sweeps.storage import Storage
from sweeps.trainable import run_trial
from sweeps.trial_info import is_baseline, trial_dirname

TUNE_DIR_NAME = "tune"
CONFIRM_DIR_NAME = "confirm"


def make_searcher(spec: SweepSpec, sweep_dir: Path) -> StudySearcher:
    return StudySearcher(spec, sweep_dir)


class BaselineKeepingASHA(ASHAScheduler):
    """ASHA that never stops the baseline trial early.

    The baseline is what every result is compared with, so it runs all `max_epochs`;
    its results still enter ASHA's rungs and judge the other trials.
    """

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and is_baseline(trial) and result.get("training_iteration", 0) < self._max_t:
            self._num_stopped -= 1
            return TrialScheduler.CONTINUE
        return str(action)


def make_scheduler(spec: SweepSpec) -> TrialScheduler:
    if spec.scheduler.type == "fifo":
        return FIFOScheduler()
    return BaselineKeepingASHA(
        time_attr="training_iteration",
        max_t=spec.max_epochs,
        grace_period=spec.scheduler.grace_period,
        reduction_factor=spec.scheduler.reduction_factor,
    )


def make_trainable(spec: SweepSpec, base_tree: dict[str, Any]) -> Any:
    resources = {"cpu": spec.cpu, "gpu": spec.gpu}
    bound = tune.with_parameters(run_trial, base_tree=base_tree, metric=spec.metric, mode=spec.mode)
    return tune.with_resources(bound, resources)


def reporter(spec: SweepSpec) -> tune.CLIReporter:
    """A status table every minute with the objective, epochs and the searched values only."""
    return tune.CLIReporter(
        metric_columns={spec.metric: spec.metric, "training_iteration": "epochs"},
        parameter_columns=list(spec.parameters),
        max_report_frequency=60,
        sort_by_metric=True,
    )


def run_config(
    spec: SweepSpec, storage: Storage, callbacks: list[tune.Callback], name: str = TUNE_DIR_NAME
) -> tune.RunConfig:
    return tune.RunConfig(
        name=name,
        storage_path=storage.path,
        storage_filesystem=storage.fs if storage.remote else None,
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        # Two, not one: after kill -9, Tune's last saved state may name the checkpoint before the
        # newest (state is saved every second, see driver._start_ray); it must still exist.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=callbacks,
        # Tune's status tables only with --verbose; sweeps.progress prints the sweep's own table.
        progress_reporter=reporter(spec) if console.verbose() else None,
        verbose=1 if console.verbose() else 0,
    )


def new_tuner(session: SweepSession, callbacks: list[tune.Callback]) -> tune.Tuner:
    spec = session.spec
    return tune.Tuner(
        make_trainable(spec, session.base_tree),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            search_alg=make_searcher(spec, session.sweep_dir),
            scheduler=make_scheduler(spec),
            num_samples=spec.num_samples,
            max_concurrent_trials=spec.max_concurrent_trials,
            time_budget_s=spec.time_budget_s,
            reuse_actors=True,  # no new worker (and torch import) per trial
            trial_dirname_creator=trial_dirname,
        ),
        run_config=run_config(spec, session.storage, callbacks),
    )


def new_confirm_tuner(
    session: SweepSession, callbacks: list[tune.Callback], configs: list[dict[str, Any]]
) -> tune.Tuner:
    """The confirmation trials (each a full `max_epochs` run), in order, no early stopping."""
    spec = session.spec
    return tune.Tuner(
        make_trainable(spec, session.base_tree),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            search_alg=FixedPoints(configs, spec.metric, spec.mode),
            scheduler=FIFOScheduler(),
            num_samples=len(configs),
            max_concurrent_trials=spec.max_concurrent_trials,
            reuse_actors=True,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=run_config(spec, session.storage, callbacks, CONFIRM_DIR_NAME),
    )


def restored_tuner(session: SweepSession, callbacks: list[tune.Callback], name: str = TUNE_DIR_NAME) -> tune.Tuner:
    """Continue an interrupted stage: unfinished trials resume, finished and crashed ones stay."""
    spec, stage = session.spec, session.storage.child(name)
    tuner = tune.Tuner.restore(
        stage.path,
        trainable=make_trainable(spec, session.base_tree),
        resume_unfinished=True,
        resume_errored=False,
        storage_filesystem=stage.fs if stage.remote else None,
    )
    # Callbacks and output settings are not part of the saved state; set them again. Ray has no
    # public way to (ray-project/ray#41364, open): the restored run config is reached privately.
    restored = tuner._local_tuner.get_run_config()  # type: ignore[union-attr]
    fresh = run_config(spec, session.storage, callbacks, name)
    restored.callbacks, restored.progress_reporter, restored.verbose = callbacks, fresh.progress_reporter, fresh.verbose
    return tuner


def can_resume(storage: Storage, name: str = TUNE_DIR_NAME) -> bool:
    stage = storage.child(name)
    return tune.Tuner.can_restore(stage.path, storage_filesystem=stage.fs if stage.remote else None)


def dir_size(path: Path) -> int:
    """Bytes of the files under `path`; files and folders that vanish meanwhile (the MLflow
    outbox drains while the sweep ends) count as gone, never as an error."""
    total = 0
    for root, _dirs, files in os.walk(path):  # os.walk skips folders it can no longer list
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total
