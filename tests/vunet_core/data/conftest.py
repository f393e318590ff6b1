"""Shared fixtures for the data tests: a tiny generated dataset, its prepared splits, index.p builders."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vunet_core.config import Config, config_from_tree
from vunet_core.data import Splits, prepare_data
from vunet_core.data.joints import JOINT_ORDER, J

TINY = {"num_identities": 5, "poses_per_identity": 3, "val_identities": 2, "seed": 0}
MakeConfig = Callable[..., Config]
PickleFactory = Callable[..., Path]


def _tiny_config(cache_dir: Path, model: dict[str, Any] | None = None, **data: Any) -> Config:
    tree = {"model": model or {}, "data": {"cache_dir": str(cache_dir), "synthetic": dict(TINY), **data}}
    return config_from_tree(tree)


@pytest.fixture
def make_cfg() -> MakeConfig:
    """Factory: 64 px generated people, 5 identities x 3 poses (2 held out), cache under the given dir."""
    return _tiny_config


@pytest.fixture(scope="session")
def tiny_cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return _tiny_config(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tiny_splits(tiny_cfg: Config) -> Splits:
    return prepare_data(tiny_cfg, progress=False)


@pytest.fixture
def standing() -> np.ndarray:
    """(18, 2) normalized joints of a person facing the camera (person's left = image right)."""
    pts = {
        "cnose": (0.5, 0.15), "cneck": (0.5, 0.25), "rshoulder": (0.4, 0.25), "lshoulder": (0.6, 0.25),
        "relbow": (0.35, 0.4), "lelbow": (0.65, 0.4), "rwrist": (0.33, 0.55), "lwrist": (0.67, 0.55),
        "rhip": (0.43, 0.55), "lhip": (0.57, 0.55), "rknee": (0.42, 0.72), "lknee": (0.58, 0.72),
        "rankle": (0.42, 0.9), "lankle": (0.58, 0.9), "reye": (0.48, 0.13), "leye": (0.52, 0.13),
        "rear": (0.46, 0.14), "lear": (0.54, 0.14),
    }  # fmt: skip
    out = np.full((len(JOINT_ORDER), 2), -1.0, dtype=np.float32)
    for name, xy in pts.items():
        out[J[name]] = xy
    return out


def write_image(path: Path, size: tuple[int, int] = (32, 32), green: int = 100) -> None:
    """A small RGB PNG of (width, height): red ramps left to right, constant green."""
    w, h = size
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(0, 255, w).astype(np.uint8)[None, :]
    arr[..., 1] = green
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture
def image_writer() -> Callable[..., None]:
    return write_image


@pytest.fixture
def pickle_dataset(tmp_path: Path) -> PickleFactory:
    """Builds an original-layout index.p: joint_order, imgs (relative), train flags, joints (N, J, 2) in [0, 1]."""

    def build(
        entries: list[tuple[str, bool, np.ndarray]],
        joint_order: tuple[str, ...] = JOINT_ORDER,
        size: tuple[int, int] = (32, 32),
    ) -> Path:
        root = tmp_path / "orig"
        for rel, _, _ in entries:
            write_image(root / rel, size)
        perm = [JOINT_ORDER.index(n) for n in joint_order]
        index = {
            "joint_order": list(joint_order),
            "imgs": [rel for rel, _, _ in entries],
            "train": [flag for _, flag, _ in entries],
            "joints": np.stack([j[perm] for _, _, j in entries]),
        }
        with (root / "index.p").open("wb") as f:
            pickle.dump(index, f)
        return root

    return build
