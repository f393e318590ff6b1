"""Ray Tune wiring: OptunaSearch (TPE, SQLite study), scheduler, resources, storage, failures.

The Optuna study lives in `<sweep dir>/optuna.db` (open it with
`optuna-dashboard sqlite:///<sweep dir>/optuna.db`); Tune's experiment state lives in
`<sweep dir>/tune/`, which is what `--resume` restores (searcher state included, so
finished trials are not run again).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from sweeps.outcome import is_baseline
from sweeps.space import baseline_point, define_by_run, make_sampler
from sweeps.spec import SweepSpec
from sweeps.trainable import run_trial

TUNE_DIR_NAME = "tune"
STUDY_FILE = "optuna.db"


def study_storage(sweep_dir: Path) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(f"sqlite:///{(sweep_dir / STUDY_FILE).resolve()}")


class ResumableOptunaSearch(OptunaSearch):
    """OptunaSearch whose trials survive an interrupted sweep.

    An interrupt ends the study's RUNNING trials as FAIL (listed in the study's
    `interrupted_trials` user attribute, see :func:`fail_running_trials`), so nothing is
    left RUNNING. When `--resume` continues such a trial, Optuna cannot update a finished
    trial, so the Tune trial gets a new Optuna trial with the same parameters
    (`resumed_from_trial` user attribute) that receives its values from then on.
    """

    def _live(self, trial_id: str) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        study = self._ot_study
        if ot_trial is None or study is None or trial_id in self._completed_trials:
            return
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == ot_trial.number)
        if frozen.state.is_finished():
            study.enqueue_trial(frozen.params, user_attrs={"resumed_from_trial": frozen.number})
            self._ot_trials[trial_id] = study.ask(fixed_distributions=frozen.distributions)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self._live(trial_id)
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._live(trial_id)
        super().on_trial_complete(trial_id, result, error)


def fail_running_trials(spec: SweepSpec, sweep_dir: Path) -> int:
    """End the study's RUNNING trials as FAIL (interrupted sweep); returns how many."""
    if not (sweep_dir / STUDY_FILE).is_file():
        return 0
    study = optuna.load_study(study_name=spec.name, storage=study_storage(sweep_dir))
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in running:
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    if running:
        earlier = list(study.user_attrs.get("interrupted_trials", []))
        study.set_user_attr("interrupted_trials", earlier + [t.number for t in running])
    return len(running)


def make_searcher(spec: SweepSpec, sweep_dir: Path) -> OptunaSearch:
    baseline = baseline_point(spec) if spec.baseline else {}
    return ResumableOptunaSearch(
        space=define_by_run(spec),
        metric=spec.metric,
        mode=spec.mode,
        points_to_evaluate=[baseline] if baseline else None,
        sampler=make_sampler(spec),
        study_name=spec.name,
        storage=study_storage(sweep_dir),
    )


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


def run_config(spec: SweepSpec, sweep_dir: Path, callbacks: list[tune.Callback]) -> tune.RunConfig:
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # the classic reporter honours our columns
    return tune.RunConfig(
        name=TUNE_DIR_NAME,
        storage_path=str(sweep_dir.resolve()),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        # Two, not one: after kill -9, Tune's last saved state may name the checkpoint before the
        # newest (state is saved every second, see driver._start_ray); it must still exist.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=callbacks,
        progress_reporter=reporter(spec),
        verbose=1,
    )


def new_tuner(
    spec: SweepSpec, sweep_dir: Path, base_tree: dict[str, Any], callbacks: list[tune.Callback]
) -> tune.Tuner:
    return tune.Tuner(
        make_trainable(spec, base_tree),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            search_alg=make_searcher(spec, sweep_dir),
            scheduler=make_scheduler(spec),
            num_samples=spec.num_samples,
            max_concurrent_trials=spec.max_concurrent_trials,
            time_budget_s=spec.time_budget_s,
            reuse_actors=True,  # no new worker (and torch import) per trial
        ),
        run_config=run_config(spec, sweep_dir, callbacks),
    )


def restored_tuner(
    spec: SweepSpec, sweep_dir: Path, base_tree: dict[str, Any], callbacks: list[tune.Callback]
) -> tune.Tuner:
    """Continue an interrupted sweep: unfinished trials resume, finished and crashed ones stay."""
    path = str((sweep_dir / TUNE_DIR_NAME).resolve())
    tuner = tune.Tuner.restore(
        path, trainable=make_trainable(spec, base_tree), resume_unfinished=True, resume_errored=False
    )
    # Callbacks are not part of the saved state; re-attach the MLflow logger.
    tuner._local_tuner.get_run_config().callbacks = callbacks  # type: ignore[union-attr]
    return tuner


def can_resume(sweep_dir: Path) -> bool:
    return tune.Tuner.can_restore(str((sweep_dir / TUNE_DIR_NAME).resolve()))


def prune_checkpoints(sweep_dir: Path) -> int:
    """After a finished sweep, keep only each trial's newest checkpoint (two are kept while it
    runs, for kill -9 recovery); returns how many were removed."""
    removed = 0
    for trial_dir in (sweep_dir / TUNE_DIR_NAME).glob("*/"):
        for old in sorted(trial_dir.glob("checkpoint_*"))[:-1]:
            shutil.rmtree(old, ignore_errors=True)
            removed += 1
    return removed
