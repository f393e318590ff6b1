"""Entry points for the training loop: check the data cheaply, then prepare the splits.

:func:`check_data` runs before any compute (no image decoding): the dataset root
and index are readable and well formed, both splits keep images after the filter
of spec §9.3, and every listed image file exists. :func:`prepare_data` generates
the default synthetic people if they are missing (once, under a file lock, so
parallel Ray trials do not race), builds or reuses the preprocessing cache and
returns the train split and the validation transfer pairs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from filelock import FileLock

from vunet_core.config import Config
from vunet_core.data.cache import CacheSettings, load_or_build
from vunet_core.data.errors import DataError
from vunet_core.data.index import INDEX_JSON, DatasetIndex, check_files, find_index, read_index
from vunet_core.data.joints import keep_mask
from vunet_core.data.loader import PairDataset, Splits
from vunet_core.data.synthetic import check_synthetic_settings, generate_people, synthetic_name


def synthetic_dir(cfg: Config) -> Path:
    """Where the generated dataset for these settings lives: <cache_dir>/synthetic/<name>."""
    s = cfg.data.synthetic
    name = synthetic_name(cfg.model.spatial_size, s.num_identities, s.poses_per_identity, s.val_identities, s.seed)
    return Path(cfg.data.cache_dir).expanduser() / "synthetic" / name


def ensure_synthetic(cfg: Config, progress: bool = True) -> Path:
    """The generated dataset's index.json, generating it first if missing (process-safe)."""
    out = synthetic_dir(cfg)
    index = out / INDEX_JSON
    if index.is_file():
        return index
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not index.is_file():  # another process may have finished while we waited
            s = cfg.data.synthetic
            generate_people(
                out, cfg.model.spatial_size, s.num_identities, s.poses_per_identity, s.val_identities, s.seed, progress
            )
    return index


def _check_cache_dir(cfg: Config) -> None:
    cache = Path(cfg.data.cache_dir).expanduser()
    if cache.exists() and not cache.is_dir():
        raise DataError(f"data/cache_dir: {cache} is a file; point it at a directory")


def check_data(cfg: Config) -> None:
    """Raise DataError (one line naming the file/setting) unless the data can be prepared."""
    _check_cache_dir(cfg)
    if cfg.data.root == "":
        s = cfg.data.synthetic
        check_synthetic_settings(cfg.model.spatial_size, s.num_identities, s.poses_per_identity, s.val_identities)
        return
    index = read_index(find_index(cfg.data.root), cfg.data.allow_pickle)
    for split_is_train in (True, False):
        rows = np.nonzero(keep_mask(index.joints, index.train, split_is_train))[0]
        if len(rows) == 0:
            name = "training" if split_is_train else "validation"
            raise DataError(
                f"{index.source}: no {name} images left after the filter (train flag {split_is_train} and "
                "lshoulder, rshoulder, lhip, rhip all present, spec §9.3)"
            )
        check_files(index, rows)


def load_index(cfg: Config, progress: bool = True) -> DatasetIndex:
    """The configured dataset's index (generating the default people first if needed)."""
    path = ensure_synthetic(cfg, progress) if cfg.data.root == "" else find_index(cfg.data.root)
    return read_index(path, cfg.data.allow_pickle)


def prepare_data(cfg: Config, progress: bool = True) -> Splits:
    """Check, generate if needed, build or reuse the cache, and return the splits."""
    check_data(cfg)
    index = load_index(cfg, progress)
    arrays = load_or_build(index, CacheSettings.from_config(cfg), Path(cfg.data.cache_dir).expanduser(), progress)
    app = cfg.model.appearance_input
    train = PairDataset(arrays["train"], pairing=cfg.data.train_pairing, appearance_input=app, seed=cfg.training.seed)
    val = PairDataset(arrays["val"], pairing="transfer", appearance_input=app)
    return Splits(train=train, val=val)
