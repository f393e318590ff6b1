"""The state the steps of one running sweep share (:class:`SweepSession`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.spec import SweepSpec

PARENT = "parent"  # the outbox's key of the sweep's parent run


@dataclass
class SweepSession:
    """What the steps of one running sweep share: the validated sweep, its resolved base config,
    where it lives and where it is tracked (the ids once the parent run exists)."""

    spec: SweepSpec
    base_tree: dict[str, Any]
    uri: str
    sweep_dir: Path
    experiment_id: str = ""
    parent_id: str = ""
