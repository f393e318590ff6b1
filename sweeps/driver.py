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
import time
from pathlib import Path
from typing import Any

from sweeps import confirm, console
from sweeps.answer import close_finished
from sweeps.interrupt import Interrupts
from sweeps.mlflow_trials import MlflowTrials
from sweeps.outbox import Outbox
from sweeps.progress import ProgressLines
from sweeps.report import SweepReport, build_report
from sweeps.session import PARENT, SweepSession
from sweeps.spec import SweepSpec
from sweeps.storage import AWS_VARIABLES, Storage, check_storage, slim_checkpoints
from sweeps.sweep_dir import read_state, write_state
from sweeps.tracking import check_tracking, code_version, ensure_experiment, open_store, param_str, redact
from sweeps.trial_events import TrialEvents
from vunet_core import config_from_tree, render_config

PATH_KEYS = ("data/root", "data/cache_dir", "losses/perceptual/vgg_weights")
FLUSH_AT_END_S = 30.0
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


def _start_ray(address: str | None, num_cpus: int | None, storage: Storage) -> None:
    import ray

    # The classic reporter honours our columns; Tune's newer output also breaks on a restored second stage.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    # Tiny trials checkpoint every few seconds; Tune's "snapshotting too often" warning is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's experiment state (what --resume restores after a crash) at most 1 s old, so it never
    # names a checkpoint older than the two each trial keeps (epochs take seconds or more).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    to_driver = console.verbose()  # trial workers' output on the terminal only with --verbose
    if address:
        # Trials on other nodes write checkpoints to the storage with the driver's AWS settings.
        aws = {k: v for k in AWS_VARIABLES if storage.remote and (v := os.environ.get(k))}
        runtime_env = {"env_vars": aws} if aws else None
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
    if "parent_run_id" in state:
        session.experiment_id, session.parent_id = str(state["experiment_id"]), str(state["parent_run_id"])
        return False
    client = open_store(session.uri)
    experiment_id = ensure_experiment(client, spec.name)
    tags = {
        "sweep": spec.name,
        "role": "sweep",
        "sweep_dir": str(sweep_dir),
        "storage": session.storage.shown(),
        "metric": spec.metric,
        "mode": spec.mode,
        "mlflow.source.git.commit": code_version(Path(__file__).parent),
    }
    # No signal between creating the run and recording it (else a resume would create a second one).
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        run_id = str(client.create_run(experiment_id, tags=tags, run_name=f"sweep {spec.name}").info.run_id)
        write_state(sweep_dir, {**state, "experiment_id": experiment_id, "parent_run_id": run_id})
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


def run_sweep(
    spec: SweepSpec,
    base_tree: dict[str, Any],
    uri: str,
    sweep_dir: Path,
    storage: Storage,
    *,
    resume: bool,
    address: str | None,
    num_cpus: int | None,
    verbose: bool = False,
) -> int:
    """Run the sweep to its end (or to SIGINT/SIGTERM) and report; returns the exit code."""
    from sweeps.searcher import fail_running_trials
    from vunet_core import prepare_data

    log_file = console.configure(sweep_dir, verbose)
    session = SweepSession(spec, base_tree, uri, sweep_dir, storage)
    outbox: Outbox | None = None
    mlflow: MlflowTrials | None = None
    with Interrupts() as interrupts:
        try:
            prepare_data(config_from_tree(base_tree), progress=True)  # generate the default dataset once, here
            created = _parent_run(session)
            outbox = Outbox(sweep_dir, uri, session.experiment_id)
            outbox.set_run(PARENT, session.parent_id)
            # MlflowTrials reads what is logged and queued before the sender starts moving calls.
            mlflow = MlflowTrials(outbox, session.parent_id, base_tree, spec.metric)
            outbox.start()
            if created:
                _log_parent_inputs(outbox, spec, base_tree)
            else:
                outbox.put("set_status", PARENT, status="RUNNING")
            events = TrialEvents(mlflow, ProgressLines(spec.metric, spec.max_epochs, spec.mode), sweep_dir)
            print(
                f"sweep {spec.name}: {sweep_dir}\nMLflow: {redact(uri)} "
                f"(experiment {spec.name}, parent run {session.parent_id})"
            )
            if session.separate_storage:
                print(f"Tune state and checkpoints: {storage.shown()}")
            if log_file is not None:
                print(f"Ray, Optuna and MLflow logs: {log_file} (--verbose shows them here)")
            if resume:  # trials a killed driver left RUNNING in the study cannot be continued
                fail_running_trials(spec, sweep_dir)
            report, confirmation = _fit(session, [events], address, num_cpus, interrupts, resume)
            # Tune returns on its own only when a stage is done (all trials, or the search's time
            # budget, which Tune carries over a resume); with a signal it returns early.
            if interrupts.signal is None:
                close_finished(session, outbox, report, confirmation)
                return _flush(session, outbox, 0)
        except KeyboardInterrupt:
            interrupts.signal = interrupts.signal or signal.SIGINT
        except BaseException:
            # Never leave runs open: the parent and any trial still running end as FAILED.
            if outbox is not None:
                _end_runs(outbox, mlflow, "FAILED", "failed")
                outbox.flush(FLUSH_AT_END_S)
            raise
        try:
            for name in ("best_config.yaml", "best_trial.json"):  # an interrupted sweep has no answer yet
                (sweep_dir / name).unlink(missing_ok=True)
            if outbox is not None:
                _end_runs(outbox, mlflow, "KILLED", "interrupted")
            fail_running_trials(spec, sweep_dir)
            print(f"sweep {spec.name} interrupted; continue it with:\n  {resume_command(spec, sweep_dir)}", flush=True)
            return _flush(session, outbox, interrupts.exit_code) if outbox is not None else interrupts.exit_code
        except KeyboardInterrupt:  # a second signal while cleaning up: what is queued stays on disk
            print(f"\nstopped; continue with:\n  {resume_command(spec, sweep_dir)}", flush=True)
            return interrupts.exit_code


def _end_runs(outbox: Outbox, mlflow: MlflowTrials | None, status: str, state: str) -> None:
    """End the parent and every trial run still open (they are reopened by --resume)."""
    if mlflow is not None:
        mlflow.end_active(status, state)
    outbox.put("log_batch", PARENT, tags=[["sweep_state", state]])
    outbox.put("set_status", PARENT, status=status)


def _fit(
    session: SweepSession,
    callbacks: list[Any],
    address: str | None,
    num_cpus: int | None,
    interrupts: Interrupts,
    resume: bool,
) -> tuple[SweepReport, confirm.Confirmation | None]:
    """Search, then (if on, and not interrupted) confirmation, in one Ray session."""
    import ray

    from sweeps.tuner import (
        CONFIRM_DIR_NAME,
        TUNE_DIR_NAME,
        can_resume,
        new_confirm_tuner,
        new_tuner,
        restored_tuner,
    )

    spec, storage = session.spec, session.storage
    start = time.time()
    try:
        _start_ray(address, num_cpus, storage)
        interrupts.install()
        make = restored_tuner if resume and can_resume(storage) else new_tuner
        results = _run_stage(make(session, callbacks), interrupts)
        report = build_report(spec, results, time.time() - start)
        if spec.confirm is None or report.baseline is None or interrupts.signal is not None:
            return report, None
        candidates = confirm.pick_candidates(report, spec.confirm.top_k)
        # The confirmation needs no search checkpoint; those that may win stay whole.
        keep = {report.baseline.trial_id, *(c.row.trial_id for c in candidates)}
        slim_checkpoints(storage.child(TUNE_DIR_NAME), keep)
        print(
            f"confirmation: {', '.join(c.label for c in candidates)} x seeds "
            f"{', '.join(map(str, spec.confirm.seeds))}, {spec.max_epochs} epochs each",
            flush=True,
        )
        start = time.time()
        if resume and can_resume(storage, CONFIRM_DIR_NAME):
            tuner = restored_tuner(session, callbacks, CONFIRM_DIR_NAME)
        else:
            tuner = new_confirm_tuner(session, callbacks, confirm.trial_configs(candidates, spec.confirm.seeds))
        results = _run_stage(tuner, interrupts)
        return report, confirm.collect(spec, candidates, results, time.time() - start)
    finally:
        interrupts.tune_running = False
        ray.shutdown()


def _run_stage(tuner: Any, interrupts: Interrupts) -> Any:
    interrupts.tune_running = True
    try:
        return tuner.fit()
    finally:
        interrupts.tune_running = False


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
        print(f"MLflow refused {outbox.dropped} calls (see the log above)")
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
    if "experiment_id" not in state:
        print(f"MLflow: nothing to send; sweep {spec.name} stopped before it was tracked")
        return 0
    outbox = Outbox(sweep_dir, str(state["tracking_uri"]), str(state["experiment_id"]))
    total = len(outbox.pending())
    outbox.start()
    left = outbox.flush(timeout_s)
    print(f"MLflow: sent {total - left} of {total} queued calls to {redact(str(state['tracking_uri']))}")
    if left:
        print(f"{left} calls left; the tracking server did not answer. Try again when it is up.")
    return 0 if left == 0 else 1
