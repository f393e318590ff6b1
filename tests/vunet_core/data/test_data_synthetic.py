"""The synthetic people generator: determinism, identity consistency, split disjointness, sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vunet_core.data import DataError, Splits, generate_people, make_stickman
from vunet_core.data.crops import make_crops
from vunet_core.data.joints import TORSO_JOINTS, J


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    def files(out: str, seed: int) -> dict[str, bytes]:
        return _files(generate_people(tmp_path / out, 32, 3, 2, 1, seed=seed, progress=False).parent)

    a, b, c = files("a", 0), files("b", 0), files("c", 1)
    assert len(a) == 3 * 2 + 1 and a == b
    assert a["p000/00.png"] != c["p000/00.png"]


def test_person_keeps_its_shirt_in_every_pose(tmp_path: Path) -> None:
    index_path = generate_people(tmp_path / "people", 64, 6, 4, 2, seed=0, progress=False)
    index = json.loads(index_path.read_text())
    people = index["meta"]["people"]
    for entry in index["images"]:
        image = np.asarray(Image.open(index_path.parent / entry["path"]).convert("RGB"), dtype=np.float32)
        crops, valid = make_crops(image / 127.5 - 1, np.asarray(entry["joints"], np.float32) * 64, 16)
        torso = ((crops[:, :, :3] + 1) * 127.5).reshape(-1, 3)  # the torso crop of spec §9.6 in RGB 0..255

        def shirt_share(person: str, torso: np.ndarray = torso) -> float:
            return float((np.abs(torso - np.asarray(people[person]["shirt"])).max(axis=1) < 30).mean())

        shares = {p: shirt_share(p) for p in people}
        assert valid[0] and shares[entry["person"]] >= 0.25, entry["path"]
        assert max(shares, key=shares.__getitem__) == entry["person"], entry["path"]


def test_splits_are_disjoint(tiny_splits: Splits) -> None:
    train, val = set(tiny_splits.train.image_persons), set(tiny_splits.val.image_persons)
    assert train == {"p000", "p001", "p002"} and val == {"p003", "p004"}  # the last val_identities people
    assert len(tiny_splits.train) == 9 and len(tiny_splits.val) == 6  # nothing dropped by the torso filter


def test_index_layout(tmp_path: Path) -> None:
    index = json.loads(generate_people(tmp_path / "p", 32, 3, 2, 1, seed=3, progress=False).read_text())
    assert index["format"] == "vunet-index" and len(index["joint_order"]) == 18
    joints = np.asarray([e["joints"] for e in index["images"]])  # (N, 18, 2)
    present = np.asarray((joints >= 0).all(axis=2))
    assert present[:, [J[n] for n in TORSO_JOINTS]].all()
    assert (joints[present] < 1).all()  # normalized by the image size
    assert [e["train"] for e in index["images"]] == [True] * 4 + [False] * 2


@pytest.mark.parametrize("size", [128, 256])
def test_larger_sizes(tmp_path: Path, size: int) -> None:
    index_path = generate_people(tmp_path / "p", size, 2, 2, 1, seed=0, progress=False)
    index = json.loads(index_path.read_text())
    for entry in index["images"]:
        image = np.asarray(Image.open(index_path.parent / entry["path"]))
        assert image.shape == (size, size, 3) and image.std() > 10
        stickman = make_stickman(np.asarray(entry["joints"], np.float32) * size, size)
        assert stickman[:, :, 2].any() and stickman[:, :, 0].any() and stickman[:, :, 1].any()


def test_refuses_bad_settings_and_non_empty_output(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data/synthetic/val_identities"):
        generate_people(tmp_path / "x", 32, 3, 2, 3, progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists and is not empty"):
        generate_people(tmp_path / "full", 32, 3, 2, 1, progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
