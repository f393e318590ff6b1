"""Contact sheets: milestones, and one picture of several trials' transfers of the same inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sweeps.contact import HEADER_H, KINDS, PAD, ROWS, _fit, milestones, sheet


def test_milestones_are_the_asha_rungs_and_the_last_epoch() -> None:
    assert milestones(8, True, 2, 2) == [2, 4, 8]
    assert milestones(8, True, 3, 3) == [3, 8]
    assert milestones(8, False, 2, 2) == [8]


def _cache(root: Path, trial: str, epoch: int, value: int) -> None:
    (root / trial).mkdir(parents=True, exist_ok=True)
    arrays = {k: np.full((ROWS, 16, 16, 3), value, np.uint8) for k in KINDS}
    np.savez_compressed(root / trial / f"epoch_{epoch:04d}.npz", **arrays)  # type: ignore[arg-type]


def test_sheet_puts_each_trials_transfer_side_by_side_and_greys_a_stopped_trial(tmp_path: Path) -> None:
    _cache(tmp_path, "a", 4, 10)
    _cache(tmp_path, "b", 4, 200)  # trial "c" stopped before epoch 4
    image = sheet(tmp_path, [("baseline", "a"), ("trial 2", "b"), ("trial 3", "c")], 4)
    assert image is not None
    px = np.asarray(image)
    tile = 16 * 6  # 16 px enlarged to 96
    centre = HEADER_H + PAD + tile // 2  # first row, middle of the tile
    columns = [px[centre, PAD + c * (tile + PAD) + tile // 2, 0] for c in range(3 + 3 + 1 + 3)]
    # appearance pose target | a b c | other appearance | a b c
    assert columns == [10, 10, 10, 10, 200, 160, 10, 10, 200, 160]
    assert sheet(tmp_path, [("trial 9", "z")], 4) is None  # nobody reached it: no sheet


def test_labels_are_shortened_only_when_they_do_not_fit() -> None:
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    assert _fit(draw, "trial 12", 94) == "trial 12"
    short = _fit(draw, "another person's appearance", 40)
    assert short.endswith("..") and draw.textlength(short) <= 40
