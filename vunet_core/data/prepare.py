"""Entry points for the training loop: check the data cheaply, then prepare the splits.

:func:`check_data` runs before any compute (no image decoding): the dataset root
and index are readable and well formed, both splits keep images after the filter
of spec §9.3, and every listed image file exists and (until its cache is built)
opens as an image with intact headers. :func:`prepare_data` generates
the default synthetic people if they are missing (once, under a file lock, so
parallel Ray trials do not race), builds or reuses the preprocessing cache and
returns the train split and the validation transfer pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from filelock import FileLock

from vunet_core.config import Config
from vunet_core.data.cache import CacheSettings, cache_path, check_images, load_or_build
from vunet_core.data.errors import DataError
from vunet_core.data.index import INDEX_JSON, DatasetIndex, check_files, find_index, read_index
from vunet_core.data.joints import TORSO_JOINTS, keep_mask, torso_present
from vunet_core.data.loader import PairDataset, Splits
from vunet_core.data.synthetic import check_synthetic_settings, generate_people, synthetic_name
from vunet_core.paths import PathsError, check_writable_dir


def synthetic_dir(cfg: Config) -> Path:
    """Where the generated dataset for these settings lives: <cache_dir>/synthetic/<name>."""
    name = synthetic_name(cfg.model.spatial_size, cfg.data.synthetic)
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
            generate_people(cfg.data.synthetic, out=out, size=cfg.model.spatial_size, progress=progress)
    return index


def _check_cache_dir(cfg: Config) -> None:
    try:
        check_writable_dir(Path(cfg.data.cache_dir), "data/cache_dir")
    except PathsError as exc:
        raise DataError(str(exc)) from None


def check_data(cfg: Config) -> None:
    """Raise DataError (one line naming the file/setting) unless the data can be prepared."""
    _check_cache_dir(cfg)
    if cfg.data.root == "":
        check_synthetic_settings(cfg.model.spatial_size, cfg.data.synthetic)
        return
    index = read_index(find_index(cfg.data.root), cfg.data.allow_pickle)
    # Headers are verified only when the cache will be built (a built cache assumes unchanged images).
    cache = cache_path(index, CacheSettings.from_config(cfg), Path(cfg.data.cache_dir).expanduser())
    verify = not (cache / "meta.json").is_file()
    for split_is_train in (True, False):
        rows = np.nonzero(keep_mask(index.joints, index.train, split_is_train))[0]
        if len(rows) == 0:
            name = "training" if split_is_train else "validation"
            raise DataError(
                f"{index.source}: no {name} images left after the filter (train flag {split_is_train} and "
                "lshoulder, rshoulder, lhip, rhip all present, spec §9.3)"
            )
        check_files(index, rows)
        if verify:
            check_images(index, rows)


def load_index(cfg: Config, progress: bool = True) -> DatasetIndex:
    """The configured dataset's index (generating the default people first if needed)."""
    path = ensure_synthetic(cfg, progress) if cfg.data.root == "" else find_index(cfg.data.root)
    return read_index(path, cfg.data.allow_pickle)


def drop_report(index: DatasetIndex) -> str | None:
    """How many images of the index the filter of spec §9.3 drops, and why; None when it keeps all."""
    dropped = int((~torso_present(index.joints)).sum())
    if dropped == 0:
        return None
    return (
        f"{index.source}: {len(index)} images; {dropped} dropped: missing hip/shoulder joints "
        f"(one of {', '.join(TORSO_JOINTS)} absent, spec §9.3)"
    )


def prepare_data(cfg: Config, progress: bool = True, report: Callable[[str], None] | None = None) -> Splits:
    """Check, generate if needed, build or reuse the cache, and return the splits.

    `report` (e.g. ``print``) is called once with :func:`drop_report`'s line when images are dropped.
    """
    check_data(cfg)
    index = load_index(cfg, progress)
    if report is not None and (line := drop_report(index)) is not None:
        report(line)
    arrays = load_or_build(index, CacheSettings.from_config(cfg), Path(cfg.data.cache_dir).expanduser(), progress)
    app = cfg.model.appearance_input
    train = PairDataset(arrays["train"], pairing=cfg.data.train_pairing, appearance_input=app, seed=cfg.training.seed)
    val = PairDataset(arrays["val"], pairing="transfer", appearance_input=app)
    return Splits(train=train, val=val)
