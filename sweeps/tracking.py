"""MLflow tracking: the store, the sweep's experiment and parent run, one child run per trial.

Everything is logged from the driver: :class:`~sweeps.mlflow_trials.MlflowTrials`, called by the
sweep's Tune callback (:mod:`sweeps.trial_events`), turns what trials report and checkpoint into
MLflow runs, so trials
on other machines need no MLflow access and a trial killed by the scheduler loses
nothing (its last report and checkpoint already reached the driver). The calls go
through the sweep's outbox (`sweeps/outbox.py`), which maps each trial to its run
(`runs.json`), so a resumed sweep continues the same runs instead of duplicating them.
This module holds the store helpers: URI, health check, redaction, bounded HTTP
calls, the locked local store, experiments, and the direct calls `sweeps/train_best.py` uses.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from sweeps.files import eval_artifact, samples_artifact
from vunet_core import one_line

TRIAL_ID_TAG = "ray_trial_id"
PARENT_TAG = "mlflow.parentRunId"
STATE_TAG = "trial_state"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"  # MLflow's own variable for a server's basic-auth password
METRIC_PREFIXES = ("train/", "val/", "time/", "perf/")
MAX_BATCH = 100
# Bounded calls to a tracking server: MLflow's defaults (120 s timeout, 7 retries with
# exponential backoff) stall a sweep for minutes per call when the server is down.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    # No "View run at <uri>" line per ended run: it is noise here and would print credentials.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says what to fix."""


def tracking_uri(cwd: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI when set, else an SQLite store `mlflow.db` at an absolute path in `cwd`."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{(cwd or Path.cwd()).resolve() / 'mlflow.db'}"


def bound_http_calls() -> None:
    """Short timeouts and few retries for every MLflow HTTP call of this process (user settings win)."""
    for key, value in HTTP_LIMITS.items():
        os.environ.setdefault(key, value)


def redact(uri: str) -> str:
    """The URI with any password replaced by `***` (safe to print and to record)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def with_password(uri: str, password: str) -> str:
    """`uri` (`scheme://user:***@host...`) with `password` in place of `***`."""
    parts = urllib.parse.urlsplit(uri)
    netloc = f"{parts.username}:{urllib.parse.quote(password, safe='')}@{parts.hostname}"
    netloc += f":{parts.port}" if parts.port else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_tracking(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast (before any trial) when an HTTP tracking server does not answer.

    Credentials in the URI (`http://user:password@host`) are sent as basic auth, as
    MLflow's own client does; messages never show the password.
    """
    if not uri.startswith(("http://", "https://")):
        _check_local_store(uri)
        return
    try:
        resp = requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
    except (requests.RequestException, ValueError) as exc:
        reason = type(exc).__name__ if isinstance(exc, requests.RequestException) else exc
        raise TrackingError(
            f"MLflow tracking server {redact(uri)} is unreachable ({reason}); start it or unset MLFLOW_TRACKING_URI"
        ) from None
    if resp.status_code >= 400:
        hint = "; check the user and password" if resp.status_code in (401, 403) else ""
        raise TrackingError(f"MLflow tracking server {redact(uri)} answered {resp.status_code}{hint}")


def _check_local_store(uri: str) -> None:
    """A store MLflow cannot open (a missing directory for the SQLite file, MLflow 3's retired
    file store, an unknown scheme) is one line here, not a traceback once the sweep started."""
    db = sqlite_path(uri)
    if db is not None:
        if not db.parent.is_dir():
            raise TrackingError(f"MLflow store {uri}: directory {db.parent} does not exist; create it or fix the URI")
        return
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except MlflowException as exc:
        first = str(exc.message).strip().split(". ")[0]
        raise TrackingError(
            f"MLflow store {redact(uri)}: {first}; set MLFLOW_TRACKING_URI to e.g. sqlite:///mlflow.db"
        ) from None
    except Exception as exc:  # noqa: BLE001 - e.g. a database driver that is not installed
        raise TrackingError(f"MLflow store {redact(uri)} cannot be opened ({one_line(str(exc))})") from None


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def open_store(uri: str) -> MlflowClient:
    """A client whose store exists: a local SQLite store is created under a file lock, so two
    sweeps started at the same moment do not both run its schema migrations."""
    db = sqlite_path(uri)
    if db is None:
        return MlflowClient(uri)
    with FileLock(str(db) + ".lock"):
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    return client


def code_version(root: Path) -> str:
    """The git commit of the project, or 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path | None = None) -> str:
    """The experiment id for `name`, created once (restored when it was deleted)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return str(exp.experiment_id)
    location = (artifact_root / name).resolve().as_uri() if artifact_root is not None else None
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:  # created by a concurrent sweep between the lookup and here
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    items = [Param(k, param_str(v)) for k, v in params.items()]
    for i in range(0, len(items), MAX_BATCH):
        client.log_batch(run_id, params=items[i : i + MAX_BATCH])


def param_str(value: Any) -> str:
    """Values as they are written on the command line (YAML: null, true, [1.0, 2.0])."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def metric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric, finite metrics with a known prefix."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if k.startswith(METRIC_PREFIXES) and isinstance(v, (int, float)) and math.isfinite(float(v))
    }


def log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, Any], step: int) -> None:
    """Numeric, finite metrics with a known prefix, all at `step`."""
    now = int(time.time() * 1000)
    items = [Metric(k, v, now, step) for k, v in metric_values(metrics).items()]
    for i in range(0, len(items), MAX_BATCH):
        client.log_batch(run_id, metrics=items[i : i + MAX_BATCH])


def set_tags(client: MlflowClient, run_id: str, tags: Mapping[str, Any]) -> None:
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_epoch_outputs(client: MlflowClient, run_id: str, epoch: int, grid: Path, eval_dir: Path | None) -> None:
    """An epoch's sample grid (image series `samples` + artifact) and eval outputs."""
    from PIL import Image

    with Image.open(grid) as img:
        client.log_image(run_id, img.convert("RGB"), key="samples", step=epoch)
    client.log_artifact(run_id, str(grid), artifact_path=samples_artifact(epoch))
    if eval_dir is not None and eval_dir.is_dir():
        client.log_artifacts(run_id, str(eval_dir), artifact_path=eval_artifact(epoch))
