"""What the terminal shows: the project's own lines, and the libraries' output in a file.

By default Ray Tune's status tables are off, the log records of Ray, Optuna, MLflow
and Python warnings go to `<sweep dir>/sweep.log`, and trial workers' output stays in
Ray's session logs (their path is written to `sweep.log`), so stdout carries only the
sweep's story (`sweeps.progress`). `--verbose` puts all of it back on the terminal.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sweeps.files import LOG_FILE

LIBRARIES = ("ray", "optuna", "mlflow", "alembic", "py.warnings", "filelock")
_verbose = False


def verbose() -> bool:
    """Whether Ray's own output (status tables, worker logs) goes to the terminal."""
    return _verbose


def configure(sweep_dir: Path, show_all: bool) -> Path | None:
    """Route the libraries' log records to `<sweep dir>/sweep.log` unless `show_all`; returns that file."""
    global _verbose
    _verbose = show_all
    if show_all:
        return None
    path = sweep_dir / LOG_FILE
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.captureWarnings(True)
    route(handler)
    return path


def route(handler: logging.Handler) -> None:
    """Give the libraries' loggers `handler` only (Ray re-adds its own at `ray.init`: call again)."""
    for name in LIBRARIES:
        lib = logging.getLogger(name)
        lib.handlers = [handler]
        lib.propagate = False
    for name, lg in list(logging.root.manager.loggerDict.items()):
        if isinstance(lg, logging.Logger) and name.split(".", 1)[0] in LIBRARIES and name not in LIBRARIES:
            # FileHandler is a StreamHandler too: keep only non-stream handlers, let records propagate.
            lg.handlers = [h for h in lg.handlers if not isinstance(h, logging.StreamHandler)]
            lg.propagate = True


def file_handler() -> logging.Handler | None:
    """The handler `configure` installed (to re-apply after Ray set up its logging)."""
    handlers = logging.getLogger(LIBRARIES[0]).handlers
    return next((h for h in handlers if isinstance(h, logging.FileHandler)), None)
