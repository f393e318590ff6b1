"""The generated people dataset: many identities, each rendered in many poses, in the project format.

``generate_people`` writes ``<out>/pNNN/KK.png`` and an ``index.json`` (person ids,
splits, the 18 keypoints of spec §9.2 normalized by the image size, and each
person's look under ``meta``). The last ``val_identities`` people form the
validation split, so validation identities are never seen in training and every
validation image has ground truth for appearance transfer (the same person in
another pose). Output is a pure function of the settings (a :class:`~vunet_core.config.SyntheticConfig`)
and the image size: same seed, same bytes.
Writing goes to a temporary sibling directory that is renamed into place at the
end, so a reader never sees a half-written dataset.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from vunet_core.config import SyntheticConfig
from vunet_core.data.errors import DataError
from vunet_core.data.index import INDEX_JSON, DatasetIndex, write_project_index
from vunet_core.data.people import BACKGROUNDS, CLOTHES, make_identity, make_pose
from vunet_core.data.render import render_person

GENERATOR_VERSION = 1  # bump when the drawing changes: cached datasets are keyed by it


def synthetic_name(size: int, settings: SyntheticConfig) -> str:
    """Directory name of a generated dataset: every setting that changes its bytes (the looks only
    when not the defaults, so datasets generated before the options keep their names)."""
    s = settings
    looks = ("" if s.background == "scene" else f"-{s.background}") + ("" if s.clothes == "varied" else f"-{s.clothes}")
    return (
        f"people-g{GENERATOR_VERSION}-s{size}-n{s.num_identities}-p{s.poses_per_identity}-v{s.val_identities}"
        f"{looks}-seed{s.seed}"
    )


def check_synthetic_settings(size: int, settings: SyntheticConfig) -> None:
    """One clear line for settings that cannot give both splits (names the config paths)."""
    _check_values(size, asdict(settings))


def synthetic_settings(size: int, values: Mapping[str, Any]) -> SyntheticConfig:
    """The settings of loose values keyed by :class:`SyntheticConfig`'s field names (the ``synth``
    command's flags), checked as :func:`check_synthetic_settings` checks them before the dataclass
    checks itself, so a bad flag gets the line that names its config path and its flag."""
    _check_values(size, values)
    return SyntheticConfig(**values)


def _check_values(size: int, values: Mapping[str, Any]) -> None:
    for path, known in (("background", BACKGROUNDS), ("clothes", CLOTHES)):
        if values[path] not in known:
            raise DataError(
                f"data/synthetic/{path} (--{path}): got {values[path]!r}, expected one of {', '.join(known)}"
            )
    if size < 16:
        raise DataError(f"model/spatial_size: got {size}, generated people need >= 16 px")
    poses, val, num = values["poses_per_identity"], values["val_identities"], values["num_identities"]
    if poses < 2:
        raise DataError(f"data/synthetic/poses_per_identity (--poses): got {poses}, transfer pairs need >= 2")
    if not 1 <= val < num:
        raise DataError(
            f"data/synthetic/val_identities (--val-identities): got {val}, expected 1 .. "
            f"data/synthetic/num_identities - 1 = {num - 1} (training needs people too)"
        )


def generate_people(settings: SyntheticConfig, *, out: Path, size: int = 64, progress: bool = True) -> Path:
    """Render the dataset of `settings` at `size` px into `out` (must not exist or be empty); returns the
    index.json path. `settings.background` and `.clothes` choose the looks (`people.BACKGROUNDS`, `people.CLOTHES`)."""
    check_synthetic_settings(size, settings)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already exists and is not empty; remove it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        index = _render_all(tmp, settings, size=size, progress=progress)
        write_project_index(tmp / INDEX_JSON, index)
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / INDEX_JSON


def _render_all(root: Path, settings: SyntheticConfig, *, size: int, progress: bool) -> DatasetIndex:
    seed, num_identities, val_identities = settings.seed, settings.num_identities, settings.val_identities
    poses = settings.poses_per_identity
    looks = {"background": settings.background, "clothes": settings.clothes}
    paths: list[str] = []
    persons: list[str | None] = []
    train: list[bool] = []
    joints: list[np.ndarray] = []
    people: dict[str, dict[str, object]] = {}
    digits = max(2, len(str(poses - 1)))
    bar = tqdm(total=num_identities * poses, desc="generating people", unit="img", disable=not progress)
    for person in range(num_identities):
        ident = make_identity(seed, person, **looks)
        pid = f"p{person:03d}"
        is_train = person < num_identities - val_identities
        people[pid] = {"train": is_train, **asdict(ident)}
        (root / pid).mkdir()
        for image in range(poses):
            pose = make_pose(seed, person, image, ident, size)
            rgb = render_person(ident, pose, size, np.random.default_rng([seed, person, 2, image]))
            rel = f"{pid}/{image:0{digits}d}.png"
            if not cv2.imwrite(str(root / rel), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise DataError(f"{root / rel}: could not write the image (disk full or not writable?)")
            valid = (pose.joints >= 0).all(axis=1, keepdims=True)
            # Normalize by the image size like index.p (spec §9.1); missing stays -1.
            joints.append(np.where(valid, pose.joints / size, -1.0))
            paths.append(rel)
            persons.append(pid)
            train.append(is_train)
            bar.update()
    bar.close()
    meta = {
        "generator": {"version": GENERATOR_VERSION, "size": size, "num_identities": num_identities,
                      "poses_per_identity": poses, "val_identities": val_identities, "seed": seed, **looks},
        "people": people,
    }  # fmt: skip
    return DatasetIndex(root / INDEX_JSON, paths, persons, np.array(train), np.array(joints, np.float32), meta)
