"""Preprocessing cache: model-ready uint8 images, stickmen and crops, built once per dataset + settings.

For every image kept by the filter of spec §9.3 the cache stores, in NCHW order so
a batch needs no transpose: the target image resized to S x S (spec §9.4), its
stickman (spec §9.5) and, when the appearance input is crops, the 24-channel crop
stack (spec §9.6) as uint8 with an (N, 8) validity mask, so missing parts become
exact zeros at load time. Crops are warped from the [-1, 1] float image as the
spec says and then rounded to uint8 (error <= 1/255; the cache's only deviation).
The cache directory name hashes the index file and the settings that change the
arrays; it is written to a temporary directory and renamed into place under a
file lock, so concurrent Ray trials build it once and never read half a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import uuid
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from filelock import FileLock
from numpy.lib.format import open_memmap
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from vunet_core.config import Config
from vunet_core.data.crops import NUM_PARTS, make_crops
from vunet_core.data.errors import DataError
from vunet_core.data.index import DatasetIndex, person_ids
from vunet_core.data.joints import keep_mask
from vunet_core.data.stickman import make_stickman, to_signed
from vunet_core.paths import one_line

CACHE_VERSION = 1  # bump when preprocessing changes
SPLITS = ("train", "val")
# What PIL raises for a file that is not an image or is truncated/corrupt (SyntaxError: "broken PNG file").
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


@dataclass(frozen=True)
class CacheSettings:
    """The settings that change the cached arrays (anything else reuses the cache)."""

    spatial_size: int
    box_factor: int
    appearance_input: str
    non_square: str
    person_id_from: str

    @classmethod
    def from_config(cls, cfg: Config) -> CacheSettings:
        m, d = cfg.model, cfg.data
        return cls(m.spatial_size, m.box_factor, m.appearance_input, d.non_square, d.person_id_from)

    @property
    def crop_size(self) -> int:
        return self.spatial_size // 2**self.box_factor

    @property
    def crops(self) -> bool:
        return self.appearance_input == "crops"


@dataclass(frozen=True)
class SplitArrays:
    """One split's cached arrays, rows sorted by key (memory-mapped until the loader copies them)."""

    keys: list[str]
    persons: list[str]
    images: np.ndarray  # (N, 3, S, S) uint8
    stickmen: np.ndarray  # (N, 3, S, S) uint8
    joints: np.ndarray  # (N, 18, 2) float32 pixel coordinates at S, negative = missing
    crops: np.ndarray | None  # (N, 24, Sc, Sc) uint8, None when the appearance input is the image
    crop_valid: np.ndarray | None  # (N, 8) bool


def cache_key(index: DatasetIndex, settings: CacheSettings) -> str:
    """Hash of the index file (path and bytes) and the settings; images are assumed unchanged."""
    digest = hashlib.sha256(index.source.read_bytes()).hexdigest()
    doc = {"version": CACHE_VERSION, "index": str(index.source.resolve()), "sha256": digest, **asdict(settings)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(index: DatasetIndex, settings: CacheSettings, cache_dir: Path) -> Path:
    """The cache directory for this index + settings (complete once it holds meta.json)."""
    return Path(cache_dir) / "preprocessed" / f"{index.root.name}-s{settings.spatial_size}-{cache_key(index, settings)}"


def load_or_build(
    index: DatasetIndex, settings: CacheSettings, cache_dir: Path, progress: bool = True
) -> dict[str, SplitArrays]:
    """The cached splits for this index + settings, building them once (process-safe)."""
    final = cache_path(index, settings, cache_dir)
    if not (final / "meta.json").is_file():
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock"):
            if not (final / "meta.json").is_file():
                _build(index, settings, final, progress)
    return _load(final, settings)


def _build(index: DatasetIndex, settings: CacheSettings, final: Path, progress: bool) -> None:
    for stale in final.parent.glob(final.name + ".tmp-*"):  # left by a killed builder; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        persons = person_ids(index, settings.person_id_from)
        keys = [str(PurePosixPath(p).with_suffix("")) for p in index.paths]
        meta: dict[str, object] = {"version": CACHE_VERSION, "index": str(index.source), "settings": asdict(settings)}
        total = int(sum(keep_mask(index.joints, index.train, s == "train").sum() for s in SPLITS))
        with tqdm(total=total, desc="preprocessing", unit="img", disable=not progress) as bar:
            for split in SPLITS:
                rows = np.nonzero(keep_mask(index.joints, index.train, split == "train"))[0]
                rows = rows[np.argsort([keys[i] for i in rows], kind="stable")]  # fixed order: sorted keys
                _build_split(index, settings, rows, tmp / split, bar)
                meta[split] = {"keys": [keys[i] for i in rows], "persons": [persons[i] for i in rows]}
        (tmp / "meta.json").write_text(json.dumps(meta))
        tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _build_split(index: DatasetIndex, settings: CacheSettings, rows: np.ndarray, prefix: Path, bar: tqdm) -> None:
    n, s, sc = len(rows), settings.spatial_size, settings.crop_size
    images = open_memmap(f"{prefix}_images.npy", mode="w+", dtype=np.uint8, shape=(n, 3, s, s))
    stickmen = open_memmap(f"{prefix}_stickmen.npy", mode="w+", dtype=np.uint8, shape=(n, 3, s, s))
    joints = open_memmap(f"{prefix}_joints.npy", mode="w+", dtype=np.float32, shape=(n, 18, 2))
    if settings.crops:
        crops = open_memmap(f"{prefix}_crops.npy", mode="w+", dtype=np.uint8, shape=(n, 3 * NUM_PARTS, sc, sc))
        valid = open_memmap(f"{prefix}_crop_valid.npy", mode="w+", dtype=np.bool_, shape=(n, NUM_PARTS))
    for out, i in enumerate(rows):
        image, px = load_image(index.root / index.paths[i], index.joints[i], s, settings.non_square)
        images[out] = image.transpose(2, 0, 1)  # (S, S, 3) -> (3, S, S)
        stickmen[out] = make_stickman(px, s).transpose(2, 0, 1)
        joints[out] = px
        if settings.crops:
            signed = to_signed(image)  # spec §9.6 warps the [-1, 1] float image
            part_crops, part_valid = make_crops(signed, px, sc)  # (Sc, Sc, 24), (8,)
            crops[out] = np.clip(np.rint((part_crops + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(2, 0, 1)
            valid[out] = part_valid
        bar.update()
    for arr in (images, stickmen, joints, *((crops, valid) if settings.crops else ())):
        arr.flush()


def load_image(path: Path, joints: np.ndarray, size: int, non_square: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode, square, resize (spec §9.4) -> (S, S, 3) uint8 RGB and (18, 2) joint pixel coordinates at S."""
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (*IMAGE_ERRORS, Image.DecompressionBombError) as exc:
        raise image_error(path, exc) from None
    joints = joints.astype(np.float32).copy()
    h, w = rgb.shape[:2]
    if non_square == "pad" and h != w:
        rgb, joints = pad_to_square(rgb, joints)
    if rgb.shape[:2] != (size, size):
        # The reference resizes with PIL bilinear to S x S without keeping the aspect ratio.
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), resample=Image.Resampling.BILINEAR))
    return rgb, joints * size  # normalized -> pixels; missing joints stay negative


def image_error(path: Path, exc: Exception) -> DataError:
    """One line naming an image PIL could not read (not an image, truncated or corrupt) and the fix."""
    why = "not an image file" if isinstance(exc, UnidentifiedImageError) else one_line(f"{type(exc).__name__}: {exc}")
    return DataError(f"{path}: cannot read image ({why}); replace it or drop it from the index")


def check_images(index: DatasetIndex, rows: np.ndarray) -> None:
    """Each listed image in `rows` opens as an image and its data checks out (PIL `verify`: PNG chunks
    and checksums, the headers of other formats; ~30 ms per 576 small PNGs). No pixels are decoded."""
    for i in rows:
        path = index.root / index.paths[int(i)]
        try:
            with Image.open(path) as im:
                im.verify()
        except (*IMAGE_ERRORS, Image.DecompressionBombError) as exc:
            raise image_error(path, exc) from None


def pad_to_square(rgb: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replicate-pad the short side (Market 128x64 -> 128x128, 32 px each side) and renormalize the joints.

    Spec §9.4 third-party convention: x += pad, normalized by the new side; missing joints stay missing.
    """
    h, w = rgb.shape[:2]
    side = max(h, w)
    left, top = (side - w) // 2, (side - h) // 2
    padded = cv2.copyMakeBorder(rgb, top, side - h - top, left, side - w - left, cv2.BORDER_REPLICATE)
    present = np.asarray((joints >= 0).all(axis=1))
    moved = (joints * np.array([w, h], np.float32) + np.array([left, top], np.float32)) / side
    return padded, np.where(present[:, None], moved, joints).astype(np.float32)


def _load(final: Path, settings: CacheSettings) -> dict[str, SplitArrays]:
    try:
        meta = json.loads((final / "meta.json").read_text())
        out = {}
        for split in SPLITS:
            arr = {name: np.load(final / f"{split}_{name}.npy", mmap_mode="r") for name in _names(settings)}
            out[split] = SplitArrays(
                meta[split]["keys"], meta[split]["persons"], arr["images"], arr["stickmen"], arr["joints"],
                arr.get("crops"), arr.get("crop_valid"),
            )  # fmt: skip
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"{final}: the preprocessing cache is damaged ({exc}); delete this directory to rebuild it"
        ) from None
    return out


def _names(settings: CacheSettings) -> tuple[str, ...]:
    return ("images", "stickmen", "joints", *(("crops", "crop_valid") if settings.crops else ()))
