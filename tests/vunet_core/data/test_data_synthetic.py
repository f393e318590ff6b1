"""The synthetic people generator: determinism, identity consistency, split disjointness, sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vunet_core.config import SyntheticConfig
from vunet_core.data import DataError, Splits, generate_people, make_stickman
from vunet_core.data.cli import main
from vunet_core.data.crops import make_crops
from vunet_core.data.joints import TORSO_JOINTS, J
from vunet_core.data.synthetic import synthetic_name


def _people(num_identities: int, poses: int, val_identities: int, **looks: Any) -> SyntheticConfig:
    return SyntheticConfig(
        num_identities=num_identities, poses_per_identity=poses, val_identities=val_identities, **looks
    )


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    def files(out: str, seed: int) -> dict[str, bytes]:
        return _files(generate_people(_people(3, 2, 1, seed=seed), out=tmp_path / out, size=32, progress=False).parent)

    a, b, c = files("a", 0), files("b", 0), files("c", 1)
    assert len(a) == 3 * 2 + 1 and a == b
    assert a["p000/00.png"] != c["p000/00.png"]


def test_person_keeps_its_shirt_in_every_pose(tmp_path: Path) -> None:
    index_path = generate_people(_people(6, 4, 2), out=tmp_path / "people", size=64, progress=False)
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
    index = json.loads(
        generate_people(_people(3, 2, 1, seed=3), out=tmp_path / "p", size=32, progress=False).read_text()
    )
    assert index["format"] == "vunet-index" and len(index["joint_order"]) == 18
    joints = np.asarray([e["joints"] for e in index["images"]])  # (N, 18, 2)
    present = np.asarray((joints >= 0).all(axis=2))
    assert present[:, [J[n] for n in TORSO_JOINTS]].all()
    assert (joints[present] < 1).all()  # normalized by the image size
    assert [e["train"] for e in index["images"]] == [True] * 4 + [False] * 2


@pytest.mark.parametrize("size", [128, 256])
def test_larger_sizes(tmp_path: Path, size: int) -> None:
    index_path = generate_people(_people(2, 2, 1), out=tmp_path / "p", size=size, progress=False)
    index = json.loads(index_path.read_text())
    for entry in index["images"]:
        image = np.asarray(Image.open(index_path.parent / entry["path"]))
        assert image.shape == (size, size, 3) and image.std() > 10
        stickman = make_stickman(np.asarray(entry["joints"], np.float32) * size, size)
        assert stickman[:, :, 2].any() and stickman[:, :, 0].any() and stickman[:, :, 1].any()


def test_refuses_bad_settings_and_non_empty_output(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data/synthetic/val_identities"):
        generate_people(_people(3, 2, 3), out=tmp_path / "x", size=32, progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists and is not empty"):
        generate_people(_people(3, 2, 1), out=tmp_path / "full", size=32, progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_studio_backgrounds_and_plain_clothes(tmp_path: Path) -> None:
    """`studio`: every person on the same plain background; `plain`: one strong colour per shirt,
    no pattern; the people's bodies and poses are the ones of the default looks."""
    default = generate_people(_people(6, 2, 1), out=tmp_path / "d", size=64, progress=False)
    looks = generate_people(
        _people(6, 2, 1, background="studio", clothes="plain"), out=tmp_path / "l", size=64, progress=False
    )
    meta, base = json.loads(looks.read_text())["meta"], json.loads(default.read_text())["meta"]
    assert meta["generator"]["background"] == "studio" and meta["generator"]["clothes"] == "plain"
    corners = [np.asarray(Image.open(looks.parent / f"{p}/00.png"))[0, 0].astype(int) for p in meta["people"]]
    assert max(np.abs(c - corners[0]).max() for c in corners) <= 16  # one wall; per-image brightness +-8
    base_corners = [np.asarray(Image.open(default.parent / f"{p}/00.png"))[0, 0].astype(int) for p in base["people"]]
    assert max(np.abs(c - base_corners[0]).max() for c in base_corners) > 16  # scenes differ per person
    for person, look in meta["people"].items():
        shirt = np.asarray(look["shirt"], float)
        assert look["pattern"] == "plain" and (shirt.max() - shirt.min()) / max(shirt.max(), 1) >= 0.55  # saturated
        same = {
            k: v for k, v in look.items() if k not in ("shirt", "pattern", "trousers", "bg_top", "bg_bottom", "floor")
        }
        assert same == {k: base["people"][person][k] for k in same}
    assert json.loads(looks.read_text())["images"] == json.loads(default.read_text())["images"]  # same poses


def test_looks_name_the_dataset_only_when_not_the_defaults_and_bad_looks_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert synthetic_name(64, _people(48, 12, 8)) == "people-g1-s64-n48-p12-v8-seed0"  # names of existing caches hold
    studio = _people(48, 12, 8, background="studio", clothes="plain")
    assert synthetic_name(64, studio) == "people-g1-s64-n48-p12-v8-studio-plain-seed0"
    argv = ["synth", "--out", str(tmp_path / "x"), "--size", "32", "--identities", "3", "--poses", "2",
            "--val-identities", "1", "--background", "beach", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: data/synthetic/background (--background): got 'beach'")
    assert not (tmp_path / "x").exists()
