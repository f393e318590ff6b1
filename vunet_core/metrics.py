"""Names of the metrics the per-epoch routine reports (`split/group/name`).

One list, so the sweep can reject an objective the routine never reports before
any compute is spent, and tests can check the routine reports exactly these.
"""

from __future__ import annotations

from vunet_core.config import LOSS_TERMS, Config

TRANSFER_METRICS = ("l1", "ssim", "l1_wrong_appearance", "appearance_gain")
FLOOR_METRICS = ("val/floor/copy_appearance_l1", "val/floor/mean_image_l1")  # constant per dataset


def reported_metrics(cfg: Config) -> list[str]:
    """Every metric key `train_epochs` puts in an epoch's metrics for this config."""
    names = [f"train/loss/{t}" for t in LOSS_TERMS if _trained(cfg, t)] + ["train/loss/total"]
    names += [f"train/weight/{t}" for t in LOSS_TERMS] + ["train/lr"]
    names += [f"val/loss/{t}" for t in LOSS_TERMS if t != "perceptual" or _has_vgg(cfg)] + ["val/loss/total"]
    names += [f"val/transfer/{m}" for m in TRANSFER_METRICS]
    if _has_vgg(cfg):
        names.append("val/transfer/perceptual")
    names += list(FLOOR_METRICS)
    names += ["time/epoch_s", "time/data_fraction", "perf/train_img_per_s"]
    return names


def metric_directions() -> dict[str, str]:
    """Whether lower or higher is better, by metric suffix (for sweep defaults)."""
    return {"val/transfer/ssim": "max", "val/transfer/appearance_gain": "max", "perf/train_img_per_s": "max"}


def _has_vgg(cfg: Config) -> bool:
    return bool(cfg.losses.perceptual.vgg_weights)


def _trained(cfg: Config, term: str) -> bool:
    t = getattr(cfg.losses, term)
    if t.ramped:
        return max(t.start_ramp_val or 0.0, t.end_ramp_val or 0.0) > 0
    return bool(t.weight > 0)
