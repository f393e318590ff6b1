"""A durable, ordered queue of MLflow calls: tracking never blocks the sweep and loses nothing.

The driver's Tune callbacks only *enqueue*: each call becomes a numbered JSON file in
`<sweep dir>/mlflow_outbox/` (files it refers to are copied beside it, since Tune
deletes old checkpoints), and a sender process (`python -m sweeps.outbox`, started by the
driver) sends the calls in order. A process, not a thread: MLflow's work per call (SQL, image
encoding, uploads) then never holds the GIL that Tune's event loop needs. When the
tracking server is down the sender keeps retrying the oldest call while training goes
on; whatever is still queued at the end stays on disk and is sent by `--resume` or
`--sync`. Runs are named by a key (the Ray trial id, or "parent") and resolved to
MLflow run ids as they are created, so a run can be created while the server is down.
A call the server handled just before it went down is sent again, so every call is
idempotent: creating a child run first looks for one with the same trial id, an image
step already logged is skipped, and metrics, params, tags and artifact paths repeat
harmlessly (the store keeps one copy of an identical metric point).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from sweeps.tracking import PARENT_TAG

OUTBOX_DIR = "mlflow_outbox"
RUNS_FILE = "runs.json"
REFUSED_LOG = "refused.log"
SENDER_LOCK = "sender.lock"  # held by the one sender process of an outbox
SENDER_STATS = "sender.json"  # what the sender did, written when it stops
URI_ENV = "VUNET_SWEEPS_OUTBOX_URI"  # the tracking URI, passed to the sender (it may hold a password)
IDLE_POLL_S = 0.25  # how often an idle sender looks for new calls
MAX_ATTEMPTS = 5  # for failures that are not the server being unreachable
# The server answered and refused the call: retrying cannot help, the call is dropped (and counted).
PERMANENT = {"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST"}
log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, sweep_dir: Path, tracking_uri: str, experiment_id: str) -> None:
        self.dir = sweep_dir / OUTBOX_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id
        self._runs: dict[str, str] = _read_json(self.dir / RUNS_FILE)
        self._runs_mtime = 0
        self.dropped = 0
        self.longest_wait_s = 0.0
        self.sent, self.send_cpu_s = 0, 0.0  # calls sent and the sender's CPU time for them
        # Numbers continue after every entry, including file folders a crash left behind.
        numbers = [int(p.name[:8]) for p in self.dir.iterdir() if p.name[:8].isdigit()]
        self._seq = max(numbers, default=0)
        self._attempts: dict[str, int] = {}
        self._artifact_dirs: dict[str, Path | None] = {}  # run id -> local artifact folder
        # Calls that may have been carried out already: one that failed here, and the oldest left
        # by an earlier driver (the one it was sending when it stopped). Only these are checked
        # against the store before they are sent (the check lists every image of the run).
        self._again: set[str] = {p.name for p in self.pending()[:1]}
        self._sending_again = False
        self._backoff = 0.5  # the sender's wait before it retries, and since when calls fail
        self._failing_since: float | None = None
        self._lock = threading.Lock()  # put() may be called from more than one driver thread
        self._stop = False
        self._parent = 0  # in the sender: the driver's pid (the sender stops when it is gone)
        self._proc: subprocess.Popen[bytes] | None = None  # in the driver: the sender

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment (the copy is never used: a resumed sweep
        attaches new ones); the sender process handle, locks and any password in the URI stay behind."""
        from sweeps.tracking import redact

        state = {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_proc", "client")}
        return {**state, "tracking_uri": redact(self.tracking_uri)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._proc = None
        self.client = MlflowClient(state["tracking_uri"])

    # ------------------------------------------------------------------ enqueue (driver thread)

    def put(self, op: str, key: str, files: Mapping[str, Path] | None = None, move: bool = False, **args: Any) -> None:
        """Queue one call; `files` are copied now (name -> source file or directory), or with
        `move` the directories are moved (a rename on the same filesystem: the driver's trial
        events hand over eval outputs of ~1000 files that nobody needs where they are)."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        copied: dict[str, str] = {}
        for name, src in (files or {}).items():
            dst = self.dir / f"{seq:08d}.files" / name
            if src.is_dir() and move:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(src, dst)
            elif src.is_dir():
                shutil.copytree(src, dst)
            elif src.is_file():
                dst = dst / src.name  # log_artifact keeps the file's name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
            else:
                continue
            copied[name] = str(dst)
        tmp = self.dir / f".{seq:08d}.tmp"
        tmp.write_text(json.dumps({"op": op, "key": key, "files": copied, "args": args}))
        os.replace(tmp, self.dir / f"{seq:08d}.json")

    @property
    def runs(self) -> dict[str, str]:
        """Run key -> MLflow run id: as the sender process last wrote them while it runs."""
        if self._proc is not None:
            self._read_runs()
        return self._runs

    def _read_runs(self) -> None:
        try:
            mtime = (self.dir / RUNS_FILE).stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._runs_mtime:
            self._runs, self._runs_mtime = _read_json(self.dir / RUNS_FILE), mtime

    def set_run(self, key: str, run_id: str) -> None:
        """Record a run id (the driver: before it starts the sender; then only the sender)."""
        with self._lock:
            self._runs[key] = run_id
            _write_json(self.dir / RUNS_FILE, self._runs)

    def wait_for_run(self, key: str, timeout_s: float) -> str:
        """The MLflow run id of `key` once its queued creation was sent ("" after `timeout_s`,
        or at once when no sender runs, e.g. while the tracking server is down and nothing moves)."""
        deadline = time.monotonic() + timeout_s
        while key not in self.runs and time.monotonic() < deadline:
            if not self.sending():
                break
            time.sleep(0.05)
        return self.runs.get(key, "")

    def pending(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("*.json") if p.stem.isdigit())

    # ------------------------------------------------------------------ the sender process (driver side)

    def start(self) -> None:
        """Start the sender process. In a process group of its own: Ctrl-C at the terminal goes to
        the driver's group (the driver handles it, then flushes); the sender writes to the terminal."""
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, URI_ENV: self.tracking_uri, "PYTHONPATH": path}
        cmd = [sys.executable, "-m", "sweeps.outbox", str(self.dir.parent), self.experiment_id, str(os.getpid())]
        self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, process_group=0)

    def sending(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def sender_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def flush(self, timeout_s: float) -> int:
        """Wait for the queue to drain, giving up after `timeout_s` without progress; stop the
        sender; returns how many calls are left."""
        deadline = time.monotonic() + timeout_s
        left = len(self.pending())
        while left and time.monotonic() < deadline and self.sending():
            time.sleep(0.1)
            now_left = len(self.pending())
            if now_left < left:
                deadline = time.monotonic() + timeout_s
            left = now_left
        self._stop_sender()
        return len(self.pending())

    def _stop_sender(self) -> None:
        """SIGTERM: the sender finishes the call it is sending and exits; then read what it did."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._read_runs()
        self._proc = None
        stats = self.dir / SENDER_STATS
        if stats.is_file():
            done = json.loads(stats.read_text())
            self.sent, self.send_cpu_s = self.sent + int(done["sent"]), self.send_cpu_s + float(done["send_cpu_s"])
            self.dropped += int(done["dropped"])
            self.longest_wait_s = max(self.longest_wait_s, float(done["longest_wait_s"]))
            stats.unlink()

    # ------------------------------------------------------------------ sending (in the sender process)

    def request_stop(self) -> None:
        """Stop after the call being sent (safe in a signal handler: a flag, no lock)."""
        self._stop = True

    def send_until_stopped(self, driver_pid: int) -> None:
        """Send calls as they come until stopped or the driver is gone; then leave what was done
        in SENDER_STATS for the driver."""
        self._parent = driver_pid
        self._loop()
        stats = {"sent": self.sent, "send_cpu_s": self.send_cpu_s, "dropped": self.dropped}
        tmp = self.dir / f".{SENDER_STATS}.tmp"
        tmp.write_text(json.dumps({**stats, "longest_wait_s": self.longest_wait_s}))
        os.replace(tmp, self.dir / SENDER_STATS)

    def _loop(self) -> None:
        while not (self._stop or self._orphaned()):
            queue = self.pending()  # listed once per batch: calls queued meanwhile come after it
            if not queue:
                time.sleep(IDLE_POLL_S)
            for path in queue:
                if self._stop or self._orphaned() or not self._try(path):
                    break

    def _orphaned(self) -> bool:
        """The driver is gone (killed): stop; what is queued stays for --resume or --sync."""
        return bool(self._parent) and os.getppid() != self._parent

    def _try(self, path: Path) -> bool:
        """Send one call; False when it must be retried (after a back-off wait)."""
        began = time.thread_time()
        try:
            self.send(path)
            self.sent += 1
        except Exception as exc:  # noqa: BLE001 - the server is down or flaky: retry later
            self._again.add(path.name)
            if not _is_network_error(exc):
                # Not the server being away: a call that keeps failing would block the queue forever.
                self._attempts[path.name] = self._attempts.get(path.name, 0) + 1
                if self._attempts[path.name] >= MAX_ATTEMPTS:
                    self._refuse(path, exc)
                    return True
            self._failing_since = self._failing_since or time.monotonic()
            log.debug("MLflow call %s failed (%s); retrying", path.name, exc)
            if not self._stop:
                time.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, 5.0)
            return False
        finally:
            self.send_cpu_s += time.thread_time() - began
        if self._failing_since is not None:
            self.longest_wait_s = max(self.longest_wait_s, time.monotonic() - self._failing_since)
        self._failing_since, self._backoff = None, 0.5
        return True

    def send(self, path: Path) -> None:
        """Perform one queued call, then remove it (and its files)."""
        item = json.loads(path.read_text())
        self._sending_again = path.name in self._again
        try:
            self._perform(item["op"], item["key"], item["args"], item["files"])
        except MlflowException as exc:
            if exc.error_code not in PERMANENT:
                raise
            self._refuse(path, exc)
            return
        self._remove(path)
        self._again.discard(path.name)

    def _refuse(self, path: Path, exc: Exception) -> None:
        """Drop a call the store keeps refusing; it is listed in `refused.log`."""
        self.dropped += 1
        log.warning("MLflow refused %s: %s", path.name, exc)
        with open(self.dir / REFUSED_LOG, "a") as fh:
            fh.write(f"{path.name} {path.read_text()[:300]}: {exc}\n")
        self._remove(path)

    def _remove(self, path: Path) -> None:
        shutil.rmtree(path.with_suffix(".files"), ignore_errors=True)
        path.unlink()

    def _run_id(self, key: str) -> str:
        if key not in self.runs:
            raise RuntimeError(f"run {key} not created yet")
        return self.runs[key]

    def _perform(self, op: str, key: str, args: dict[str, Any], files: dict[str, str]) -> None:
        if op == "create_run":
            if key not in self.runs:
                self.set_run(key, self._create_run(key, args))
            return
        if op in ("log_image", "log_artifact", "log_artifacts") and not files:
            return  # the file was gone when the call was queued
        calls = {
            "log_batch": self._log_batch,
            "log_image": self._log_image,
            "log_artifact": lambda run_id, a, f: self.client.log_artifact(run_id, f["file"], a.get("artifact_path")),
            "log_artifacts": self._log_artifacts,
            "log_text": lambda run_id, a, f: self.client.log_text(run_id, a["text"], a["artifact_file"]),
            "set_status": self._set_status,
        }
        if op not in calls:
            raise ValueError(f"unknown outbox call {op}")
        calls[op](self._run_id(key), args, files)

    def _create_run(self, key: str, args: dict[str, Any]) -> str:
        """The run tagged with this key (created by a call the server handled before it went
        down), else a new one."""
        match = f"tags.`{args['match_tag']}` = '{key}'"
        if parent := args["tags"].get(PARENT_TAG):
            match += f" and tags.`{PARENT_TAG}` = '{parent}'"
        existing = self.client.search_runs([self.experiment_id], filter_string=match, max_results=1)
        if existing:
            return str(existing[0].info.run_id)
        return str(self.client.create_run(self.experiment_id, tags=args["tags"], run_name=args["run_name"]).info.run_id)

    def _log_batch(self, run_id: str, args: dict[str, Any], files: dict[str, str]) -> None:
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, ts, step) for k, v, ts, step in args.get("metrics", [])],
            params=[Param(k, v) for k, v in args.get("params", [])],
            tags=[RunTag(k, v) for k, v in args.get("tags", [])],
        )

    def _log_artifacts(self, run_id: str, args: dict[str, Any], files: dict[str, str]) -> None:
        """A folder of artifacts. On a local artifact store it is moved into place (one rename:
        the folder is the outbox's own copy, and an epoch's eval outputs are ~1000 files that
        `log_artifacts` would copy one by one and the outbox would then delete); elsewhere, or
        across filesystems, it is uploaded."""
        src, artifact_path = Path(files["dir"]), args.get("artifact_path")
        local = self._local_artifacts(run_id)
        if local is None or not artifact_path:
            self.client.log_artifacts(run_id, str(src), artifact_path)
            return
        dst = local / artifact_path
        if not src.is_dir():
            return  # moved by a send that was interrupted before the call was removed
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dst, ignore_errors=True)  # a call sent again replaces what it moved before
        try:
            os.rename(src, dst)
        except OSError:  # another filesystem (EXDEV) or a store that refuses renames: copy
            self.client.log_artifacts(run_id, str(src), artifact_path)

    def _local_artifacts(self, run_id: str) -> Path | None:
        """The run's artifact folder when the artifact store is a local path, else None."""
        if run_id not in self._artifact_dirs:
            from urllib.parse import urlparse

            from mlflow.utils.file_utils import local_file_uri_to_path

            uri = self.client.get_run(run_id).info.artifact_uri
            local = urlparse(uri).scheme in ("", "file")
            self._artifact_dirs[run_id] = Path(local_file_uri_to_path(uri)) if local else None
        return self._artifact_dirs[run_id]

    def _log_image(self, run_id: str, args: dict[str, Any], files: dict[str, str]) -> None:
        from PIL import Image

        # A call the server handled just before it went down is sent again: skip a step already there.
        prefix = f"images/{args['image_key']}+step+{args['step']}+"
        if self._sending_again and any(a.path.startswith(prefix) for a in self.client.list_artifacts(run_id, "images")):
            return
        with Image.open(files["image"]) as img:
            self.client.log_image(run_id, img.convert("RGB"), key=args["image_key"], step=args["step"])

    def _set_status(self, run_id: str, args: dict[str, Any], files: dict[str, str]) -> None:
        if args["status"] == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status=args["status"])


def _is_network_error(exc: Exception) -> bool:
    """The tracking server is away or overloaded (retry), as opposed to refusing the call."""
    import requests

    if isinstance(exc, (requests.RequestException, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, MlflowException):
        text = str(exc)
        return exc.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE") or "Max retries" in text
    return False


def _read_json(path: Path) -> dict[str, str]:
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def _write_json(path: Path, data: Mapping[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(data)))
    os.replace(tmp, path)


def serve(sweep_dir: Path, experiment_id: str, driver_pid: int) -> None:
    """The sender process of a sweep's outbox. One at a time per outbox (a sender left behind by
    a killed driver finishes its call and exits before a new one starts); it stops on SIGTERM
    (after the call it is sending: the driver's `flush`) or once the driver is gone."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle (see Outbox.start)
    folder = sweep_dir / OUTBOX_DIR
    folder.mkdir(parents=True, exist_ok=True)
    # Until the loop runs, SIGTERM ends the process at once: nothing is being sent yet.
    with FileLock(str(folder / SENDER_LOCK)):
        box = Outbox(sweep_dir, os.environ[URI_ENV], experiment_id)
        signal.signal(signal.SIGTERM, lambda *_: box.request_stop())
        box.send_until_stopped(driver_pid)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
