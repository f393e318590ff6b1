"""Picture grid of a dataset: each cell is one image, its stickman and its 8 part crops.

Used for docs/generated_people.png (``vunet-data preview``) and handy for checking
a real dataset's joints: a cell shows the image and stickman side by side (2S x S)
over the crops in spec §9.6 order (torso, head, l upper arm, l forearm, r upper arm,
r forearm, l thigh, r thigh) as a 2 x 4 mosaic; missing parts are mid-grey (zero).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from vunet_core.config import Config
from vunet_core.data.cache import CacheSettings, load_or_build
from vunet_core.data.loader import PairDataset
from vunet_core.data.prepare import check_data, load_index

GAP = 4  # white pixels between cells


def _u8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) float [-1, 1] -> (H, W, C) uint8."""
    return ((x.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)


def _cell(image: torch.Tensor, pose: torch.Tensor, crops: torch.Tensor) -> np.ndarray:
    """One example -> (2S, 2S, 3): [image | stickman] over the 2 x 4 crop mosaic."""
    s = image.shape[-1]
    top = np.concatenate([_u8(image), _u8(pose)], axis=1)  # (S, 2S, 3)
    tiles = [
        cv2.resize(_u8(crops[3 * k : 3 * k + 3]), (s // 2, s // 2), interpolation=cv2.INTER_NEAREST) for k in range(8)
    ]
    mosaic = np.concatenate([np.concatenate(tiles[:4], axis=1), np.concatenate(tiles[4:], axis=1)], axis=0)
    return np.concatenate([top, mosaic], axis=0)


def people_grid(ds: PairDataset, num_people: int = 4, poses: int = 4, zoom: int = 2) -> np.ndarray:
    """Rows = the first `num_people` people of `ds`, columns = their first `poses` images; (H, W, 3) uint8 RGB."""
    people = list(dict.fromkeys(ds.image_persons))[:num_people]
    rows = []
    for person in people:
        members = [i for i, p in enumerate(ds.image_persons) if p == person][:poses]
        batch = ds.batch(members)
        cells = [_cell(batch.target[k], batch.pose[k], batch.appearance[k]) for k in range(len(members))]
        cells += [np.full_like(cells[0], 255)] * (poses - len(cells))
        gap = np.full((cells[0].shape[0], GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([c for cell in cells for c in (cell, gap)][:-1], axis=1))
    gap_row = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([r for row in rows for r in (row, gap_row)][:-1], axis=0)
    return cv2.resize(grid, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)


def write_preview(
    cfg: Config, out: Path, split: str = "val", num_people: int = 4, poses: int = 4, progress: bool = True
) -> Path:
    """Prepare the configured data (crops on) and save the grid of `split` as a PNG."""
    check_data(cfg)
    settings = dataclasses.replace(CacheSettings.from_config(cfg), appearance_input="crops")  # crops are shown
    arrays = load_or_build(load_index(cfg, progress), settings, Path(cfg.data.cache_dir).expanduser(), progress)
    grid = people_grid(PairDataset(arrays[split], pairing="same_image"), num_people, poses)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return out
