"""Loaders: batch shapes, dtypes and ranges, training pairings, validation transfer pairs, the cache."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from vunet_core.config import Config
from vunet_core.data import DataError, PairDataset, Splits, check_data, iterate_batches, prepare_data, synthetic_dir
from vunet_core.data.cache import SplitArrays

MakeConfig = Callable[..., Config]


def test_train_batch_shapes_dtypes_ranges(tiny_splits: Splits) -> None:
    train = tiny_splits.train
    assert train.image_size == 64 and train.appearance_shape == (24, 16, 16)
    batch = next(iterate_batches(train, 4, shuffle=True, rng=np.random.default_rng(0), wrap=True))
    assert batch.pose.shape == batch.target.shape == batch.appearance_image.shape == (4, 3, 64, 64)
    assert batch.appearance.shape == (4, 24, 16, 16) and len(batch.keys) == 4
    for t in (batch.pose, batch.appearance, batch.target, batch.appearance_image):
        assert t.dtype == torch.float32 and t.min() >= -1 and t.max() <= 1
    levels = torch.tensor([-1.0, 127 / 127.5 - 1, 1.0])  # stickman values (spec §9.5)
    assert (torch.unique(batch.pose)[:, None] - levels).abs().min(dim=1).values.max() < 1e-6
    assert torch.equal(batch.appearance_image, batch.target)  # original recipe: the same image (spec §9.7)
    assert all("->" not in k for k in batch.keys)


def test_validation_transfer_pairs(tiny_splits: Splits) -> None:
    val = tiny_splits.val
    assert val.pairs is not None and len(val) == 6
    first = [b.keys for b in iterate_batches(val, 4, shuffle=False)]
    again = [b.keys for b in iterate_batches(val, 4, shuffle=False)]
    assert first == again and sum(len(k) for k in first) == 6  # fixed order, no wrap
    batch = val.batch(np.arange(len(val)))
    own = val.with_pairing("same_image").batch(val.pairs[:, 0])  # the appearance images with their own poses
    recon = tiny_splits.val_recon.batch(np.arange(len(val)))  # row k: val example k's target, reconstructed
    assert torch.equal(recon.target, batch.target) and torch.equal(recon.pose, batch.pose)
    assert recon.keys == [k.split("->")[1] for k in batch.keys]
    for k, (a, t) in enumerate(val.pairs):
        assert val.image_persons[a] == val.image_persons[t] and a != t  # same person, another image
        assert batch.keys[k] == f"{val.image_keys[a]}->{val.image_keys[t]}"
        assert not torch.equal(batch.pose[k], own.pose[k])  # ... in another pose
        assert torch.equal(batch.appearance_image[k], own.target[k])
        assert torch.equal(batch.appearance[k], own.appearance[k])


def test_same_person_pairing(tiny_cfg: Config, make_cfg: MakeConfig) -> None:
    cfg = make_cfg(Path(tiny_cfg.data.cache_dir), train_pairing="same_person")
    train = prepare_data(cfg, progress=False).train
    keys = [train.batch(np.arange(9), rng=np.random.default_rng(s)).keys for s in (1, 1, 2)]
    assert keys[0] == keys[1] and keys[0] != keys[2]  # drawn from the rng, reproducibly
    train_keys = set(train.image_keys)
    for key in keys[0]:
        a, t = key.split("->")
        assert a != t and a.split("/")[0] == t.split("/")[0] and a in train_keys  # same person, same split


def test_wrap_and_shuffle(tiny_splits: Splits) -> None:
    train, rng = tiny_splits.train, np.random.default_rng(0)
    wrapped = [b.keys for b in iterate_batches(train, 4, shuffle=True, rng=rng, wrap=True)]
    assert [len(k) for k in wrapped] == [4, 4, 4]
    flat = [k for keys in wrapped for k in keys]
    assert set(flat[:9]) == set(train.image_keys) and flat[9:] == flat[:3]  # the last batch wraps around
    assert [len(b) for b in iterate_batches(train, 4, shuffle=True, rng=rng)] == [4, 4, 1]
    second = [k for b in iterate_batches(train, 4, shuffle=True, rng=rng, wrap=True) for k in b.keys]
    assert second[:9] != flat[:9]  # reshuffled on every pass


def test_missing_parts_load_as_exact_zeros() -> None:
    rng = np.random.default_rng(0)
    valid = np.ones((2, 8), dtype=bool)
    valid[1, [1, 6]] = False
    u8 = rng.integers(0, 256, size=(2, 3, 8, 8), dtype=np.uint8)
    arrays = SplitArrays(["p/0", "p/1"], ["p", "p"], u8, u8, np.zeros((2, 18, 2), np.float32),
                         rng.integers(0, 256, size=(2, 24, 4, 4), dtype=np.uint8), valid)  # fmt: skip
    app = PairDataset(arrays, pairing="same_image").batch([0, 1]).appearance  # (2, 24, 4, 4)
    assert (app[1, 3:6] == 0).all() and (app[1, 18:21] == 0).all()
    assert (app[0] != 0).all() and (app[1, :3] != 0).all()  # 127.5 is not a uint8: valid parts are never 0


def test_image_appearance(tiny_cfg: Config, make_cfg: MakeConfig) -> None:
    splits = prepare_data(make_cfg(Path(tiny_cfg.data.cache_dir), model={"appearance_input": "image"}), progress=False)
    assert splits.val.appearance_shape == (3, 64, 64)
    batch = splits.val.batch([0, 1])
    assert torch.equal(batch.appearance, batch.appearance_image) and not torch.equal(batch.appearance, batch.target)


def test_cache_is_reused_and_keyed(tmp_path: Path, make_cfg: MakeConfig) -> None:
    cfg = make_cfg(tmp_path)
    check_data(cfg)  # passes before anything is generated
    assert not synthetic_dir(cfg).exists()
    prepare_data(cfg, progress=False)
    built = sorted((tmp_path / "preprocessed").glob("*/meta.json"))
    stamp = built[0].stat().st_mtime_ns
    prepare_data(cfg, progress=False)
    prepare_data(make_cfg(tmp_path, train_pairing="same_person"), progress=False)  # pairing is not cached
    assert sorted((tmp_path / "preprocessed").glob("*/meta.json")) == built and built[0].stat().st_mtime_ns == stamp
    prepare_data(make_cfg(tmp_path, model={"box_factor": 1}), progress=False)
    assert len(list((tmp_path / "preprocessed").glob("*/meta.json"))) == 2


CHILD = """
import sys
from vunet_core.config import config_from_tree
from vunet_core.data import prepare_data
synthetic = {"num_identities": 5, "poses_per_identity": 3, "val_identities": 2}
cfg = config_from_tree({"data": {"cache_dir": sys.argv[1], "synthetic": synthetic}})
print(",".join(prepare_data(cfg, progress=False).val.image_keys))
"""


def test_parallel_prepare_builds_once(tmp_path: Path) -> None:
    # Separate interpreters, like Ray trial workers starting together on one machine.
    cmd = [sys.executable, "-c", CHILD, str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _, err in outs]
    assert len({out for out, _ in outs}) == 1 and outs[0][0].count(",") == 5
    assert len(list((tmp_path / "synthetic").iterdir())) == 2  # the dataset and its lock file, no temp dirs
    assert len([p for p in (tmp_path / "preprocessed").iterdir() if p.is_dir()]) == 1


def test_impossible_split_is_refused(tmp_path: Path, make_cfg: MakeConfig) -> None:
    cfg = make_cfg(tmp_path, synthetic={"num_identities": 3, "poses_per_identity": 2, "val_identities": 3})
    with pytest.raises(DataError, match="data/synthetic/val_identities"):
        check_data(cfg)
