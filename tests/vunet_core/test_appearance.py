"""Appearance transfer: the validation routine's appearance gain, and a model that learns it.

The appearance gain (`val/transfer/appearance_gain`) is the transfer L1 with another
person's appearance minus the L1 with the right one. It must be 0 for a model that
ignores appearance and positive for one whose output follows the appearance input;
and a real VUNet trained on two people who differ only in shirt colour must dress
each pose in the shirt of whoever's appearance it is given.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from vunet_core.config import resolve_config
from vunet_core.data import prepare_data
from vunet_core.data.index import DatasetIndex, write_project_index
from vunet_core.data.people import make_identity, make_pose
from vunet_core.data.render import render_person
from vunet_core.evaluation import evaluate, load_eval_outputs, reference_floors
from vunet_core.model import VUNet, VUNetOutput
from vunet_core.training import train_epochs


class IgnoresAppearance(nn.Module):
    """A real tiny VUNet whose appearance input is zeroed inside: a pose-only model."""

    def __init__(self, model: VUNet) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, pose: Tensor, appearance: Tensor | None = None, mode: str = "train", *, prior: bool = True
    ) -> VUNetOutput:
        blank = None if appearance is None else torch.zeros_like(appearance)
        return self.model(pose, blank, mode, prior=prior)


class CopiesCropColour(nn.Module):
    """Outputs the mean colour of the appearance crops' present parts everywhere: pure appearance."""

    def forward(
        self, pose: Tensor, appearance: Tensor | None = None, mode: str = "train", *, prior: bool = True
    ) -> VUNetOutput:
        assert appearance is not None
        b = appearance.shape[0]
        parts = appearance.reshape(b, -1, 3, *appearance.shape[-2:])  # (B, 8, 3, Sc, Sc)
        present = (parts != 0).any(dim=2, keepdim=True).float()  # missing parts are exact zeros
        colour = (parts * present).sum(dim=(1, 3, 4)) / present.sum(dim=(1, 3, 4)).clamp(min=1)  # (B, 3)
        image = colour[:, :, None, None].expand(-1, -1, *pose.shape[-2:])
        latent = {"1x1": torch.zeros(b, 1, 1, 1)}
        return VUNetOutput(image=image, q_means=latent, p_means=latent, samples=latent)


def _eval_setup(tiny_overrides: dict[str, Any]) -> tuple[Any, Any]:
    cfg = resolve_config([], {**tiny_overrides, "model/posterior_feedback": "mean"})
    return cfg, prepare_data(cfg, progress=False)


def test_gain_is_zero_when_the_output_ignores_appearance(tiny_overrides: dict[str, Any]) -> None:
    cfg, splits = _eval_setup(tiny_overrides)
    torch.manual_seed(0)
    vunet = VUNet(cfg.model)
    batch = splits.train.batch(np.arange(4))
    vunet.data_dependent_init(batch.pose, batch.appearance)
    metrics = evaluate(IgnoresAppearance(vunet), splits.val, cfg, 0, None, torch.device("cpu"))  # type: ignore[arg-type]
    assert metrics["val/transfer/l1"] > 0.05  # it is a real, imperfect prediction ...
    assert metrics["val/transfer/l1_wrong_appearance"] == pytest.approx(metrics["val/transfer/l1"], abs=1e-6)
    assert metrics["val/transfer/appearance_gain"] == pytest.approx(0.0, abs=1e-6)  # ... that transfers nothing


def test_gain_is_positive_when_the_output_follows_appearance(tiny_overrides: dict[str, Any]) -> None:
    cfg, splits = _eval_setup(tiny_overrides)
    metrics = evaluate(CopiesCropColour(), splits.val, cfg, 0, None, torch.device("cpu"))  # type: ignore[arg-type]
    gain = metrics["val/transfer/appearance_gain"]
    assert gain > 0.02, metrics
    assert gain == pytest.approx(metrics["val/transfer/l1_wrong_appearance"] - metrics["val/transfer/l1"], rel=1e-5)


def test_reference_floors_are_model_free_errors_of_the_split(tiny_overrides: dict[str, Any]) -> None:
    _, splits = _eval_setup(tiny_overrides)
    floors = reference_floors(splits.train, splits.val)
    val = splits.val.batch(np.arange(len(splits.val)))
    copy = float((val.appearance_image - val.target).abs().mean())
    mean_train = torch.from_numpy(splits.train.mean_image())
    assert floors["val/floor/copy_appearance_l1"] == pytest.approx(copy, rel=1e-5)
    assert floors["val/floor/mean_image_l1"] == pytest.approx(float((mean_train - val.target).abs().mean()), rel=1e-5)
    assert 0.0 < floors["val/floor/copy_appearance_l1"] < 2.0


# --------------------------------------------------------------------------- a VUNet learns to transfer

SHIRTS = {"red": (225, 25, 25), "blue": (25, 25, 225)}
SIZE, POSES, VAL_POSES = 32, 10, 2


def _two_people(root: Path) -> Path:
    """Two people identical but for the shirt (red / blue), drawn in the same poses."""
    base = dataclasses.replace(
        make_identity(0, 0), pattern="plain", long_sleeves=True, trousers=(90, 90, 90), shorts=False
    )
    paths, persons, train, joints = [], [], [], []
    for name, shirt in SHIRTS.items():
        ident = dataclasses.replace(base, shirt=shirt)
        (root / name).mkdir(parents=True)
        for k in range(POSES):
            pose = make_pose(0, 0, k, base, SIZE)  # the same pose for both people
            rgb = render_person(ident, pose, SIZE, np.random.default_rng([k]))  # same background too
            cv2.imwrite(str(root / name / f"{k:02d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            valid = (pose.joints >= 0).all(axis=1, keepdims=True)
            paths.append(f"{name}/{k:02d}.png")
            persons.append(name)
            train.append(k < POSES - VAL_POSES)
            joints.append(np.where(valid, pose.joints / SIZE, -1.0))
    index = DatasetIndex(root / "index.json", paths, persons, np.array(train), np.array(joints, np.float32), {})
    write_project_index(root / "index.json", index)
    return root


def _shirt_colour(image: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Mean RGB inside the torso polygon (stickman channel 2), eroded away from its edges."""
    mask = cv2.erode((pose[..., 2] > 200).astype(np.uint8), np.ones((3, 3), np.uint8))
    assert mask.sum() >= 4, "torso too small to measure"
    return image[mask.astype(bool)].astype(np.float64).mean(axis=0)


def _closest_shirt(colour: np.ndarray) -> str:
    return min(SHIRTS, key=lambda n: float(np.abs(colour - np.array(SHIRTS[n])).sum()))


def test_a_tiny_vunet_dresses_each_pose_in_the_appearance_persons_shirt(
    tiny_overrides: dict[str, Any], tmp_path: Path
) -> None:
    data = _two_people(tmp_path / "people")
    cfg = resolve_config(
        [],
        {
            **tiny_overrides,
            "data/root": str(data),
            "data/person_id_from": "index",
            "training/steps_per_epoch": 400,
            "training/num_epochs": 1,
            "training/batch_size": 4,
            "model/drop_prob": 0.0,
            "losses/KL/weight": 1e-3,
            "optimizer/lr_decay_begin": 0.75,  # step 300 of 400
            "optimizer/lr_decay_end": 1.0,
            "model/posterior_feedback": "mean",
        },
    )
    result = list(train_epochs(cfg, tmp_path / "run"))[-1]
    assert result.eval_dir is not None
    out = load_eval_outputs(result.eval_dir)
    assert len(out) == 2 * VAL_POSES
    for i in range(len(out)):
        own = _closest_shirt(_shirt_colour(out.images["target"][i], out.images["pose"][i]))
        other = "blue" if own == "red" else "red"
        # The right person's appearance dresses the pose in their shirt ...
        assert _closest_shirt(_shirt_colour(out.images["transfer"][i], out.images["pose"][i])) == own
        # ... and swapping in the other person's appearance swaps the shirt colour.
        assert _closest_shirt(_shirt_colour(out.images["other_transfer"][i], out.images["pose"][i])) == other
    assert result.metrics["val/transfer/appearance_gain"] > 0.01, result.metrics
