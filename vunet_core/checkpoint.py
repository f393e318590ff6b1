"""Save and restore a training state: model, optimizer, step, epoch, RNG, config.

A checkpoint holds everything needed to continue a run exactly (spec §7.3): the
model state (including the data-dependent-init flag, so restoring never re-runs
DDI), the Adam state, the global step (the LR and loss-weight schedules are pure
functions of it), the epoch and how many steps of it were done, the torch RNG
states and the fully resolved config as YAML. Files are written atomically (a
temporary file renamed into place) so an interrupted save never leaves a broken
checkpoint; loading uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from vunet_core.config import Config, ConfigError, config_from_tree, render_config

CHECKPOINT_NAME = "last.pt"
# model/ settings that shape the tensors: a checkpoint only loads into a model built with its values.
ARCHITECTURE_KEYS = (
    "spatial_size",
    "box_factor",
    "bottleneck_factor",
    "base_channels",
    "max_channels",
    "appearance_input",
)


@dataclass
class TrainingState:
    """What a checkpoint restores besides the model and optimizer tensors."""

    step: int
    epoch: int  # epochs fully completed
    steps_into_epoch: int  # optimizer steps already done in epoch `epoch + 1`
    config: Config


def save_checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, state: TrainingState
) -> Path:
    """Write the checkpoint atomically; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": state.step,
        "epoch": state.epoch,
        "steps_into_epoch": state.steps_into_epoch,
        "config_yaml": render_config(state.config),
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict; a clear ConfigError when the file is missing or unreadable."""
    if path.is_dir():
        path = find_checkpoint(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise ConfigError(f"checkpoint {path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or "model" not in payload or "config_yaml" not in payload:
        raise ConfigError(f"checkpoint {path}: not a vunet checkpoint (no model/config inside)")
    return dict(payload)


def checkpoint_config(payload: dict[str, Any]) -> Config:
    """The resolved config stored in a checkpoint.

    Checkpoints written before `training/schedule_units` existed hold absolute steps;
    those written before `training/precision` have `training/bf16` (true: bf16, false: fp32).
    """
    tree = yaml.safe_load(payload["config_yaml"])
    training = tree.setdefault("training", {})
    training.setdefault("schedule_units", "steps")
    if "bf16" in training:
        training.setdefault("precision", "bf16" if training.pop("bf16") else "fp32")
    return config_from_tree(tree)


def check_same_architecture(cfg: Config, saved: Config, source: Path) -> None:
    """ConfigError naming the first architecture setting of `cfg` that differs from the checkpoint's `saved`.

    Dropout, temperature and posterior feedback may change; the settings in
    :data:`ARCHITECTURE_KEYS` may not (the checkpoint's tensors would not fit the model).
    """
    for key in ARCHITECTURE_KEYS:
        new, old = getattr(cfg.model, key), getattr(saved.model, key)
        if new != old:
            raise ConfigError(
                f"model/{key}: got {new!r}, but checkpoint {source} has {old!r}; the architecture "
                "(model/" + ", ".join(ARCHITECTURE_KEYS) + ") cannot change when continuing or evaluating a run"
            )


def restore(
    payload: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, restore_rng: bool = True
) -> TrainingState:
    """Load tensors into `model`/`optimizer` (and the RNG) and return the counters."""
    model.load_state_dict(payload["model"])
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if restore_rng:
        torch.set_rng_state(payload["rng_torch"])
        if torch.cuda.is_available() and payload.get("rng_cuda"):
            torch.cuda.set_rng_state_all(payload["rng_cuda"])
    return TrainingState(
        step=int(payload["step"]),
        epoch=int(payload["epoch"]),
        steps_into_epoch=int(payload.get("steps_into_epoch", 0)),
        config=checkpoint_config(payload),
    )


def drop_optimizer_state(path: Path) -> int:
    """Rewrite a checkpoint as model weights only (it can be evaluated, not continued); bytes freed."""
    before = path.stat().st_size
    payload = read_checkpoint(path)
    if payload.get("optimizer") is None:
        return 0
    payload["optimizer"] = None
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return before - path.stat().st_size


def find_checkpoint(run_or_file: Path) -> Path:
    """A run directory's last checkpoint, or the file itself."""
    if run_or_file.is_dir():
        for candidate in (run_or_file / "checkpoints" / CHECKPOINT_NAME, run_or_file / CHECKPOINT_NAME):
            if candidate.is_file():
                return candidate
        raise ConfigError(f"{run_or_file}: no checkpoint found (expected checkpoints/{CHECKPOINT_NAME})")
    return run_or_file
