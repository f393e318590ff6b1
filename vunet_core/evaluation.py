"""Validation pass: unweighted losses, appearance-transfer metrics, eval outputs on disk.

One pass over the whole validation split, in its fixed order, with no parameter
update. For each validation pair (appearance image A of person P, pose and target
B = P in another pose) it computes

- the reconstruction of B from its own crops (train routing, dropout off, spec §5.3)
  and every loss term on it, unweighted (`val/loss/<term>`), plus the total with the
  current step's weights (`val/loss/total`);
- the transfer A -> pose(B) in `transfer` mode and its error against the ground
  truth B: `val/transfer/l1` (mean |x_hat - x| on [-1, 1] images), `val/transfer/ssim`
  (on [0, 1] images) and `val/transfer/perceptual` when VGG weights are configured;
- the same transfer with the appearance of a *different* validation person (fixed,
  seeded pairing): `val/transfer/l1_wrong_appearance`, and the appearance gain
  `val/transfer/appearance_gain = l1_wrong_appearance - l1`, per example then averaged.
  It is > 0 only when the output depends on whose appearance went in; a pose-only
  model (an "average person" in the right pose) scores 0 whatever its `l1`.

:func:`reference_floors` gives two reference errors of the dataset, no model involved:
copying the appearance image as the answer, and predicting the mean training image.

With an output directory it also writes the per-example images and losses as a
dataset (`eval/epoch_NNNN/index.json` + PNGs) that :func:`load_eval_outputs` reads
back. Posterior sampling noise is drawn from a fixed seed inside a forked RNG, so
validation is repeatable and never disturbs the training RNG stream.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor
from torchmetrics.functional.image import structural_similarity_index_measure

from vunet_core import metrics as m
from vunet_core.config import LOSS_TERMS, Config
from vunet_core.data import Batch, PairDataset, iterate_batches
from vunet_core.losses import compute_terms, loss_weights, weighted_total
from vunet_core.model import VUNet
from vunet_core.perceptual import PerceptualLoss

IMAGE_KINDS = (
    "appearance", "pose", "target", "reconstruction", "transfer", "other_appearance", "other_transfer", "prior",
)  # fmt: skip
VALIDATION_SEED = 1234
PRIOR_SEED = 4321  # the prior samples of the eval outputs (`mode=sample`: the pose alone, z from the prior)


@dataclass
class EvalOutputs:
    """Eval outputs read back from disk: images (N, H, W, 3) uint8 per kind, per-example losses."""

    keys: list[str]
    images: dict[str, np.ndarray]
    losses: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.keys)


def to_uint8(x: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8 RGB."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def transfer_metrics(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-instance (B,) transfer errors against ground truth."""
    l1 = (pred - target).abs().flatten(1).mean(1)  # (B, 3, H, W) -> (B,)
    pred01 = ((pred.float() + 1) / 2).clamp(0, 1)
    ssim = structural_similarity_index_measure(pred01, (target.float() + 1) / 2, data_range=1.0, reduction="none")
    return {"l1": l1, "ssim": torch.as_tensor(ssim).reshape(-1)}


@contextmanager
def fixed_noise(seed: int, device: torch.device) -> Iterator[None]:
    """Draw sampling noise from `seed` without disturbing the caller's RNG stream."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _aligned_batches(datasets: list[PairDataset], batch_size: int) -> Iterator[tuple[Batch, ...]]:
    """Batches of datasets whose row k has the same target (val, its reconstructions, its cross pairs)."""
    yield from zip(*(iterate_batches(d, batch_size, shuffle=False) for d in datasets), strict=True)


def reference_floors(train: PairDataset, val: PairDataset, batch_size: int = 64) -> dict[str, float]:
    """Transfer L1 of two model-free answers on the validation pairs (a yardstick for `val/transfer/l1`).

    `val/floor/copy_appearance_l1`: the appearance image itself (right clothes, wrong pose);
    `val/floor/mean_image_l1`: the per-pixel mean training image (no person-specific anything).
    """
    mean = torch.from_numpy(train.mean_image())  # (3, S, S)
    copy_l1: list[Tensor] = []
    mean_l1: list[Tensor] = []
    for b in iterate_batches(val, batch_size, shuffle=False):
        copy_l1.append((b.appearance_image - b.target).abs().flatten(1).mean(1))
        mean_l1.append((mean - b.target).abs().flatten(1).mean(1))
    if not copy_l1:
        return {m.FLOOR_COPY_APPEARANCE: float("nan"), m.FLOOR_MEAN_IMAGE: float("nan")}
    return {
        m.FLOOR_COPY_APPEARANCE: float(torch.cat(copy_l1).mean()),
        m.FLOOR_MEAN_IMAGE: float(torch.cat(mean_l1).mean()),
    }


@dataclass(frozen=True)
class EvalJob:
    """What one validation pass evaluates: the model on the validation split under `cfg`, at training
    step `step` (it sets the loss weights and is recorded in the eval outputs' index.json), with the
    perceptual loss (None: off) on `device`."""

    model: VUNet
    val: PairDataset
    cfg: Config
    step: int
    perceptual: PerceptualLoss | None
    device: torch.device


def evaluate(
    model: VUNet, val: PairDataset, cfg: Config, step: int, perceptual: PerceptualLoss | None, device: torch.device
) -> dict[str, float]:
    """Validation metrics over the whole split, no files written (:func:`run_evaluation` writes them)."""
    return run_evaluation(EvalJob(model, val, cfg, step, perceptual, device))


@torch.no_grad()
def run_evaluation(job: EvalJob, out_dir: Path | None = None) -> dict[str, float]:
    """Validation metrics over the whole split; eval outputs under `out_dir` when given."""
    model, val, cfg, step, perceptual, device = job.model, job.val, job.cfg, job.step, job.perceptual, job.device
    was_training = model.training
    model.eval()
    terms = [t for t in LOSS_TERMS if t != "perceptual" or perceptual is not None]
    weights = loss_weights(cfg.losses, step)
    per_example: dict[str, list[Tensor]] = defaultdict(list)
    writer = _EvalWriter(out_dir, cfg.eval.max_examples) if out_dir is not None else None
    has_other_person = val.num_persons > 1
    datasets = [val, val.with_pairing("same_image"), val.with_pairing("cross_person")]
    with fixed_noise(VALIDATION_SEED, device):
        for pair, own, cross in _aligned_batches(datasets, cfg.training.val_batch_size):
            pair, own, cross = pair.to(device), own.to(device), cross.to(device)
            rec = model(own.pose, own.appearance, mode="train")
            values = compute_terms(terms, own.target, rec, perceptual)
            values["total"] = weighted_total(weights, values, torch.zeros_like(values[terms[0]]))
            moved = model(pair.pose, pair.appearance, mode="transfer", prior=False)
            metrics = transfer_metrics(moved.image, pair.target)
            wrong = model(cross.pose, cross.appearance, mode="transfer", prior=False).image
            metrics["l1_wrong_appearance"] = (wrong - cross.target).abs().flatten(1).mean(1)  # (B,)
            metrics["appearance_gain"] = metrics["l1_wrong_appearance"] - metrics["l1"]
            if not has_other_person:  # no other person to take an appearance from: undefined, not 0
                metrics["l1_wrong_appearance"] = torch.full_like(metrics["l1"], float("nan"))
                metrics["appearance_gain"] = torch.full_like(metrics["l1"], float("nan"))
            if perceptual is not None:
                metrics["perceptual"] = perceptual(moved.image, pair.target)
            for name, v in values.items():
                per_example[m.val_loss(name)].append(v.float().cpu())
            for name, v in metrics.items():
                per_example[m.transfer(name)].append(v.float().cpu())
            if writer is not None and writer.wants_more:
                # Its own noise, forked, so the validation numbers do not depend on whether outputs are written.
                with fixed_noise(PRIOR_SEED + len(writer.rows), device):
                    prior = model(pair.pose, None, mode="sample").image
                outputs = {
                    "reconstruction": rec.image,
                    "transfer": moved.image,
                    "other_transfer": wrong,
                    "prior": prior,
                }
                writer.add(pair, cross.appearance_image, outputs, {k: v[-1] for k, v in per_example.items()})
    model.train(was_training)
    if writer is not None:
        writer.finish(step)
    return {name: float(torch.cat(chunks).mean()) for name, chunks in per_example.items()}


class _EvalWriter:
    """Writes per-example PNGs and collects per-example losses for index.json / losses.csv."""

    def __init__(self, out_dir: Path, max_examples: int) -> None:
        self.out_dir = out_dir
        self.max_examples = max_examples or None
        self.rows: list[dict[str, Any]] = []
        out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def wants_more(self) -> bool:
        return self.max_examples is None or len(self.rows) < self.max_examples

    def add(self, pair: Batch, other_appearance: Tensor, outputs: dict[str, Tensor], losses: dict[str, Tensor]) -> None:
        inputs = {"appearance": pair.appearance_image, "pose": pair.pose, "target": pair.target}
        tensors = {**inputs, **outputs, "other_appearance": other_appearance}
        images = {kind: to_uint8(tensors[kind]) for kind in IMAGE_KINDS}
        for i, key in enumerate(pair.keys):
            if self.max_examples is not None and len(self.rows) >= self.max_examples:
                return
            n = len(self.rows)
            row: dict[str, Any] = {"key": key}
            for kind, arr in images.items():
                name = f"{n:05d}_{kind}.png"
                cv2.imwrite(str(self.out_dir / name), cv2.cvtColor(arr[i], cv2.COLOR_RGB2BGR))
                row[kind] = name
            row["losses"] = {k: float(v[i]) for k, v in losses.items()}
            self.rows.append(row)

    def finish(self, step: int) -> None:
        index = {"step": step, "image_kinds": list(IMAGE_KINDS), "examples": self.rows}
        (self.out_dir / "index.json").write_text(json.dumps(index, indent=1))
        names = sorted({k for r in self.rows for k in r["losses"]})
        with open(self.out_dir / "losses.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["key", *names])
            for r in self.rows:
                w.writerow([r["key"], *(r["losses"][n] for n in names)])


def _read_png(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path}: missing or unreadable eval image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_eval_outputs(path: str | Path) -> EvalOutputs:
    """Read an `eval/epoch_NNNN/` directory back as arrays and per-example losses."""
    root = Path(path)
    index_file = root / "index.json"
    if not index_file.is_file():
        raise FileNotFoundError(f"{root}: no eval outputs (index.json missing)")
    index = json.loads(index_file.read_text())
    rows = index["examples"]
    images = {}
    for kind in index["image_kinds"]:
        frames = [_read_png(root / r[kind]) for r in rows]
        images[kind] = np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)
    names = sorted({k for r in rows for k in r["losses"]})
    losses = {n: np.array([r["losses"][n] for r in rows], dtype=np.float64) for n in names}
    return EvalOutputs(keys=[r["key"] for r in rows], images=images, losses=losses, meta={"step": index["step"]})
