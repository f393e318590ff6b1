"""Index readers: the original index.p (opt-in), index.json, by-name joints, filtering, errors, non-square images."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vunet_core.config import Config, config_from_tree
from vunet_core.data import DataError, check_data, convert_pickle, prepare_data, read_index
from vunet_core.data.index import find_index
from vunet_core.data.joints import JOINT_ORDER, J

COCO15 = ("rankle", "rknee", "rhip", "lhip", "lknee", "lankle", "rwrist", "relbow", "rshoulder",
          "lshoulder", "lelbow", "lwrist", "cnose", "leye", "reye")  # fmt: skip


def _cfg(root: Path, tmp_path: Path, **data: Any) -> Config:
    tree = {"model": {"spatial_size": 32}, "data": {"root": str(root), "cache_dir": str(tmp_path / "cache"), **data}}
    return config_from_tree(tree)


def _entries(standing: np.ndarray) -> list[tuple[str, bool, np.ndarray]]:
    def without(name: str, coord: slice | int = slice(None)) -> np.ndarray:
        j = standing.copy()
        j[J[name], coord] = -1.0
        return j

    return [
        ("a/0.png", True, standing),
        ("a/1.png", True, without("lhip")),  # dropped: torso joint missing
        ("b/0.png", True, without("rwrist")),  # kept: only a limb joint missing
        ("c/0.png", False, standing),
        ("c/1.png", False, without("rshoulder", 0)),  # dropped: one negative coordinate is enough
        ("d/0.png", False, standing),
    ]


def test_pickle_needs_opt_in(pickle_dataset: Callable[..., Path], standing: np.ndarray, tmp_path: Path) -> None:
    root = pickle_dataset(_entries(standing))
    with pytest.raises(DataError, match=r"index\.p.*data/allow_pickle true.*vunet-data convert"):
        check_data(_cfg(root, tmp_path))
    with pytest.raises(DataError, match="allow_pickle"):
        prepare_data(_cfg(root, tmp_path), progress=False)


def test_pickle_kept_and_dropped(pickle_dataset: Callable[..., Path], standing: np.ndarray, tmp_path: Path) -> None:
    root = pickle_dataset(_entries(standing))
    cfg = _cfg(root, tmp_path, allow_pickle=True)
    check_data(cfg)
    splits = prepare_data(cfg, progress=False)
    assert splits.train.image_keys == ["a/0", "b/0"] and splits.val.image_keys == ["c/0", "d/0"]
    np.testing.assert_allclose(splits.train.joints[0], standing * 32)  # normalized -> pixels at S = 32
    assert (splits.train.joints[1, J["rwrist"]] < 0).all()
    assert (splits.train.batch([1]).appearance[0, 15:18] == 0).all()  # right forearm crop: exact zeros
    assert (splits.train.batch([0]).appearance[0, 15:18] != 0).any()
    # Person ids come from parent folders; c and d have one image each -> reconstruction pairs.
    assert splits.val.pairs is not None and splits.val.pairs.tolist() == [[0, 0], [1, 1]]
    assert splits.val.batch([0, 1]).keys == ["c/0", "d/0"]


def test_joints_resolved_by_name(pickle_dataset: Callable[..., Path], standing: np.ndarray) -> None:
    root = pickle_dataset(_entries(standing), joint_order=COCO15)
    index = read_index(find_index(root), allow_pickle=True)
    assert index.joints.shape == (6, 18, 2)
    np.testing.assert_allclose(index.joints[0, [J[n] for n in COCO15]], standing[[J[n] for n in COCO15]])
    assert (index.joints[0, [J["cneck"], J["rear"], J["lear"]]] == -1).all()  # absent names are missing


def test_convert_writes_project_index(
    pickle_dataset: Callable[..., Path], standing: np.ndarray, tmp_path: Path
) -> None:
    root = pickle_dataset(_entries(standing))
    out = convert_pickle(root / "index.p")
    assert out == root / "index.json" and find_index(root) == out  # index.json is preferred from now on
    original, converted = read_index(root / "index.p", allow_pickle=True), read_index(out, allow_pickle=False)
    assert converted.paths == original.paths and converted.train.tolist() == original.train.tolist()
    np.testing.assert_allclose(converted.joints, original.joints, atol=1e-6)
    check_data(_cfg(root, tmp_path))  # no pickle needed any more


def _write_json(root: Path, doc: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return root


def _doc(standing: np.ndarray, n: int = 2, **entry: Any) -> dict[str, Any]:
    images = [
        {"path": f"p{i}/0.png", "person": "x", "train": i == 0, "joints": standing.tolist(), **entry} for i in range(n)
    ]
    return {"format": "vunet-index", "version": 1, "joint_order": list(JOINT_ORDER), "images": images}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: "{not json", r"index\.json: cannot read the index as JSON"),
        (lambda d: {**d, "format": "other"}, r"index\.json: not a project index"),
        (lambda d: {**d, "joint_order": d["joint_order"][1:]}, r"index\.json: joint_order lacks cnose"),
        (
            lambda d: {**d, "images": [{**d["images"][0], "joints": [[0.1, 0.2]]}]},
            r"images\[0\]: \"joints\" must be 18",
        ),
        (
            lambda d: {**d, "images": [{**d["images"][0], "train": "yes"}]},
            r"images\[0\]: \"train\" must be true or false",
        ),
        (
            lambda d: {**d, "images": [{**d["images"][0], "path": "../x.png"}]},
            r"images\[0\]: \"path\" '../x.png' must be relative",
        ),
    ],
)
def test_malformed_index_json_names_the_file(
    tmp_path: Path, standing: np.ndarray, mutate: Callable[[dict[str, Any]], Any], message: str
) -> None:
    root = _write_json(tmp_path / "ds", mutate(_doc(standing)))
    with pytest.raises(DataError, match=message):
        check_data(_cfg(root, tmp_path))


def test_missing_and_corrupt_images_are_named(
    tmp_path: Path, standing: np.ndarray, image_writer: Callable[..., None]
) -> None:
    root = _write_json(tmp_path / "ds", _doc(standing))
    image_writer(root / "p0/0.png")
    with pytest.raises(DataError, match=r"p1/0\.png: image listed in index\.json is missing"):
        check_data(_cfg(root, tmp_path))
    (root / "p1").mkdir()
    (root / "p1/0.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"p1/0\.png: cannot read image \(OSError: Truncated File Read\); replace it"):
        check_data(_cfg(root, tmp_path))  # headers are verified before any compute
    assert not (tmp_path / "cache").exists()


def _jpeg_bytes(size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "corrupt", "caught_by"),
    [
        ("p1/0.png", lambda png, jpg: b"not an image at all", "check_data"),
        ("p1/0.png", lambda png, jpg: png[: len(png) // 2], "check_data"),  # truncated PNG
        ("p1/0.png", lambda png, jpg: png[:-12], "check_data"),  # PNG cut before its end chunk
        ("p1/0.jpg", lambda png, jpg: jpg[:-100], "prepare_data"),  # truncated JPEG: headers intact
    ],
)
def test_corrupt_images_are_one_line_naming_the_file(
    tmp_path: Path,
    standing: np.ndarray,
    image_writer: Callable[..., None],
    name: str,
    corrupt: Callable[[bytes, bytes], bytes],
    caught_by: str,
) -> None:
    doc = _doc(standing)
    doc["images"][1]["path"] = name
    root = _write_json(tmp_path / "ds", doc)
    image_writer(root / "p0/0.png")
    (root / name).parent.mkdir()
    (root / name).write_bytes(corrupt((root / "p0/0.png").read_bytes(), _jpeg_bytes()))
    cfg = _cfg(root, tmp_path)
    expected = re.escape(f"{root / name}: cannot read image (")
    if caught_by == "check_data":
        with pytest.raises(DataError, match=expected) as exc:
            check_data(cfg)
    else:
        check_data(cfg)  # PIL cannot tell a cut JPEG from its headers; decoding it in the cache build can
        with pytest.raises(DataError, match=expected) as exc:
            prepare_data(cfg, progress=False)
        left = [p.name for p in (tmp_path / "cache" / "preprocessed").iterdir() if p.suffix != ".lock"]
        assert left == []  # no (half) cache
    assert "\n" not in str(exc.value) and "replace it or drop it from the index" in str(exc.value)


def test_images_are_verified_until_the_cache_is_built(
    tmp_path: Path, standing: np.ndarray, image_writer: Callable[..., None]
) -> None:
    """check_data opens every listed image while no cache of the dataset exists; once prepare_data has
    built one, the images are assumed unchanged (not opened again) until that cache is gone."""
    root = _write_json(tmp_path / "ds", _doc(standing))
    for i in range(2):
        image_writer(root / f"p{i}/0.png")
    cfg = _cfg(root, tmp_path)
    image = root / "p1/0.png"  # the validation image
    good = image.read_bytes()
    broken = re.escape(f"{image}: cannot read image (")
    image.write_bytes(b"garbage")
    with pytest.raises(DataError, match=broken):  # no cache yet: verified
        check_data(cfg)
    image.write_bytes(good)
    built = prepare_data(cfg, progress=False)
    image.write_bytes(b"garbage")  # changed after the cache was built: the cache stands
    check_data(cfg)  # not verified: passes although the file is garbage
    cached = prepare_data(cfg, progress=False)  # served from the cache, the file never decoded
    np.testing.assert_array_equal(cached.val.mean_image(), built.val.mean_image())
    (meta,) = (tmp_path / "cache" / "preprocessed").glob("*/meta.json")
    meta.unlink()  # a cache without meta.json is incomplete: verification resumes
    with pytest.raises(DataError, match=broken):
        check_data(cfg)


def test_no_validation_images_is_an_error(
    tmp_path: Path, standing: np.ndarray, image_writer: Callable[..., None]
) -> None:
    root = _write_json(tmp_path / "ds", _doc(standing, n=1))
    image_writer(root / "p0/0.png")
    with pytest.raises(DataError, match="no validation images left"):
        check_data(_cfg(root, tmp_path))
    with pytest.raises(DataError, match="data/root: .* does not exist"):
        check_data(_cfg(tmp_path / "nowhere", tmp_path))


def test_non_square_pad_and_stretch(pickle_dataset: Callable[..., Path], standing: np.ndarray, tmp_path: Path) -> None:
    root = pickle_dataset([("m/0.png", True, standing), ("m/1.png", False, standing)], size=(16, 32))  # 16 wide
    pad = prepare_data(_cfg(root, tmp_path, allow_pickle=True), progress=False).train
    x, y = standing[:, 0] * 16 + 8, standing[:, 1] * 32  # spec §9.4: x += pad, then normalized by the side
    np.testing.assert_allclose(pad.joints[0], np.stack([x, y], axis=1), atol=1e-4)
    image = pad.batch([0]).target[0]  # (3, 32, 32): 8 replicated columns each side
    assert (image[:, :, :8] == image[:, :, 8:9]).all() and (image[:, :, 24:] == image[:, :, 23:24]).all()
    stretch = prepare_data(_cfg(root, tmp_path, allow_pickle=True, non_square="stretch"), progress=False).train
    np.testing.assert_allclose(stretch.joints[0], standing * 32, atol=1e-4)
    assert not (stretch.batch([0]).target[0, :, :, 0] == stretch.batch([0]).target[0, :, :, 7]).all()


def test_person_ids_from_index_or_folder(
    tmp_path: Path, standing: np.ndarray, image_writer: Callable[..., None]
) -> None:
    doc = _doc(standing, n=4)
    for i, e in enumerate(doc["images"]):
        e["train"], e["person"] = i < 2, "same"
    root = _write_json(tmp_path / "ds", doc)
    for e in doc["images"]:
        image_writer(root / e["path"])
    by_index = prepare_data(_cfg(root, tmp_path), progress=False)
    assert by_index.val.image_persons == ["same", "same"] and by_index.val.pairs is not None
    assert by_index.val.pairs.tolist() == [[1, 0], [0, 1]]  # a real transfer pair across folders
    by_folder = prepare_data(_cfg(root, tmp_path, person_id_from="parent_folder"), progress=False)
    assert by_folder.val.image_persons == ["p2", "p3"]


def test_person_ids_from_market_style_file_names() -> None:
    from vunet_core.data.index import DatasetIndex, person_ids

    paths = [
        "bounding_box_train/0002_c1s1_000451_03.jpg",
        "bounding_box_train/0002_c2s1_000301_01.jpg",
        "bounding_box_train/0007_c1s1_000551_01.jpg",
    ]
    index = DatasetIndex(Path("index.json"), paths, [None] * 3, np.ones(3, bool), np.zeros((3, 18, 2)))
    assert person_ids(index, "filename_prefix") == ["bounding_box_train/0002"] * 2 + ["bounding_box_train/0007"]
    assert person_ids(index, "parent_folder") == ["bounding_box_train"] * 3
