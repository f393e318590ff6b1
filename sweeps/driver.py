"""The sweep driver: preflight checks, MLflow parent run, Ray lifecycle, fit, report.

`preflight` does every check that needs no compute (config of the base and of the
search-space corners, dataset, VGG weights, tracking store). `run_sweep` owns the
side effects in order: sweep directory, generated data, the MLflow parent run, a
local Ray instance (or a connection to a cluster), the Tuner, the end-of-sweep
report. Ray started here is shut down here; nothing is left running.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient

from sweeps.callback import MlflowTrialLogger
from sweeps.progress import ProgressLines
from sweeps.report import SweepReport, build_report, print_report, write_report
from sweeps.spec import SweepSpec
from sweeps.tracking import (
    STATE_TAG,
    check_tracking,
    code_version,
    ensure_experiment,
    log_params,
    set_tags,
    terminate_open_runs,
    tracking_uri,
)
from vunet_core import config_from_tree, render_config

SWEEP_STATE = "sweep.json"
PATH_KEYS = ("data/root", "data/cache_dir", "losses/perceptual/vgg_weights")
log = logging.getLogger(__name__)


def absolute_paths(tree: dict[str, Any], cwd: Path) -> dict[str, Any]:
    """Make file settings absolute: Ray runs trials in other working directories."""
    from vunet_core.paths import get_path, set_path

    out = tree
    for path in PATH_KEYS:
        try:
            value = get_path(out, path)
        except KeyError:
            continue
        if isinstance(value, str) and value and not Path(value).is_absolute():
            out = set_path(out, path, str((cwd / value).resolve()))
    return out


def preflight(spec: SweepSpec) -> tuple[dict[str, Any], str]:
    """Resolve the base tree and check inputs and tracking; raises user errors."""
    from vunet_core.training import check_inputs

    base_tree = absolute_paths(spec.base_tree(), Path.cwd())
    cfg = config_from_tree(base_tree)
    check_inputs(cfg)
    uri = tracking_uri()
    check_tracking(uri)
    return base_tree, uri


def _start_ray(address: str | None, num_cpus: int | None) -> None:
    import ray

    # Tiny trials checkpoint every few seconds; Tune's "snapshotting too often" warning is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)


def _parent_run(
    client: MlflowClient, spec: SweepSpec, sweep_dir: Path, base_tree: dict[str, Any], resume: bool
) -> tuple[str, str]:
    """(experiment id, parent run id): created on a fresh sweep, reopened on --resume."""
    state_file = sweep_dir / SWEEP_STATE
    if resume and state_file.is_file():
        state = json.loads(state_file.read_text())
        client.update_run(state["parent_run_id"], status="RUNNING")
        return state["experiment_id"], state["parent_run_id"]
    experiment_id = ensure_experiment(client, spec.name)
    tags = {
        "sweep_dir": str(sweep_dir),
        "metric": spec.metric,
        "mode": spec.mode,
        "mlflow.source.git.commit": code_version(Path(__file__).parent),
    }
    run = client.create_run(
        experiment_id, tags={"sweep": spec.name, "role": "sweep", **tags}, run_name=f"sweep {spec.name}"
    )
    run_id = str(run.info.run_id)
    log_params(
        client,
        run_id,
        {
            "num_samples": spec.num_samples,
            "max_epochs": spec.max_epochs,
            "scheduler": spec.scheduler.type,
            "searched": ",".join(spec.parameters),
        },
    )
    client.log_text(run_id, spec.source_text, "search_space.yaml")
    client.log_text(run_id, render_config(config_from_tree(base_tree)), "base_config.yaml")
    state_file.write_text(
        json.dumps({"experiment_id": experiment_id, "parent_run_id": run_id, "tracking_uri": client.tracking_uri})
    )
    return experiment_id, run_id


def run_sweep(
    spec: SweepSpec,
    base_tree: dict[str, Any],
    uri: str,
    sweep_dir: Path,
    *,
    resume: bool,
    address: str | None,
    num_cpus: int | None,
) -> int:
    """Run the sweep to its end (or to Ctrl-C) and report; returns the exit code."""
    import ray

    from sweeps.tuner import new_tuner, restored_tuner
    from vunet_core.data import prepare_data

    sweep_dir.mkdir(parents=True, exist_ok=True)
    prepare_data(config_from_tree(base_tree), progress=True)  # generate the default dataset once, here
    client = MlflowClient(uri)
    experiment_id, parent_id = _parent_run(client, spec, sweep_dir, base_tree, resume)
    logger = MlflowTrialLogger(uri, experiment_id, parent_id, base_tree, spec.max_epochs)
    callbacks = [logger, ProgressLines(spec.metric, spec.max_epochs)]
    print(f"sweep {spec.name}: {sweep_dir}\nMLflow: {uri} (experiment {spec.name}, parent run {parent_id})", flush=True)
    start = time.time()
    _start_ray(address, num_cpus)
    try:
        make = restored_tuner if resume else new_tuner
        results = make(spec, sweep_dir, base_tree, callbacks).fit()
    except BaseException:
        # Never leave runs open: the parent and any trial still running end as FAILED.
        terminate_open_runs(client, [*logger.runs.values(), parent_id], "FAILED", {"sweep_state": "failed"})
        raise
    finally:
        ray.shutdown()
    report = build_report(spec, results, time.time() - start)
    if report.num_done < spec.num_samples and not report.budget_exhausted:
        _close_interrupted(client, spec, report, logger.runs.values(), parent_id, sweep_dir)
        return 130
    _close_finished(client, spec, report, logger.runs, uri, experiment_id, parent_id, base_tree, sweep_dir)
    return 0


def _close_interrupted(
    client: MlflowClient, spec: SweepSpec, report: SweepReport, runs: Any, parent_id: str, sweep_dir: Path
) -> None:
    """Ctrl-C: end open runs as KILLED (a --resume reopens them) and say how to continue."""
    terminate_open_runs(client, runs, "KILLED", {STATE_TAG: "interrupted"})
    set_tags(client, parent_id, {"sweep_state": "interrupted"})
    client.set_terminated(parent_id, status="KILLED")
    overrides = {**spec.overrides, **spec.spec_overrides}
    again = "".join(f" {k} {v}" for k, v in overrides.items())
    print(f"sweep interrupted after {report.num_done}/{spec.num_samples} trials; continue with:")
    print(f"  python sweeps/run.py {spec.source_path}{again} --resume --out-dir {sweep_dir.parent}")


def _close_finished(
    client: MlflowClient,
    spec: SweepSpec,
    report: SweepReport,
    runs: dict[str, str],
    uri: str,
    experiment_id: str,
    parent_id: str,
    base_tree: dict[str, Any],
    sweep_dir: Path,
) -> None:
    """Write and log the report (table, best config, plots) and finish the parent run."""
    record = _best_record(spec, report, runs, uri, experiment_id, parent_id)
    for f in write_report(report, sweep_dir, base_tree, record):
        client.log_artifact(parent_id, str(f))
    if report.best is not None:
        set_tags(client, parent_id, {"best_trial_id": report.best.trial_id, "best_run_id": record["run_id"]})
        client.log_metric(parent_id, f"best/{spec.metric}", report.best.metric)
    set_tags(client, parent_id, {"sweep_state": "finished"})
    client.set_terminated(parent_id, status="FINISHED")
    print_report(report, sweep_dir)


def _best_record(
    spec: SweepSpec, report: SweepReport, runs: dict[str, str], uri: str, experiment_id: str, parent_id: str
) -> dict[str, Any]:
    """What best_trial.json says: where the best config came from."""
    best = report.best
    return {
        "sweep": spec.name,
        "tracking_uri": uri,
        "experiment_id": experiment_id,
        "parent_run_id": parent_id,
        "trial_id": best.trial_id if best else "",
        "run_id": runs.get(best.trial_id, "") if best else "",
        "metric": spec.metric,
        "value": best.metric if best else None,
    }
