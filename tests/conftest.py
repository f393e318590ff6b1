"""Fixtures shared by all tests: tiny VUNet configs on small generated data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TINY: dict[str, Any] = {
    "model/spatial_size": 32,
    "model/base_channels": 8,
    "model/max_channels": 16,
    "model/box_factor": 1,
    "model/bottleneck_factor": 1,
    "data/synthetic/num_identities": 6,
    "data/synthetic/poses_per_identity": 4,
    "data/synthetic/val_identities": 2,
    "training/steps_per_epoch": 3,
    "training/batch_size": 4,
    "training/val_batch_size": 8,
    "training/init_batches": 1,
    "training/num_epochs": 2,
    "training/progress": False,
    "training/device": "cpu",
    "eval/num_grid_examples": 2,
}


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the session, so tiny datasets are generated once."""
    return tmp_path_factory.mktemp("vunet_cache")


@pytest.fixture
def tiny_overrides(shared_cache: Path) -> dict[str, Any]:
    return {**TINY, "data/cache_dir": str(shared_cache)}
