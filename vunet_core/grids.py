"""Per-epoch sample grid: what a person looks at to judge a run.

Rows are fixed validation pairs (spread evenly over the split, the same every
epoch); columns are appearance | pose | target | reconstruction | transfer | other
appearance | its transfer | prior sample. Reconstruction decodes the target from its
own crops, transfer decodes the appearance image's crops with the target's pose
(posterior mean), "other appearance" is a different validation person (the fixed
pairing of `val/transfer/appearance_gain`) decoded with the same pose: when the
model transfers appearance, the last two transfers wear different clothes. The
prior sample draws z from the autoregressive prior given only the pose.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid, save_image

from vunet_core.data import PairDataset
from vunet_core.evaluation import fixed_noise
from vunet_core.model import VUNet

GRID_COLUMNS = (
    "appearance", "pose", "target", "reconstruction", "transfer", "other appearance", "its transfer", "prior sample"
)  # fmt: skip
GRID_SEED = 4321


def grid_indices(num_examples: int, num_rows: int) -> np.ndarray:
    """Evenly spread, fixed example indices for the grid rows."""
    rows = min(num_rows, num_examples)
    return np.linspace(0, num_examples - 1, rows).round().astype(np.int64)


@torch.no_grad()
def sample_grid(model: VUNet, val: PairDataset, num_rows: int, device: torch.device) -> torch.Tensor:
    """(3, H, W) grid in [0, 1]; uses a forked RNG with a fixed seed."""
    was_training = model.training
    model.eval()
    idx = grid_indices(len(val), num_rows)
    pair = val.batch(idx).to(device)
    own = val.with_pairing("same_image").batch(idx).to(device)
    cross = val.with_pairing("cross_person").batch(idx).to(device)
    with fixed_noise(GRID_SEED, device):
        reconstruction = model(own.pose, own.appearance, mode="train", prior=False).image
        transfer = model(pair.pose, pair.appearance, mode="transfer", prior=False).image
        other = model(cross.pose, cross.appearance, mode="transfer", prior=False).image
        prior = model(pair.pose, None, mode="sample").image
    model.train(was_training)
    columns = [pair.appearance_image, pair.pose, pair.target, reconstruction, transfer, cross.appearance_image, other]
    tiles = torch.stack([c.detach().float().cpu() for c in [*columns, prior]], dim=1)  # (R, 8, 3, S, S)
    tiles = ((tiles.flatten(0, 1) + 1) / 2).clamp(0, 1)  # (R*8, 3, S, S) in [0, 1]
    return make_grid(tiles, nrow=len(GRID_COLUMNS), padding=2, pad_value=1.0)


def save_grid(grid: torch.Tensor, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    return path
