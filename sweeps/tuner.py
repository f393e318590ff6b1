"""Ray Tune wiring: searchers, scheduler, resources, storage, failures, for both stages.

The search stage: Optuna TPE over ask/tell (`sweeps.searcher.StudySearcher`) with its
study in `<sweep dir>/optuna.db` on the driver (open it with
`optuna-dashboard sqlite:///<sweep dir>/optuna.db`), successive halving with the baseline
protected (`sweeps.scheduler`), Tune state in `tune/` of the
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
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from sweeps import console
from sweeps.contact import milestones
from sweeps.scheduler import ParetoHalving, SuccessiveHalving
from sweeps.searcher import FixedPoints, StudySearcher
from sweeps.session import SweepSession
from sweeps.spec import SweepSpec
from sweeps.storage import Storage
from sweeps.trainable import run_trial
from sweeps.trial_info import trial_dirname

TUNE_DIR_NAME = "tune"
CONFIRM_DIR_NAME = "confirm"


def make_scheduler(spec: SweepSpec) -> TrialScheduler:
    if spec.scheduler.type == "fifo":
        return FIFOScheduler()
    if spec.multi:
        return ParetoHalving(
            spec.objectives,
            max_t=spec.max_epochs,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
        )
    return SuccessiveHalving(
        max_t=spec.max_epochs,
        grace_period=spec.scheduler.grace_period,
        reduction_factor=spec.scheduler.reduction_factor,
    )


def make_trainable(spec: SweepSpec, base_tree: dict[str, Any]) -> Any:
    resources = {"cpu": spec.cpu, "gpu": spec.gpu}
    # The training state is also saved at the scheduler's rungs, so a trial stopped there keeps its last epoch.
    sched = spec.scheduler
    rungs = milestones(spec.max_epochs, sched.type == "asha", sched.grace_period, sched.reduction_factor)
    bound = tune.with_parameters(
        run_trial, base_tree=base_tree, metric=spec.metric, mode=spec.mode, state_epochs=tuple(rungs)
    )
    return tune.with_resources(bound, resources)


def reporter(spec: SweepSpec) -> tune.CLIReporter:
    """A status table every minute with the objective, epochs and the searched values only."""
    return tune.CLIReporter(
        metric_columns={
            **{o.name: o.name for o in spec.objectives},
            spec.metric: spec.metric,
            "training_iteration": "epochs",
        },
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
        # newest (see driver.state_period_s); it must still exist.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=with_loggers(callbacks),
        # Tune's status tables only with --verbose; sweeps.progress prints the sweep's own table.
        progress_reporter=reporter(spec) if console.verbose() else None,
        verbose=1 if console.verbose() else 0,
    )


def new_tuner(session: SweepSession, callbacks: list[tune.Callback]) -> tune.Tuner:
    """The search: Optuna proposes, the spec's scheduler stops, within the time budget."""
    spec = session.spec
    searcher = StudySearcher(spec, session.sweep_dir)
    config = tune_config(spec, searcher, make_scheduler(spec), spec.num_samples, spec.time_budget_s)
    return _tuner(session, callbacks, TUNE_DIR_NAME, config)


def new_confirm_tuner(
    session: SweepSession, callbacks: list[tune.Callback], configs: list[dict[str, Any]], name: str = CONFIRM_DIR_NAME
) -> tune.Tuner:
    """A round of confirmation trials (each a full `max_epochs` run), in order, no early stopping."""
    spec = session.spec
    searcher = FixedPoints(configs, spec.metric, spec.mode)
    return _tuner(session, callbacks, name, tune_config(spec, searcher, FIFOScheduler(), len(configs)))


def confirm_dir(round_no: int) -> str:
    """The Tune run of confirmation round `round_no` (1-based): `confirm`, `confirm_round2`, ..."""
    return CONFIRM_DIR_NAME if round_no == 1 else f"{CONFIRM_DIR_NAME}_round{round_no}"


def tune_config(
    spec: SweepSpec,
    searcher: Searcher,
    scheduler: TrialScheduler,
    num_samples: int,
    time_budget_s: float | None = None,
) -> tune.TuneConfig:
    """Both stages' TuneConfig: what differs between them is passed in."""
    return tune.TuneConfig(
        metric=spec.metric,
        mode=spec.mode,
        search_alg=searcher,
        scheduler=scheduler,
        num_samples=num_samples,
        max_concurrent_trials=spec.max_concurrent_trials,
        time_budget_s=time_budget_s,
        reuse_actors=True,  # no new worker (and torch import) per trial
        trial_dirname_creator=trial_dirname,
    )


def _tuner(session: SweepSession, callbacks: list[tune.Callback], name: str, config: tune.TuneConfig) -> tune.Tuner:
    return tune.Tuner(
        make_trainable(session.spec, session.base_tree),
        tune_config=config,
        run_config=run_config(session.spec, session.tune_storage, callbacks, name),
    )


def restored_tuner(session: SweepSession, callbacks: list[tune.Callback], name: str = TUNE_DIR_NAME) -> tune.Tuner:
    """Continue an interrupted stage: unfinished trials resume, finished and crashed ones stay."""
    spec, stage = session.spec, session.tune_storage.child(name)
    tuner = tune.Tuner.restore(
        stage.path,
        trainable=make_trainable(spec, session.base_tree),
        resume_unfinished=True,
        resume_errored=False,
        storage_filesystem=stage.fs if stage.remote else None,
    )
    # Callbacks and output settings are not part of the saved state; set them again. Ray has no
    # public way to (ray-project/ray#41364, open): the restored run config is reached privately.
    restored = tuner._local_tuner.get_run_config()  # type: ignore[union-attr]  # noqa: SLF001 - see above
    fresh = run_config(spec, session.tune_storage, callbacks, name)
    restored.callbacks, restored.progress_reporter = fresh.callbacks, fresh.progress_reporter
    restored.verbose = fresh.verbose
    return tuner


def with_loggers(callbacks: list[tune.Callback]) -> list[tune.Callback]:
    """Tune's per-trial loggers: result.json only (it names a trial folder's trial id, see
    sweeps.storage). The CSV and TensorBoard loggers Tune adds by default are off (driver._start_ray
    sets TUNE_DISABLE_AUTO_CALLBACK_LOGGERS): MLflow holds every metric, and they cost the driver
    a file write per report and a TensorBoard writer thread per trial."""
    from ray.tune.logger import JsonLoggerCallback

    return [*callbacks, JsonLoggerCallback()]


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
