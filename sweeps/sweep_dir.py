"""The sweep directory `<out>/<name>[-N]`: atomic creation, finding the one to resume, its state file.

A new sweep claims `<name>`, else `<name>-2`, `-3`, ... with `mkdir` (atomic: two sweeps
started at the same moment get different directories). `sweep.json` (:class:`SweepState`,
read and written only here) records what a `--resume` must reuse whatever directory it is
started from: the MLflow tracking URI, the experiment and parent run, the working directory
relative paths were resolved against, and the storage of Tune's state (`--storage`) with
this sweep's folder there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from sweeps.files import LOCK_FILE, LOG_FILE, STATE_FILE, STUDY_FILE
from sweeps.spec import SpecError
from sweeps.storage import Storage, open_storage, sweep_storage


def create_sweep_dir(out_dir: Path, name: str) -> Path:
    """Claim a fresh `<out>/<name>[-N]`; SpecError when `out_dir` cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        n = 1
        while True:
            candidate = out_dir / (name if n == 1 else f"{name}-{n}")
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                n += 1
    except OSError as exc:
        raise SpecError(f"--out-dir {out_dir}: cannot create the sweep directory ({exc.strerror or exc})") from None


def sweeps_of(out_dir: Path, name: str) -> list[Path]:
    """Existing directories of sweeps named `name`, oldest (lowest number) first."""
    pattern = re.compile(rf"^{re.escape(name)}(-(\d+))?$")
    found = []
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            m = pattern.match(p.name)
            if m and p.is_dir():
                found.append((int(m.group(2) or 1), p))
    return [p for _, p in sorted(found)]


def find_resumable(out_dir: Path, name: str, flag: str = "--resume") -> Path:
    """The newest sweep directory of `name` that has started (holds its state file)."""
    taken = sweeps_of(out_dir, name)
    if not taken or not (taken[-1] / STATE_FILE).is_file():
        raise SpecError(f"{flag}: no started sweep {name} in {out_dir}; run without {flag} to start one")
    return taken[-1]


@dataclass(frozen=True)
class Span:
    """One stage run by one driver process (a leg): a sweep resumed twice has three legs."""

    leg: int  # 1 for the driver that started the sweep, +1 for each --resume
    stage: str  # "search" or "confirm"
    started: float  # epoch seconds
    ended: float | None = None  # None while it runs (or when its driver was killed)

    @property
    def wall_s(self) -> float:
        return max(0.0, (self.ended if self.ended is not None else self.started) - self.started)


@dataclass(frozen=True)
class SweepState:
    """What `sweep.json` holds: everything a `--resume` or `--sync` reuses."""

    tracking_uri: str  # the MLflow store the sweep logs to (on disk: without its password)
    cwd: str = ""  # the working directory relative paths were resolved against
    spec: str = ""  # the sweep file, absolute
    overrides: dict[str, Any] = field(default_factory=dict)  # the command line's PATH VALUE pairs
    storage: str = ""  # --storage as given ("" = the sweep directory)
    storage_name: str = ""  # this sweep's folder in that storage
    experiment_id: str = ""  # set once the parent run exists
    parent_run_id: str = ""
    spans: tuple[Span, ...] = ()  # the stages each leg ran, for the sweep's totals

    @property
    def legs(self) -> int:
        return max((s.leg for s in self.spans), default=0)

    def wall_s(self, stage: str) -> float:
        """Wall time of `stage` summed over every leg."""
        return sum(s.wall_s for s in self.spans if s.stage == stage)

    def but(self, **changes: Any) -> SweepState:
        """A copy with `changes` (the state is frozen: a change is written as a whole)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Target:
    """Where a sweep runs: its directory (None for a new sweep until it is claimed) and its state."""

    sweep_dir: Path | None
    state: SweepState

    @property
    def storage(self) -> Storage | None:
        """Where Tune's state goes: the sweep's own folder in `--storage` (or the sweep directory)
        once claimed; before that, the `--storage` to check (None without one)."""
        if self.sweep_dir is None:
            return open_storage(self.state.storage) if self.state.storage else None
        return sweep_storage(self.state.storage, self.state.storage_name, self.sweep_dir)


def read_state(sweep_dir: Path) -> SweepState:
    path = sweep_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: unreadable sweep state ({exc}); the sweep cannot be resumed") from None
    if not isinstance(state, dict) or "tracking_uri" not in state:
        raise SpecError(f"{path}: not a sweep state file; the sweep cannot be resumed")
    known = {f.name for f in dataclasses.fields(SweepState)}
    try:
        spans = tuple(Span(**span) for span in state.get("spans", []))
        return SweepState(**{**{k: v for k, v in state.items() if k in known}, "spans": spans})
    except TypeError as exc:
        raise SpecError(f"{path}: not a sweep state file ({exc}); the sweep cannot be resumed") from None


def write_state(sweep_dir: Path, state: SweepState) -> None:
    """Write `sweep.json` atomically (a crash leaves the old file or the new one). No secret at
    rest: the tracking URI is written without its password (`--resume` and `--sync` take it from
    the environment, :func:`resume_tracking_uri`); owner-only all the same."""
    from sweeps.tracking import redact

    tmp = sweep_dir / f".{STATE_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(dataclasses.asdict(state.but(tracking_uri=redact(state.tracking_uri))), indent=1))
    os.replace(tmp, sweep_dir / STATE_FILE)


def begin_span(sweep_dir: Path, leg: int, stage: str) -> None:
    """Record that this leg starts `stage` now. A span a killed driver left open ends at the
    sweep's last sign of life (its study's or log's last write)."""
    state = read_state(sweep_dir)
    last = last_activity(sweep_dir)
    spans = [s if s.ended is not None else dataclasses.replace(s, ended=max(s.started, last)) for s in state.spans]
    write_state(sweep_dir, state.but(spans=(*spans, Span(leg, stage, time.time()))))


def end_span(sweep_dir: Path) -> None:
    """The running span ends now (the stage finished or was interrupted)."""
    state = read_state(sweep_dir)
    now = time.time()
    write_state(sweep_dir, state.but(spans=tuple(dataclasses.replace(s, ended=s.ended or now) for s in state.spans)))


def last_activity(sweep_dir: Path) -> float:
    """When the sweep last wrote its study or its log (a killed driver's last sign of life)."""
    times = [p.stat().st_mtime for p in (sweep_dir / STUDY_FILE, sweep_dir / LOG_FILE) if p.is_file()]
    return max(times, default=0.0)


_LOCKS: list[FileLock] = []  # held until the process exits


def hold_sweep_lock(sweep_dir: Path) -> None:
    """Claim the sweep directory for this process: a second driver (a --resume or --sync of a
    sweep still running) gets a one-line error instead of sharing its Tune state and study."""
    lock = FileLock(str(sweep_dir / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise SpecError(f"{sweep_dir} is in use by a running sweep; wait for it or stop it first") from None
    _LOCKS.append(lock)


def check_same_overrides(state: SweepState, overrides: dict[str, Any]) -> None:
    """A resumed sweep keeps the command-line overrides it started with."""
    recorded = state.overrides
    if recorded != overrides:

        def show(o: dict[str, Any]) -> str:
            return " ".join(f"{k} {v}" for k, v in o.items()) or "(none)"

        raise SpecError(
            f"--resume: the sweep started with overrides {show(recorded)}, got {show(overrides)}; "
            "give the same ones (trials in progress keep their config)"
        )


def check_same_storage(state: SweepState, storage: str | None) -> None:
    """A resumed sweep continues in the storage it started with (recorded in its state file)."""
    recorded = state.storage
    if storage and storage != recorded:
        from sweeps.tracking import redact

        where = redact(str(recorded)) if recorded else "its sweep directory"
        raise SpecError(
            f"--resume: the sweep keeps its Tune state in {where}, not {redact(storage)}; "
            "drop --storage (a resumed sweep continues where it started)"
        )


def resume_tracking_uri(state: SweepState, env_uri: str, env_password: str = "") -> str:
    """The store the sweep started in, with its credentials from the environment: an explicit
    MLFLOW_TRACKING_URI must name that store (its password is then used); else a recorded
    `user:***@host` takes MLFLOW_TRACKING_PASSWORD. A missing password or another store is an error."""
    from sweeps.tracking import redact, with_password

    recorded = state.tracking_uri
    if env_uri and redact(env_uri) != redact(recorded):
        raise SpecError(
            f"--resume: MLFLOW_TRACKING_URI={redact(env_uri)} differs from the sweep's store {redact(recorded)}; "
            "unset it (the sweep continues in the store it started in)"
        )
    if env_uri:
        return env_uri
    if redact(recorded) != recorded or "***" not in recorded:
        return recorded  # no password, or one recorded by an older version
    if not env_password:
        raise SpecError(
            f"--resume: the sweep's tracking server {recorded} needs its password, which sweep.json does not keep; "
            "set MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_URI with the credentials)"
        )
    return with_password(recorded, env_password)
