"""Names of the metrics the per-epoch routine reports (`split/group/name`).

One list, so the sweep can reject an objective the routine never reports before
any compute is spent, and tests can check the routine reports exactly these.
"""

from __future__ import annotations

from vunet_core.config import LOSS_TERMS, Config

TRANSFER_METRICS = ("l1", "ssim", "l1_wrong_appearance", "appearance_gain")
TOTAL = "total"  # the weighted sum of the loss terms, beside the terms themselves


def train_loss(term: str) -> str:
    """Training batch mean of a loss term (or `total`) over the epoch."""
    return f"train/loss/{term}"


def train_weight(term: str) -> str:
    """A loss term's weight at the epoch's last step (ramps visible)."""
    return f"train/weight/{term}"


def val_loss(term: str) -> str:
    """A loss term (or `total`) on the validation reconstructions."""
    return f"val/loss/{term}"


def transfer(name: str) -> str:
    """A transfer metric on held-out people (TRANSFER_METRICS, or `perceptual`)."""
    return f"val/transfer/{name}"


TRANSFER_L1 = transfer("l1")  # the default sweep objective
TRAIN_LR = "train/lr"
TRAIN_IMG_PER_S = "perf/train_img_per_s"
DATA_FRACTION = "time/data_fraction"
EPOCH_S = "time/epoch_s"
FLOOR_COPY_APPEARANCE = "val/floor/copy_appearance_l1"  # constant per dataset
FLOOR_MEAN_IMAGE = "val/floor/mean_image_l1"  # constant per dataset
FLOOR_METRICS = (FLOOR_COPY_APPEARANCE, FLOOR_MEAN_IMAGE)


def reported_metrics(cfg: Config) -> list[str]:
    """Every metric key `train_epochs` puts in an epoch's metrics for this config."""
    names = [train_loss(t) for t in LOSS_TERMS if _trained(cfg, t)] + [train_loss(TOTAL)]
    names += [train_weight(t) for t in LOSS_TERMS] + [TRAIN_LR]
    names += [val_loss(t) for t in LOSS_TERMS if t != "perceptual" or _has_vgg(cfg)] + [val_loss(TOTAL)]
    names += [transfer(m) for m in TRANSFER_METRICS]
    if _has_vgg(cfg):
        names.append(transfer("perceptual"))
    names += list(FLOOR_METRICS)
    names += [EPOCH_S, DATA_FRACTION, TRAIN_IMG_PER_S]
    return names


def metric_directions() -> dict[str, str]:
    """Whether lower or higher is better, by metric suffix (for sweep defaults)."""
    return {transfer("ssim"): "max", transfer("appearance_gain"): "max", TRAIN_IMG_PER_S: "max"}


def _has_vgg(cfg: Config) -> bool:
    return bool(cfg.losses.perceptual.vgg_weights)


def _trained(cfg: Config, term: str) -> bool:
    t = getattr(cfg.losses, term)
    if t.ramped:
        return max(t.start_ramp_val or 0.0, t.end_ramp_val or 0.0) > 0
    return bool(t.weight > 0)
