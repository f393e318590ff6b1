"""The sweep driver: preflight checks, MLflow parent run, Ray lifecycle, both stages, report.

`preflight` does every check that needs no compute (config of the base and of the
search-space corners, dataset, VGG weights, tracking store). `run_sweep` owns the
side effects in order: generated data, the MLflow parent run, a local Ray instance
(or a connection to a cluster), the search Tuner, the confirmation Tuner (same Ray
session; `sweeps/confirm.py`), then the report and the answer (`sweeps/answer.py`). Ray started here
is shut down here; nothing is left running. SIGINT and SIGTERM stop the sweep at any
point with its state saved, exit code 130 / 143, every open run KILLED and the exact
`--resume` command printed; an interrupted sweep never writes `best_config.yaml`.
MLflow calls go through the sweep's outbox (`sweeps/outbox.py`): a tracking server
outage delays them, never the trials, and loses nothing.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps import confirm, console
from sweeps.answer import close_finished
from sweeps.files import ANSWER_FILES
from sweeps.interrupt import Interrupts
from sweeps.mlflow_trials import MlflowTrials
from sweeps.outbox import REFUSED_LOG, Outbox
from sweeps.progress import ProgressLines
from sweeps.report import SweepReport, build_report
from sweeps.searcher import fail_running_trials
from sweeps.session import PARENT, SweepSession
from sweeps.spec import SweepSpec
from sweeps.storage import AWS_VARIABLES, Storage, check_storage
from sweeps.sweep_dir import Target, begin_span, end_span, read_state, write_state
from sweeps.tracking import check_tracking, code_version, ensure_experiment, open_store, param_str, redact
from sweeps.trial_events import TrialEvents
from sweeps.trial_info import TrialState
from vunet_core import config_from_tree, prepare_data, render_config

PATH_KEYS = ("data/root", "data/cache_dir", "losses/perceptual/vgg_weights")
FLUSH_AT_END_S = 30.0
THREAD_TIMEOUT_ENV = "TUNE_FUNCTION_THREAD_TIMEOUT_S"  # read by Ray in each trial worker
STATE_PERIOD_ENV = "TUNE_GLOBAL_CHECKPOINT_S"  # read by Tune when a stage starts
USER_STATE_PERIOD = STATE_PERIOD_ENV in os.environ  # set by the user: kept
log = logging.getLogger(__name__)


def absolute_paths(tree: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """Make file settings absolute: Ray runs trials in other working directories."""
    from vunet_core import get_path, set_path

    out = tree
    for path in PATH_KEYS:
        try:
            value = get_path(out, path)
        except KeyError:
            continue
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            out = set_path(out, path, str((cwd / value).resolve()))
    return out


def preflight(spec: SweepSpec, cwd: Path, uri: str, storage: Storage | None = None) -> dict[str, Any]:
    """Resolve the base tree (paths against `cwd`) and check inputs, tracking and storage; raises
    user errors."""
    from vunet_core import check_inputs

    base_tree = absolute_paths(spec.base_tree(), cwd)
    check_inputs(config_from_tree(base_tree))
    check_tracking(uri)
    if storage is not None:
        check_storage(storage)
    return base_tree


def state_period_s(trials: int) -> float:
    """Seconds between saves of Tune's experiment state (what --resume restores after kill -9):
    1 s up to 100 trials, trials / 100 s beyond (at most 10 s). A save lists every trial: with a
    fixed 1 s period it took 13 % of the driver's core at 1100 trials (~0.1 ms per trial); this
    keeps it near 1 %. Between saves Tune also saves as soon as a trial has written 2 checkpoints (`num_to_keep`)
    since the last one, so the saved state names a checkpoint the trial still keeps (but for the
    moment between that second checkpoint, which deletes the oldest, and the save that follows)."""
    return min(10.0, max(1.0, trials / 100))


def _start_ray(address: str | None, num_cpus: int | None, storage: Storage, trials: int) -> None:
    import ray

    # The classic reporter honours our columns; Tune's newer output also breaks on a restored second stage.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    # Tiny trials checkpoint every few seconds; Tune's "snapshotting too often" warning is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not USER_STATE_PERIOD:
        os.environ[STATE_PERIOD_ENV] = f"{state_period_s(trials):g}"
    # Tune's CSV and TensorBoard trial loggers duplicate MLflow; tuner.with_loggers keeps the JSON one.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # A trial's worker is reused for the next trial (reuse_actors) once its training function has
    # returned; Ray waits 2 s for that, and a finished trial's clean-up on a busy machine took
    # longer: the next trial then crashed with "reset_config() ... return True". Wait longer.
    os.environ.setdefault(THREAD_TIMEOUT_ENV, "60")
    to_driver = console.verbose()  # trial workers' output on the terminal only with --verbose
    if address:
        # Trials on other nodes write checkpoints to the storage with the driver's AWS settings.
        aws = {k: v for k in AWS_VARIABLES if storage.remote and (v := os.environ.get(k))}
        runtime_env = {"env_vars": {**aws, THREAD_TIMEOUT_ENV: os.environ[THREAD_TIMEOUT_ENV]}}
        context = ray.init(address=address, log_to_driver=to_driver, runtime_env=runtime_env)
    else:  # a single-machine instance listens on the loopback interface only (see sweeps/run.py)
        context = ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=to_driver,
            _node_ip_address="127.0.0.1",
        )
    if (handler := console.file_handler()) is not None:
        console.route(handler)  # ray.init set up its own logging again
        session = getattr(context, "address_info", {}).get("session_dir", "")
        logging.getLogger("ray").info("trial workers' output: %s/logs/worker-*.out", session)


def _parent_run(session: SweepSession) -> bool:
    """Set the session's experiment and parent run ids: the run is created once, recorded in
    sweep.json and reused on --resume; returns whether it was created now."""
    spec, sweep_dir = session.spec, session.sweep_dir
    state = read_state(sweep_dir)
    if state.parent_run_id:
        session.experiment_id, session.parent_id = state.experiment_id, state.parent_run_id
        return False
    client = open_store(session.tracking_uri)
    experiment_id = ensure_experiment(client, spec.name)
    tags = {
        "sweep": spec.name,
        "role": "sweep",
        "sweep_dir": str(sweep_dir),
        "storage": session.tune_storage.shown(),
        "metric": spec.metric,
        "mode": spec.mode,
        "mlflow.source.git.commit": code_version(Path(__file__).parent),
    }
    # No signal between creating the run and recording it (else a resume would create a second one).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        run_id = str(client.create_run(experiment_id, tags=tags, run_name=f"sweep {spec.name}").info.run_id)
        write_state(sweep_dir, state.but(experiment_id=experiment_id, parent_run_id=run_id))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    session.experiment_id, session.parent_id = experiment_id, run_id
    return True


def _log_parent_inputs(outbox: Outbox, spec: SweepSpec, base_tree: dict[str, Any]) -> None:
    params = {
        "num_samples": spec.num_samples,
        "max_epochs": spec.max_epochs,
        "scheduler": spec.scheduler.type,
        "searched": ",".join(spec.parameters),
        "resources/cpu": spec.cpu,
        "resources/gpu": spec.gpu,
        "resources/gpu_auto": spec.gpu_auto,
    }
    outbox.put("log_batch", PARENT, params=[[k, param_str(v)] for k, v in params.items()])
    if spec.gpu_note:
        outbox.put("log_batch", PARENT, tags=[["gpu_packing", spec.gpu_note]])
    outbox.put("log_text", PARENT, text=spec.source_text, artifact_file="search_space.yaml")
    outbox.put("log_text", PARENT, text=render_config(config_from_tree(base_tree)), artifact_file="base_config.yaml")


@dataclass(frozen=True)
class RunOptions:
    """How this command runs the sweep: continue it or start it, on which Ray, how loud."""

    resume: bool = False
    address: str | None = None  # a Ray cluster to join (None: a local instance)
    num_cpus: int | None = None  # CPUs of the local instance (None: all)
    verbose: bool = False  # Ray Tune's tables and the libraries' logs on the terminal


def run_sweep(spec: SweepSpec, base_tree: dict[str, Any], target: Target, options: RunOptions) -> int:
    """Run the sweep to its end (or to SIGINT/SIGTERM) and report; returns the exit code."""
    assert target.sweep_dir is not None and target.storage is not None
    sweep_dir = target.sweep_dir
    log_file = console.configure(sweep_dir, options.verbose)
    session = SweepSession(spec, base_tree, target.state.tracking_uri, sweep_dir, target.storage)
    session.leg = read_state(sweep_dir).legs + 1
    tracked: _Tracking | None = None
    with Interrupts() as interrupts:
        try:
            prepare_data(config_from_tree(base_tree), progress=True)  # generate the default dataset once, here
            tracked = _open_tracking(session)
            _print_start(session, log_file)
            if options.resume:  # trials a killed driver left RUNNING in the study cannot be continued
                fail_running_trials(spec, sweep_dir)
            report, confirmation = _fit(session, [tracked.events], options, interrupts)
            # Tune returns on its own only when a stage is done (all trials, or the search's time
            # budget, which Tune carries over a resume); with a signal it returns early.
            if interrupts.signal is None:
                close_finished(session, tracked.outbox, report, confirmation)
                return _flush(session, tracked.outbox, 0)
        except KeyboardInterrupt:
            interrupts.signal = interrupts.signal or signal.SIGINT
        except BaseException:
            if tracked is not None:  # never leave runs open: the parent and trials still running end FAILED
                tracked.end_runs("FAILED", "failed")
                tracked.outbox.flush(FLUSH_AT_END_S)
            raise
        return _interrupted(session, tracked, interrupts)


@dataclass
class _Tracking:
    """The sweep's MLflow side while it runs: the outbox, the trial runs, the one Tune callback."""

    outbox: Outbox
    mlflow: MlflowTrials
    events: TrialEvents

    def end_runs(self, status: str, state: str) -> None:
        """End the parent and every trial run still open (they are reopened by --resume)."""
        self.mlflow.end_active(status, state)
        self.outbox.put("log_batch", PARENT, tags=[["sweep_state", state]])
        self.outbox.put("set_status", PARENT, status=status)


def _open_tracking(session: SweepSession) -> _Tracking:
    """The parent run (created once, reopened on --resume), the outbox sending to it, the callback."""
    spec = session.spec
    created = _parent_run(session)
    outbox = Outbox(session.sweep_dir, session.tracking_uri, session.experiment_id)
    outbox.set_run(PARENT, session.parent_id)
    # MlflowTrials reads what is logged and queued before the sender starts moving calls.
    mlflow = MlflowTrials(outbox, session.parent_id, session.base_tree, spec.metric)
    outbox.start()
    if created:
        _log_parent_inputs(outbox, spec, session.base_tree)
    else:
        outbox.put("set_status", PARENT, status="RUNNING")
    others = tuple(o.name for o in spec.objectives[1:])
    progress = ProgressLines(spec.metric, spec.max_epochs, spec.mode, others=others)
    return _Tracking(outbox, mlflow, TrialEvents(mlflow, progress, session.sweep_dir))


def _print_start(session: SweepSession, log_file: Path | None) -> None:
    print(
        f"sweep {session.spec.name}: {session.sweep_dir}\nMLflow: {redact(session.tracking_uri)} "
        f"(experiment {session.spec.name}, parent run {session.parent_id})"
    )
    if session.separate_storage:
        print(f"Tune state and checkpoints: {session.tune_storage.shown()}")
    if log_file is not None:
        print(f"Ray, Optuna and MLflow logs: {log_file} (--verbose shows them here)")


def _interrupted(session: SweepSession, tracked: _Tracking | None, interrupts: Interrupts) -> int:
    """Leave an interrupted sweep resumable: no answer files, open runs KILLED, no RUNNING study
    trial, the --resume command printed; a second signal quits with what is queued on disk."""
    spec, sweep_dir = session.spec, session.sweep_dir
    try:
        for name in ANSWER_FILES:  # an interrupted sweep has no answer yet
            (sweep_dir / name).unlink(missing_ok=True)
        if tracked is not None:
            tracked.end_runs("KILLED", TrialState.INTERRUPTED)
        fail_running_trials(spec, sweep_dir)
        print(f"sweep {spec.name} interrupted; continue it with:\n  {resume_command(spec, sweep_dir)}", flush=True)
        return _flush(session, tracked.outbox, interrupts.exit_code) if tracked is not None else interrupts.exit_code
    except KeyboardInterrupt:  # a second signal while cleaning up: what is queued stays on disk
        print(f"\nstopped; continue with:\n  {resume_command(spec, sweep_dir)}", flush=True)
        return interrupts.exit_code


def _fit(
    session: SweepSession, callbacks: list[Any], options: RunOptions, interrupts: Interrupts
) -> tuple[SweepReport, confirm.Confirmation | None]:
    """Search, then (if on, and not interrupted) confirmation, in one Ray session."""
    import ray

    from sweeps.tuner import can_resume, new_tuner, restored_tuner

    spec, storage = session.spec, session.tune_storage
    try:
        _start_ray(options.address, options.num_cpus, storage, spec.num_samples)
        interrupts.install()
        make = restored_tuner if options.resume and can_resume(storage) else new_tuner
        results = _run_stage(session, "search", make(session, callbacks), interrupts)
        report = build_report(spec, results, read_state(session.sweep_dir))
        if spec.confirm is None or report.baseline is None or interrupts.signal is not None:
            return report, None
        runner = confirm.Runner(
            fit=lambda t: _run_stage(session, "confirm", t, interrupts),
            stopped=lambda: interrupts.signal is not None,
            resume=options.resume,
        )
        confirmation = confirm.run_stage(session, report, callbacks, runner)
        confirmation.wall_s = read_state(session.sweep_dir).wall_s("confirm")  # over every leg
        return report, confirmation
    finally:
        interrupts.tune_running = False
        ray.shutdown()


def _run_stage(session: SweepSession, stage: str, tuner: Any, interrupts: Interrupts) -> Any:
    """Run a stage's Tuner to its end (or an interrupt), recorded as a span of this leg."""
    begin_span(session.sweep_dir, session.leg, stage)
    interrupts.tune_running = True
    try:
        return tuner.fit()
    finally:
        interrupts.tune_running = False
        end_span(session.sweep_dir)


def resume_command(spec: SweepSpec, sweep_dir: Path, flag: str = "--resume") -> str:
    overrides = {**spec.overrides, **spec.spec_overrides}
    args = [str(Path(spec.source_path).resolve())]
    for k, v in overrides.items():
        args += [k, param_str(v)]
    args += [flag, "--sweep-dir", str(sweep_dir)]
    return shlex.join([Path(sys.executable).name, str(Path(__file__).resolve().parent / "run.py"), *args])


def _flush(session: SweepSession, outbox: Outbox, code: int) -> int:
    """Send what is queued (bounded wait); if the server is still down, say how to send it later."""
    left = outbox.flush(FLUSH_AT_END_S)
    if outbox.longest_wait_s and not left:
        print(
            f"MLflow: the tracking server was unreachable for up to {outbox.longest_wait_s:.0f} s; all calls sent since"
        )
    if outbox.dropped:
        print(f"MLflow refused {outbox.dropped} calls (listed in {outbox.dir / REFUSED_LOG})")
    if left:
        print(
            f"MLflow: {left} calls could not be sent yet (tracking server unreachable); they are kept in "
            f"{outbox.dir}; send them with: {resume_command(session.spec, session.sweep_dir, '--sync')}",
            flush=True,
        )
    return code


def sync(spec: SweepSpec, sweep_dir: Path, timeout_s: float = 120.0) -> int:
    """`--sync`: send the calls an earlier run could not; 0 when none are left."""
    state = read_state(sweep_dir)
    if not state.experiment_id:
        print(f"MLflow: nothing to send; sweep {spec.name} stopped before it was tracked")
        return 0
    outbox = Outbox(sweep_dir, state.tracking_uri, state.experiment_id)
    total = len(outbox.pending())
    outbox.start()
    left = outbox.flush(timeout_s)
    print(f"MLflow: sent {total - left} of {total} queued calls to {redact(state.tracking_uri)}")
    if left:
        print(f"{left} calls left; the tracking server did not answer. Try again when it is up.")
    return 0 if left == 0 else 1
