"""Contact sheets: the same validation inputs rendered by the baseline and the top trials.

Comparing trials should mean looking at one picture. Every checkpoint's eval outputs
hold each validation pair's images; :func:`cache_checkpoint` (called on each checkpoint by
:mod:`sweeps.trial_events`) keeps a few fixed pairs of every trial and epoch as a small `.npz` under
`<sweep dir>/contact/`, because Tune keeps only each trial's newest checkpoints. At the
end, :func:`write_sheets` draws one PNG per epoch milestone (ASHA's rungs and the last
epoch): a row per validation pair, columns appearance | pose | target, then each trial's
transfer, then the other person's appearance and each trial's transfer of it, then each
trial's prior sample of the pose (`mode=sample`: no appearance, z drawn from the prior, so
the rate's effect is seen) (a title row names the groups, so column labels are just the
trial names). The trials are the baseline and the best search trials, or with several
objectives the baseline and points spread along the front. A trial that stopped before a
milestone shows a grey tile.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from sweeps.files import CONTACT_FILE, EPOCH_RECORD, EVAL_DIR
from sweeps.trial_info import stage
from vunet_core import load_eval_outputs

log = logging.getLogger(__name__)

ROWS = 4
KINDS = ("appearance", "pose", "target", "transfer", "other_appearance", "other_transfer", "prior")
CACHE_DIR = "contact"
SHEET_DIR = "contact_sheets"
LABEL_H = 14
HEADER_H = 2 * LABEL_H  # a row of group titles, then a row of column labels
PAD = 2


def cache_checkpoint(trial: Any, checkpoint_dir: Path, sweep_dir: Path) -> None:
    """Keep ROWS fixed validation pairs of a search trial's checkpoint for the sheets; never raises."""
    if stage(trial) != "search":  # the sheets compare search trials
        return
    try:
        keep(checkpoint_dir, sweep_dir / CACHE_DIR / str(trial.trial_id))
    except (OSError, ValueError, KeyError) as exc:  # never stop the sweep for a picture
        log.warning("contact sheet: could not keep trial %s's eval outputs (%s)", trial.trial_id, exc)


def keep(checkpoint_dir: Path, trial_cache: Path) -> Path | None:
    """Cache the fixed pairs of one checkpoint's eval outputs; returns the file, or None without eval outputs."""
    cut = checkpoint_dir / CONTACT_FILE  # the pairs the trial cut out (sweeps.epoch_output)
    if not cut.is_file() and not (checkpoint_dir / EVAL_DIR / "index.json").is_file():
        return None
    epoch = int(json.loads((checkpoint_dir / EPOCH_RECORD).read_text())["epoch"])
    if cut.is_file():  # a file copy: the driver decodes no eval PNG
        trial_cache.mkdir(parents=True, exist_ok=True)
        target = trial_cache / f"epoch_{epoch:04d}.npz"
        shutil.copyfile(cut, target.with_name(target.stem + ".tmp.npz"))
        target.with_name(target.stem + ".tmp.npz").replace(target)
        return target
    out = load_eval_outputs(checkpoint_dir / EVAL_DIR)
    idx = np.linspace(0, len(out) - 1, min(ROWS, len(out))).round().astype(np.int64)
    trial_cache.mkdir(parents=True, exist_ok=True)
    target = trial_cache / f"epoch_{epoch:04d}.npz"
    tmp = target.with_name(target.stem + ".tmp.npz")
    arrays: dict[str, Any] = {k: out.images[k][idx] for k in KINDS if k in out.images}
    np.savez_compressed(tmp, **arrays)
    tmp.replace(target)
    return target


def milestones(max_epochs: int, asha: bool, grace_period: int, reduction_factor: float) -> list[int]:
    """Epochs to draw: ASHA's rungs (grace, grace*rf, ...) below max_epochs, and max_epochs."""
    epochs = {max_epochs}
    rung = float(grace_period)
    while asha and reduction_factor > 1 and rung < max_epochs:
        epochs.add(int(rung))
        rung *= reduction_factor
    return sorted(epochs)


def sheet_columns(report: Any, top: int = 3, front: Any = None) -> list[tuple[str, str]]:
    """The baseline, then the `top` best search trials (at the top rung), as (label, trial_id);
    with a Pareto `front` (:class:`sweeps.front.Front`), its first `top` points in spread order."""
    from sweeps.report import ranked

    columns = [("baseline", report.baseline.trial_id)] if report.baseline is not None else []
    rows = front.members if front is not None else ranked(report)
    best = [r for r in rows if report.baseline is None or r.trial_id != report.baseline.trial_id]
    return columns + [(f"trial {r.number}", r.trial_id) for r in best[:top]]


def sheet(cache: Path, columns: Sequence[tuple[str, str]], epoch: int) -> Image.Image | None:
    """One contact sheet: `columns` are (label, trial_id), the first one's inputs label the rows."""
    loaded = {tid: _load(cache / tid / f"epoch_{epoch:04d}.npz") for _, tid in columns}
    first = next((v for v in loaded.values() if v is not None), None)
    if first is None:
        return None
    rows, size = first["target"].shape[0], first["target"].shape[1]
    grey = np.full((rows, size, size, 3), 160, np.uint8)
    names = [name for name, _ in columns]
    labels = ["appearance", "pose", "target", *names, "appearance", *names]
    blocks = [first["appearance"], first["pose"], first["target"]]
    blocks += [v["transfer"] if v is not None else grey for v in loaded.values()]
    blocks += [first["other_appearance"]]
    blocks += [v["other_transfer"] if v is not None else grey for v in loaded.values()]
    labels += names
    blocks += [v["prior"] if v is not None and "prior" in v else grey for v in loaded.values()]
    # a header over each group of columns, so each column's own label stays short
    groups = [
        ("inputs", 3),
        ("transfer", len(columns)),
        ("another person's appearance -> transfer", 1 + len(columns)),
        ("prior sample (pose only)", len(columns)),
    ]
    scale = max(1, 96 // size)  # small images are enlarged (nearest) so a face is visible
    tile = size * scale
    width, height = len(blocks) * (tile + PAD) + PAD, HEADER_H + rows * (tile + PAD) + PAD
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    first_col = 0
    for title, span in groups:
        x0 = PAD + first_col * (tile + PAD)
        x1 = x0 + span * (tile + PAD) - PAD
        draw.text((x0 + 1, 1), _fit(draw, title, x1 - x0 - 2), fill="black")
        draw.line((x0, LABEL_H - 2, x1, LABEL_H - 2), fill="grey")
        first_col += span
    for c, (label, block) in enumerate(zip(labels, blocks, strict=True)):
        x = PAD + c * (tile + PAD)
        draw.text((x + 1, LABEL_H + 1), _fit(draw, label, tile - 2), fill="black")
        for r in range(rows):
            img = Image.fromarray(block[r]).resize((tile, tile), Image.Resampling.NEAREST)
            canvas.paste(img, (x, HEADER_H + PAD + r * (tile + PAD)))
    return canvas


def _fit(draw: ImageDraw.ImageDraw, text: str, width: float) -> str:
    """`text`, shortened with an ellipsis only if it is wider than `width` pixels."""
    if draw.textlength(text) <= width:
        return text
    while len(text) > 1 and draw.textlength(text + "..") > width:
        text = text[:-1]
    return text + ".."


def _load(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    with np.load(path) as data:  # a cache from before the prior samples has no "prior": grey tiles
        return {k: data[k] for k in KINDS if k in data}


def write_sheets(sweep_dir: Path, columns: Sequence[tuple[str, str]], epochs: Sequence[int]) -> list[Path]:
    """`contact_sheets/epoch_NNNN.png` for each milestone that any of the trials reached."""
    out = []
    for epoch in epochs:
        image = sheet(sweep_dir / CACHE_DIR, columns, epoch)
        if image is None:
            continue
        path = sweep_dir / SHEET_DIR / f"epoch_{epoch:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        out.append(path)
    return out
