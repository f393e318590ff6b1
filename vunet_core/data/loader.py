"""Datasets of (appearance, pose, target) examples and the batch iterator.

A :class:`PairDataset` holds one split's cached uint8 arrays in memory and builds a
:class:`Batch` by indexing them and converting to float once (about 0.2 ms for 8
images at 64 px). The indexing and conversion run in numpy, single-threaded, on
purpose: torch's intra-op thread pool turns each such small op into ~30 ms when
the CPU is oversubscribed (parallel Ray trials), numpy stays at ~40 us. Training examples pair the appearance with the target
image itself (spec §9.7, the original recipe) or, with ``data/train_pairing
same_person``, with another image of the same person from the same split.
Validation examples are fixed transfer pairs: for each validation image b (sorted
by key) the appearance comes from the next image of b's person (cyclic), the pose
and target from b. A person with a single image (possible in real data) degenerates
to a reconstruction pair (appearance = target). ``cross_person`` pairs each
validation target with an image of a *different* person (fixed seeded choice), the
counterfactual that shows whether the output depends on whose appearance went in.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vunet_core.data.cache import SplitArrays
from vunet_core.data.crops import NUM_PARTS
from vunet_core.data.stickman import to_signed

PAIRINGS = ("same_image", "same_person", "transfer", "cross_person")
CROSS_PERSON_SEED = 2018  # fixed: every run and epoch scores the same wrong-appearance pairs
MAX_IN_MEMORY_BYTES = 8 << 30  # larger caches stay memory-mapped and are read per batch


@dataclass
class Batch:
    """One batch, all images float32 in [-1, 1]."""

    pose: Tensor  # (B, 3, S, S) stickman of the target
    appearance: Tensor  # (B, 24, Sc, Sc) crops (exact zeros for missing parts) or (B, 3, S, S) image
    target: Tensor  # (B, 3, S, S)
    appearance_image: Tensor  # (B, 3, S, S) the image the appearance came from
    keys: list[str]  # "<key>" (same image) or "<appearance key>-><target key>"

    def __len__(self) -> int:
        return len(self.keys)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch on `device` (keys unchanged)."""
        move = {
            n: getattr(self, n).to(device, non_blocking=non_blocking)
            for n in ("pose", "appearance", "target", "appearance_image")
        }
        return Batch(**move, keys=self.keys)


def _in_memory(arr: np.ndarray) -> np.ndarray:
    """Small caches are copied into memory; huge ones stay memory-mapped and are read per batch."""
    return arr if arr.nbytes > MAX_IN_MEMORY_BYTES else np.array(arr)


class PairDataset:
    """One split: `len` training images (same_image / same_person) or fixed transfer pairs (transfer)."""

    def __init__(self, data: SplitArrays, *, pairing: str, appearance_input: str = "crops", seed: int = 0) -> None:
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
        if appearance_input == "crops" and data.crops is None:
            raise ValueError("appearance_input 'crops' needs a cache built with crops")
        self.pairing = pairing
        self.appearance_input = appearance_input
        self.image_size: int = int(data.images.shape[-1])
        self.image_keys: list[str] = list(data.keys)
        self.image_persons: list[str] = list(data.persons)
        self.joints = np.array(data.joints)  # (N, 18, 2) pixel coordinates, for pictures and checks
        self._images, self._stickmen = _in_memory(data.images), _in_memory(data.stickmen)
        self._crops = None if data.crops is None else _in_memory(data.crops)
        # Per image, per crop channel: the part is missing (8 parts x 3 channels), computed once.
        self._missing = None if data.crop_valid is None else ~np.repeat(_in_memory(data.crop_valid), 3, axis=1)
        if self._crops is not None and appearance_input == "crops":
            crop = int(self._crops.shape[-1])
            self.appearance_shape: tuple[int, int, int] = (3 * NUM_PARTS, crop, crop)
        else:
            self.appearance_shape = (3, self.image_size, self.image_size)
        self._members = _group_by_person(self.image_persons)
        self._rng = np.random.default_rng(seed)  # for same_person when the caller passes no rng
        self.pairs: np.ndarray | None = self._fixed_pairs(pairing)

    def __len__(self) -> int:
        return len(self.pairs) if self.pairs is not None else len(self.image_keys)

    def with_pairing(self, pairing: str) -> PairDataset:
        """The same images (arrays shared, not copied) with another pairing, e.g. val reconstructions."""
        if pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
        out = copy.copy(self)
        out.pairing = pairing
        out.pairs = self._fixed_pairs(pairing)
        return out

    @property
    def num_persons(self) -> int:
        return len(self._members)

    def mean_image(self) -> np.ndarray:
        """The per-pixel mean image of this split, (3, S, S) float32 in [-1, 1]."""
        total = np.zeros(self._images.shape[1:], dtype=np.float64)
        for start in range(0, len(self._images), 256):  # chunks: memory-mapped caches stay cheap
            total += self._images[start : start + 256].sum(axis=0, dtype=np.float64)
        return (total / max(1, len(self._images)) / 127.5 - 1.0).astype(np.float32)

    def _fixed_pairs(self, pairing: str) -> np.ndarray | None:
        if pairing == "transfer":
            return self._transfer_pairs()
        if pairing == "cross_person":
            return self._cross_person_pairs()
        return None

    def _transfer_pairs(self) -> np.ndarray:
        """(N, 2) [appearance, target] rows: target b, appearance = the next image of b's person (cyclic)."""
        pairs = np.zeros((len(self.image_keys), 2), dtype=np.int64)
        for b, person in enumerate(self.image_persons):
            members = self._members[person]
            pos = int(np.searchsorted(members, b))
            pairs[b] = (members[(pos + 1) % len(members)], b)  # one image only -> (b, b): reconstruction
        return pairs

    def _cross_person_pairs(self) -> np.ndarray:
        """(N, 2) [appearance, target] rows: target b, appearance = an image of another person.

        The other person and their image are drawn uniformly from a fixed seed. A split with a
        single person has no other person: its rows are (b, b), and callers report no gain.
        """
        rng = np.random.default_rng(CROSS_PERSON_SEED)
        people = sorted(self._members)
        pairs = np.zeros((len(self.image_keys), 2), dtype=np.int64)
        for b, person in enumerate(self.image_persons):
            others = [p for p in people if p != person]
            if not others:
                pairs[b] = (b, b)
                continue
            members = self._members[others[int(rng.integers(len(others)))]]
            pairs[b] = (members[int(rng.integers(len(members)))], b)
        return pairs

    def _partners(self, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """same_person: for each target, another image of the same person (itself if it is alone)."""
        out = targets.copy()
        for k, t in enumerate(targets):
            members = self._members[self.image_persons[t]]
            if len(members) > 1:
                pick = int(rng.integers(len(members) - 1))
                out[k] = members[pick + (members[pick] >= t)]  # skip the target itself
        return out

    def pair_indices(
        self, indices: Sequence[int] | np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image rows (appearance, target) of dataset examples `indices`."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices out of range for a dataset of {len(self)}")
        if self.pairs is not None:
            return self.pairs[idx, 0], self.pairs[idx, 1]
        if self.pairing == "same_person":
            return self._partners(idx, rng if rng is not None else self._rng), idx
        return idx, idx

    def batch(self, indices: Sequence[int] | np.ndarray, rng: np.random.Generator | None = None) -> Batch:
        """Examples `indices` as one batch; `rng` only draws same_person partners."""
        app, tgt = self.pair_indices(indices, rng)
        target = to_signed(self._images[tgt])  # (B, 3, S, S) uint8 -> float32
        # (B, 3, S, S), its own array even when app == tgt (same_image pairs: no second gather)
        app_image = target.copy() if app is tgt else to_signed(self._images[app])
        if self.appearance_input == "crops":
            assert self._crops is not None and self._missing is not None
            appearance = to_signed(self._crops[app])  # (B, 24, Sc, Sc)
            appearance[self._missing[app]] = 0.0  # a missing part is exact zeros (spec §9.6)
        else:
            appearance = app_image.copy()
        keys = [
            self.image_keys[t] if a == t else f"{self.image_keys[a]}->{self.image_keys[t]}"
            for a, t in zip(app, tgt, strict=True)
        ]
        pose = to_signed(self._stickmen[tgt])  # (B, 3, S, S)
        t = torch.from_numpy  # zero-copy
        return Batch(t(pose), t(appearance), t(target), t(app_image), keys)


def _group_by_person(persons: list[str]) -> dict[str, np.ndarray]:
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(persons):
        groups.setdefault(p, []).append(i)
    return {p: np.asarray(rows, dtype=np.int64) for p, rows in groups.items()}


@dataclass(frozen=True)
class Splits:
    """The training split and the validation transfer pairs."""

    train: PairDataset
    val: PairDataset

    @property
    def val_recon(self) -> PairDataset:
        """Validation images paired with themselves, row k = the target of `val` example k (arrays shared)."""
        return self.val.with_pairing("same_image")


def iterate_batches(
    ds: PairDataset, batch_size: int, *, shuffle: bool, rng: np.random.Generator | None = None, wrap: bool = False
) -> Iterator[Batch]:
    """Batches over `ds`: shuffled per call (training) or in fixed order (validation).

    wrap=True fills the last batch by wrapping around to the start of this pass (spec §9.4).
    """
    n = len(ds)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n == 0:
        return
    order = (rng if rng is not None else np.random.default_rng()).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if wrap and len(idx) < batch_size:
            idx = np.concatenate([idx, np.resize(order, batch_size - len(idx))])
        yield ds.batch(idx, rng)
