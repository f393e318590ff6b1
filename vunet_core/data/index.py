"""Dataset index readers and writers: the project's ``index.json`` and the original ``index.p``.

Both describe, per image, a path relative to the index's directory, a split flag
and joints as (x, y) normalized to [0, 1] by the image width/height, negative =
missing (spec §9.1). ``index.json`` (the project format, no code runs on load) adds
an optional person id per image and free-form ``meta``; the original pickle can
only be read with ``data/allow_pickle true`` or converted once with
``vunet-data convert DIR/index.p --allow-pickle``. Readers return a :class:`DatasetIndex` with
joints resolved by name into the canonical order of spec §9.2.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, cast

import numpy as np

from vunet_core.data.errors import DataError
from vunet_core.data.joints import JOINT_ORDER, check_joint_order, to_canonical

INDEX_JSON = "index.json"
INDEX_PICKLE = "index.p"
FORMAT_NAME = "vunet-index"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DatasetIndex:
    """One index file, joints in canonical order (N, 18, 2), normalized, negative = missing."""

    source: Path
    paths: list[str]
    persons: list[str | None]
    train: np.ndarray  # (N,) bool
    joints: np.ndarray  # (N, 18, 2) float32
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """Image paths are relative to the index's directory."""
        return self.source.parent

    def __len__(self) -> int:
        return len(self.paths)


def find_index(root: str | Path) -> Path:
    """The index file of a dataset directory (index.json preferred over index.p), or `root` if it is a file."""
    p = Path(root).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise DataError(f"data/root: {p} does not exist; point it at a directory with {INDEX_JSON} or {INDEX_PICKLE}")
    for name in (INDEX_JSON, INDEX_PICKLE):
        if (p / name).is_file():
            return p / name
    raise DataError(f"data/root: {p} has no {INDEX_JSON} or {INDEX_PICKLE}")


def read_index(path: Path, allow_pickle: bool) -> DatasetIndex:
    """Read either format; a pickle needs `allow_pickle` (loading a pickle runs code)."""
    if path.suffix == ".p" or path.suffix == ".pkl":
        if not allow_pickle:
            raise DataError(
                f"{path}: reading a pickle index runs code; set data/allow_pickle true, "
                f"or convert it once with `vunet-data convert {path} --allow-pickle`"
            )
        return read_pickle_index(path)
    return read_project_index(path)


def read_pickle_index(path: Path) -> DatasetIndex:
    """The original `index.p` (spec §9.1): dict of joint_order, imgs, train, joints."""
    try:
        with path.open("rb") as f:
            # latin1 lets Python-2 pickles (the original indices) load their numpy arrays.
            data = pickle.load(f, encoding="latin1")  # opt-in: data/allow_pickle
    except Exception as exc:  # any unpickling failure is a malformed file for the user
        raise DataError(f"{path}: cannot unpickle the index ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    missing = [k for k in ("joint_order", "imgs", "train", "joints") if k not in data]
    if missing:
        raise DataError(f"{path}: index lacks the key(s) {', '.join(missing)} (spec §9.1)")
    paths = [str(p) for p in data["imgs"]]
    train = np.asarray(data["train"], dtype=bool).reshape(-1)
    joints = _as_joint_array(path, data["joints"])
    _check_lengths(path, len(paths), train, joints)
    canonical = to_canonical(joints, list(data["joint_order"]), str(path))
    return DatasetIndex(path, paths, [None] * len(paths), train, canonical)


def _as_joint_array(path: Path, value: Any) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: joints are not a numeric (N, J, 2) array ({exc})") from None


def _check_lengths(path: Path, n: int, train: np.ndarray, joints: np.ndarray) -> None:
    if len(train) != n or len(joints) != n:
        raise DataError(f"{path}: {n} images but {len(train)} train flags and {len(joints)} joint rows")


def read_project_index(path: Path) -> DatasetIndex:
    """The project's `index.json` (see :func:`write_project_index` for the layout)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the index as JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise DataError(f'{path}: not a project index (expected a JSON object with "format": "{FORMAT_NAME}")')
    order = data.get("joint_order")
    images = data.get("images")
    if not isinstance(order, list) or not isinstance(images, list):
        raise DataError(f'{path}: "joint_order" and "images" must be lists')
    check_joint_order(order, str(path))
    paths: list[str] = []
    persons: list[str | None] = []
    train: list[bool] = []
    rows: list[list[Any]] = []
    for i, entry in enumerate(images):
        p, person, flag, joints = _parse_entry(path, i, entry, len(order))
        paths.append(p)
        persons.append(person)
        train.append(flag)
        rows.append(joints)
    joints_arr = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(order), 2)
    canonical = to_canonical(joints_arr, order, str(path))
    meta: dict[str, Any] = data["meta"] if isinstance(data.get("meta"), dict) else {}
    return DatasetIndex(path, paths, persons, np.asarray(train, dtype=bool), canonical, meta)


def _parse_entry(path: Path, i: int, entry: Any, num_joints: int) -> tuple[str, str | None, bool, list[Any]]:
    where = f"{path}: images[{i}]"
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object with path, train, joints")
    p, person, flag, joints = entry.get("path"), entry.get("person"), entry.get("train"), entry.get("joints")
    if not isinstance(p, str) or not p:
        raise DataError(f'{where}: "path" must be a non-empty relative path')
    if PurePosixPath(p).is_absolute() or ".." in PurePosixPath(p).parts:
        raise DataError(f'{where}: "path" {p!r} must be relative to the index directory')
    if person is not None and not isinstance(person, (str, int)):
        raise DataError(f'{where}: "person" must be a string, an integer or null')
    if not isinstance(flag, bool):
        raise DataError(f'{where}: "train" must be true or false')
    if not _is_joint_list(joints, num_joints):
        raise DataError(f'{where}: "joints" must be {num_joints} [x, y] number pairs (one per joint_order name)')
    return p, None if person is None else str(person), flag, cast(list[Any], joints)


def _is_joint_list(joints: Any, num_joints: int) -> bool:
    if not isinstance(joints, list) or len(joints) != num_joints:
        return False
    return all(isinstance(j, list) and len(j) == 2 and all(_is_number(v) for v in j) for j in joints)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def write_project_index(path: Path, index: DatasetIndex) -> None:
    """Write `index.json` atomically: format, version, joint_order (spec §9.2), images, meta."""
    images = [
        {"path": p, "person": person, "train": bool(t), "joints": np.round(j, 6).tolist()}
        for p, person, t, j in zip(index.paths, index.persons, index.train, index.joints, strict=True)
    ]
    doc = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "joint_order": list(JOINT_ORDER),
        "images": images,
        "meta": index.meta,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, separators=(",", ":")))
    tmp.replace(path)


def convert_pickle(source: Path, out: Path | None = None) -> Path:
    """One-time `index.p` -> `index.json` beside it (person ids left null: they come from folders)."""
    index = read_pickle_index(source)
    target = out or source.with_name(INDEX_JSON)
    write_project_index(target, DatasetIndex(target, index.paths, index.persons, index.train, index.joints))
    return target


def person_ids(index: DatasetIndex, person_id_from: str) -> list[str]:
    """Per image: the index's person id (`index`, when it has one), else the image's parent folder,
    or the file name up to its first `_` (`filename_prefix`: Market-1501's `0002_c1s1_000451_03.jpg`)."""
    out = []
    for p, person in zip(index.paths, index.persons, strict=True):
        path = PurePosixPath(p)
        if person_id_from == "index" and person is not None:
            out.append(person)
        elif person_id_from == "filename_prefix":
            out.append(f"{path.parent}/{path.name.split('_', 1)[0]}")
        else:
            out.append(str(path.parent))
    return out


def check_files(index: DatasetIndex, rows: np.ndarray) -> None:
    """Every listed image in `rows` exists (a stat, no decoding); the error names the first missing one."""
    for i in rows:
        f = index.root / index.paths[int(i)]
        if not f.is_file():
            raise DataError(
                f"{f}: image listed in {index.source.name} is missing; restore it or remove it from the index"
            )
