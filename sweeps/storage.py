"""Where a sweep's Tune state, checkpoints and report files live: `--storage URI` / `storage:`.

Without it, everything stays in the local sweep directory (`<sweep dir>/tune`, `/confirm`), as
on one machine. With a local path or shared mount (`/shared/sweeps`) or an object-store URI Ray
accepts (`s3://bucket/prefix`, `gs://...`), each sweep claims `<storage>/<name>[-N]` there:
Tune keeps `tune/` and `confirm/` in it (every node writes its trials' checkpoints there),
and the finished sweep copies its report files into `report/`. What only the driver uses
stays in the local sweep directory: `sweep.json`, the Optuna study `optuna.db` (copied into
`report/` at the end), the MLflow outbox and the contact-sheet cache.

`s3://` takes its endpoint from `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (the AWS
standard variables, which pyarrow itself does not read), or from the URI's query
(`?endpoint_override=host:port&scheme=http`); credentials and region come from the usual AWS
variables or files, on every node. The driver reads a trial's sample grid and eval outputs
through the filesystem (:func:`checkpoint_files`), never by assuming a local path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from sweeps.files import DRIVER_FILES, EPOCH_RECORD, EPOCHS_DIR, MODEL_STATE
from sweeps.sweep_yaml import SpecError
from sweeps.tracking import redact
from vunet_core import ConfigError, drop_optimizer_state, one_line

log = logging.getLogger(__name__)

CLAIM_FILE = "driver.txt"  # marks a storage folder as taken by a sweep
SLIM_MARK = ".weights_only"  # a checkpoint whose optimizer state was dropped
S3_QUERY_KEYS = ("endpoint_override", "scheme", "region", "anonymous", "force_virtual_addressing")
CONNECT_TIMEOUT_S = 5.0
# AWS variables a cluster's nodes need as the driver has them (sent with the Ray job).
AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
)  # fmt: skip


@dataclass(frozen=True)
class Storage:
    """A folder on a filesystem: `uri` as given (printed, recorded), `path` inside `fs`."""

    uri: str
    fs: pafs.FileSystem
    path: str

    @property
    def remote(self) -> bool:
        return not isinstance(self.fs, pafs.LocalFileSystem)

    def child(self, name: str) -> Storage:
        parts = urllib.parse.urlsplit(self.uri)
        if parts.scheme and len(parts.scheme) > 1:  # a URI (keep its query); else a local path
            uri = urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + name))
        else:
            uri = str(Path(self.uri) / name)
        return Storage(uri, self.fs, self.path.rstrip("/") + "/" + name)

    def exists(self, name: str = "") -> bool:
        target = self.path + ("/" + name if name else "")
        return bool(self.fs.get_file_info(target).type != pafs.FileType.NotFound)

    def shown(self) -> str:
        return redact(self.uri)


def local(path: Path) -> Storage:
    return Storage(str(path.resolve()), pafs.LocalFileSystem(), str(path.resolve()))


def open_storage(uri: str) -> Storage:
    """The filesystem of `uri` (nothing is contacted yet); SpecError for a URI no filesystem takes."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.scheme or len(parts.scheme) == 1:  # a path (a one-letter scheme is a drive)
        return local(Path(uri).expanduser())
    if parts.scheme == "file":
        return local(Path(urllib.parse.unquote(parts.path)))
    if parts.scheme == "s3":
        return Storage(uri, _s3(parts), (parts.netloc.rsplit("@", 1)[-1] + parts.path).rstrip("/"))
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (OSError, ValueError, NotImplementedError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise SpecError(f"storage {redact(uri)}: not a location Ray can store to ({one_line(str(exc))})") from None
    return Storage(uri, fs, path.rstrip("/"))


def _s3(parts: urllib.parse.SplitResult) -> pafs.S3FileSystem:
    if not parts.netloc:
        raise SpecError(f"storage {redact(parts.geturl())}: expected s3://BUCKET/PREFIX")
    query = dict(urllib.parse.parse_qsl(parts.query))
    unknown = sorted(set(query) - set(S3_QUERY_KEYS))
    if unknown:
        raise SpecError(
            f"storage {redact(parts.geturl())}: unknown option {unknown[0]!r} (known: {', '.join(S3_QUERY_KEYS)})"
        )
    options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint and "endpoint_override" not in query:
        url = urllib.parse.urlsplit(endpoint)
        options.update(endpoint_override=url.netloc or url.path, scheme=url.scheme or "https")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    for key, value in query.items():
        options[key] = (
            value.lower() in ("1", "true", "yes") if key in ("anonymous", "force_virtual_addressing") else value
        )
    if parts.username:  # s3://KEY:SECRET@bucket/...
        options.update(
            access_key=urllib.parse.unquote(parts.username), secret_key=urllib.parse.unquote(parts.password or "")
        )
    return pafs.S3FileSystem(**options)


def check_storage(storage: Storage) -> None:
    """Fail before any compute when the location cannot be reached or written: a probe file is
    written and removed. One line naming the location and the cause."""
    probe = f"{storage.path}/.vunet-sweeps-probe-{os.getpid()}"
    try:
        if storage.remote and storage.uri.startswith("s3://"):
            bucket = storage.path.split("/", 1)[0]
            if storage.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise SpecError(f"storage {storage.shown()}: bucket {bucket!r} does not exist; create it first")
        storage.fs.create_dir(storage.path, recursive=True)
        with storage.fs.open_output_stream(probe) as out:
            out.write(b"ok")
        storage.fs.delete_file(probe)
    except OSError as exc:
        raise SpecError(f"storage {storage.shown()}: cannot write there ({_cause(exc)})") from None


def _cause(exc: BaseException) -> str:
    text = one_line(str(exc))
    for hint in ("Connection refused", "Couldn't connect", "curlCode: 7", "Resolving timed out"):
        if hint in text:
            return "the endpoint does not answer; check AWS_ENDPOINT_URL_S3 / endpoint_override"
    if "ACCESS_DENIED" in text.upper() or "AccessDenied" in text or "InvalidAccessKeyId" in text:
        return "access denied; check the AWS credentials"
    return text[:300]


def claim(base: Storage, name: str, sweep_dir: Path) -> Storage:
    """This sweep's folder under `base`: `<name>`, else `<name>-2`, ... (one no sweep holds yet),
    marked with a file naming the driver's machine and sweep directory."""
    try:
        n = 1
        while (candidate := base.child(name if n == 1 else f"{name}-{n}")).exists():
            n += 1
        candidate.fs.create_dir(candidate.path, recursive=True)
        with candidate.fs.open_output_stream(f"{candidate.path}/{CLAIM_FILE}") as out:
            out.write(f"{socket.gethostname()}:{sweep_dir}\n".encode())
    except OSError as exc:
        raise SpecError(f"storage {base.shown()}: cannot create the sweep's folder ({_cause(exc)})") from None
    return candidate


def sweep_storage(storage: str, storage_name: str, sweep_dir: Path) -> Storage:
    """The storage a sweep's state file records (the sweep directory itself when none)."""
    if not storage:
        return local(sweep_dir)
    return open_storage(storage).child(storage_name)


@contextlib.contextmanager
def checkpoint_files(checkpoint: Any) -> Iterator[Path]:
    """A local folder with the checkpoint's meta.json, samples.png and eval/ (the model state is
    not fetched): the checkpoint itself on a local filesystem, else a temporary copy."""
    fs, path = checkpoint.filesystem, checkpoint.path
    if isinstance(fs, pafs.LocalFileSystem):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="vunet-checkpoint-") as tmp:
        for name in DRIVER_FILES:
            source, kind = f"{path}/{name}", fs.get_file_info(f"{path}/{name}").type
            if kind == pafs.FileType.Directory:
                (Path(tmp) / name).mkdir()  # copy_files makes no folders on the local side
            if kind != pafs.FileType.NotFound:
                pafs.copy_files(source, str(Path(tmp) / name), source_filesystem=fs)
        yield Path(tmp)


@contextlib.contextmanager
def epoch_outputs(trial: Any, upto: int) -> Iterator[list[Path]]:
    """Local folders of the trial's per-epoch outputs (:mod:`sweeps.epoch_output`) for epochs up
    to `upto` (reported, so complete), oldest first; removed from the storage afterwards. The
    caller may move files out of them. Empty when the trial has no storage context."""
    storage = getattr(trial, "storage", None)
    fs, root = getattr(storage, "storage_filesystem", None), getattr(storage, "trial_fs_path", "")
    if fs is None or not root:
        yield []
        return
    root = f"{root}/{EPOCHS_DIR}"
    names = [n for n in _listing(fs, root, pafs.FileType.Directory) if n[6:].isdigit() and int(n[6:]) <= upto]
    if isinstance(fs, pafs.LocalFileSystem):
        try:
            yield [Path(root, n) for n in names if Path(root, n, EPOCH_RECORD).is_file()]
        finally:
            for n in names:
                shutil.rmtree(Path(root, n), ignore_errors=True)
        return
    with tempfile.TemporaryDirectory(prefix="vunet-epochs-") as tmp:
        for n in names:
            # An object store may still list a folder it has just deleted (an empty prefix): skip it.
            if fs.get_file_info(f"{root}/{n}/{EPOCH_RECORD}").type != pafs.FileType.File:
                continue
            (Path(tmp) / n).mkdir()
            pafs.copy_files(f"{root}/{n}", str(Path(tmp) / n), source_filesystem=fs)
        try:
            yield [Path(tmp, n) for n in names if Path(tmp, n, EPOCH_RECORD).is_file()]
        finally:
            for n in names:
                with contextlib.suppress(OSError):
                    fs.delete_dir(f"{root}/{n}")


def publish(storage: Storage, files: list[Path], sweep_dir: Path) -> None:
    """Copy the sweep's report files (paths under `sweep_dir`) into `<storage>/report/`."""
    for f in files:
        if f.is_file():
            target = f"{storage.path}/report/{f.resolve().relative_to(sweep_dir.resolve())}"
            storage.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            pafs.copy_files(str(f), target, destination_filesystem=storage.fs)


def tree_size(storage: Storage) -> int:
    """Bytes of the files under the folder (0 when it does not exist)."""
    if not storage.exists():
        return 0
    infos = storage.fs.get_file_info(pafs.FileSelector(storage.path, recursive=True, allow_not_found=True))
    return sum(i.size or 0 for i in infos if i.type == pafs.FileType.File)


def slim_checkpoints(stage: Storage, keep_full: set[str] | frozenset[str] = frozenset()) -> tuple[int, int]:
    """After a stage: each trial keeps its newest checkpoint only (two are kept while it runs, for
    kill -9 recovery), and all but the trials in `keep_full` (those a user may continue) keep model
    weights only. Done when Tune has returned, so no saved state can name a removed checkpoint.
    Works on any filesystem (a remote checkpoint is fetched, rewritten and put back once; a mark
    file says it is done). Returns (trials slimmed, bytes freed)."""
    if not stage.exists():
        return 0, 0
    slimmed, freed = 0, 0
    for trial in _listing(stage.fs, stage.path, pafs.FileType.Directory):
        trial_dir = stage.child(trial)
        try:
            if trial_dir.exists("result.json"):
                done, gone = _slim_trial(trial_dir, keep_full)
                slimmed, freed = slimmed + done, freed + gone
        except (OSError, ConfigError) as exc:  # housekeeping: a storage hiccup or bad file leaves the trial as is
            log.warning("storage: could not slim %s (%s)", trial_dir.shown(), one_line(str(exc))[:200])
    return slimmed, freed


def _slim_trial(trial_dir: Storage, keep_full: set[str] | frozenset[str]) -> tuple[int, int]:
    checkpoints = [
        c for c in _listing(trial_dir.fs, trial_dir.path, pafs.FileType.Directory) if c.startswith("checkpoint_")
    ]
    freed = 0
    for old in checkpoints[:-1]:
        freed += tree_size(trial_dir.child(old))
        with contextlib.suppress(FileNotFoundError):  # an object store may list a folder emptied before
            trial_dir.fs.delete_dir(trial_dir.child(old).path)
    if not checkpoints or _trial_id(trial_dir) in keep_full:
        return 0, freed
    newest = trial_dir.child(checkpoints[-1])
    if not newest.exists(MODEL_STATE) or newest.exists(SLIM_MARK):
        return 0, freed
    return 1, freed + _drop_optimizer(newest)


def _drop_optimizer(checkpoint: Storage) -> int:
    state = f"{checkpoint.path}/{MODEL_STATE}"
    if checkpoint.remote:
        with tempfile.TemporaryDirectory(prefix="vunet-slim-") as tmp:
            local_file = Path(tmp) / MODEL_STATE
            pafs.copy_files(state, str(local_file), source_filesystem=checkpoint.fs)
            freed = drop_optimizer_state(local_file)
            if freed:
                pafs.copy_files(str(local_file), state, destination_filesystem=checkpoint.fs)
    else:
        freed = drop_optimizer_state(Path(state))
    with checkpoint.fs.open_output_stream(f"{checkpoint.path}/{SLIM_MARK}"):
        pass
    return freed


def _listing(fs: pafs.FileSystem, path: str, kind: pafs.FileType) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == kind)


def _trial_id(trial_dir: Storage) -> str:
    """The trial id in the first line of the trial's result.json (one result per line)."""
    with trial_dir.fs.open_input_stream(f"{trial_dir.path}/result.json") as fh:
        first = fh.read().split(b"\n", 1)[0]
    return str(json.loads(first).get("trial_id", "")) if first.strip() else ""
