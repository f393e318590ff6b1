"""The sweep directory `<out>/<name>[-N]`: atomic creation, finding the one to resume, its state file.

A new sweep claims `<name>`, else `<name>-2`, `-3`, ... with `mkdir` (atomic: two sweeps
started at the same moment get different directories). `sweep.json` records what a
`--resume` must reuse whatever directory it is started from: the MLflow tracking URI,
the experiment and parent run, and the working directory relative paths were resolved
against.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from sweeps.spec import SpecError

STATE_FILE = "sweep.json"


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


def find_resumable(out_dir: Path, name: str) -> Path:
    """The newest sweep directory of `name` that has started (holds its state file)."""
    taken = sweeps_of(out_dir, name)
    if not taken or not (taken[-1] / STATE_FILE).is_file():
        raise SpecError(f"--resume: no interrupted sweep {name} in {out_dir}; run without --resume to start one")
    return taken[-1]


def read_state(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: unreadable sweep state ({exc}); the sweep cannot be resumed") from None
    if not isinstance(state, dict) or "tracking_uri" not in state:
        raise SpecError(f"{path}: not a sweep state file; the sweep cannot be resumed")
    return state


def write_state(sweep_dir: Path, state: dict[str, Any]) -> None:
    """Write `sweep.json` atomically (a crash leaves the old file or the new one)."""
    tmp = sweep_dir / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, sweep_dir / STATE_FILE)


def resume_tracking_uri(state: dict[str, Any], env_uri: str) -> str:
    """The recorded tracking URI; an explicit different MLFLOW_TRACKING_URI is an error."""
    recorded = str(state["tracking_uri"])
    if env_uri and env_uri != recorded:
        from sweeps.tracking import redact

        raise SpecError(
            f"--resume: MLFLOW_TRACKING_URI={redact(env_uri)} differs from the sweep's store {redact(recorded)}; "
            "unset it (the sweep continues in the store it started in)"
        )
    return recorded
