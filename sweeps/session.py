"""The state the steps of one running sweep share (:class:`SweepSession`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.spec import SweepSpec
from sweeps.storage import Storage

PARENT = "parent"  # the outbox's key of the sweep's parent run


@dataclass
class SweepSession:
    """What the steps of one running sweep share: the validated sweep, its resolved base config,
    where it lives (the driver's sweep directory, the storage of Tune's state and checkpoints) and
    where it is tracked (the ids once the parent run exists)."""

    spec: SweepSpec
    base_tree: dict[str, Any]
    tracking_uri: str
    sweep_dir: Path
    tune_storage: Storage
    experiment_id: str = ""
    parent_id: str = ""
    leg: int = 1  # 1 for the driver that started the sweep, +1 for each --resume

    @property
    def separate_storage(self) -> bool:
        """Whether Tune's state and checkpoints live outside the sweep directory (`--storage`)."""
        return self.tune_storage.remote or self.tune_storage.path != str(self.sweep_dir.resolve())
