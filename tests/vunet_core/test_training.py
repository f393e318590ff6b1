"""Per-epoch routine: metric keys, learning, exact resume, divergence, eval outputs."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from vunet_core.checkpoint import checkpoint_config, drop_optimizer_state
from vunet_core.config import ConfigError, render_config, resolve_config
from vunet_core.evaluation import IMAGE_KINDS, load_eval_outputs
from vunet_core.metrics import reported_metrics
from vunet_core.schedules import in_steps
from vunet_core.training import DivergedError, evaluate_checkpoint, lr_at, resolve_precision, train_epochs


def test_two_epochs_report_documented_metrics_and_write_outputs(tiny_overrides: dict[str, Any], tmp_path: Path) -> None:
    cfg = resolve_config([], tiny_overrides)
    results = list(itertools.islice(train_epochs(cfg, tmp_path / "run"), 2))
    assert [r.epoch for r in results] == [1, 2]
    assert [r.step for r in results] == [3, 6]
    for r in results:
        assert set(r.metrics) == set(reported_metrics(cfg))
        assert all(math.isfinite(v) for v in r.metrics.values())
        assert r.sample_grid.is_file() and r.checkpoint.is_file()
        assert 0.0 <= r.metrics["val/transfer/ssim"] <= 1.0
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    assert (tmp_path / "run" / "config.yaml").is_file()

    eval_dir = results[-1].eval_dir
    assert eval_dir is not None
    loaded = load_eval_outputs(eval_dir)
    num_val = 2 * 4  # validation people x poses, one transfer pair per validation image
    assert len(loaded) == num_val
    for kind in IMAGE_KINDS:
        assert loaded.images[kind].shape == (num_val, 32, 32, 3) and loaded.images[kind].dtype == np.uint8
    # per-example losses read back average to the epoch metric
    assert loaded.losses["val/transfer/l1"].mean() == pytest.approx(results[-1].metrics["val/transfer/l1"], rel=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_continues_exactly(tiny_overrides: dict[str, Any], tmp_path: Path, precision: str) -> None:
    cfg = resolve_config([], {**tiny_overrides, "training/precision": precision})
    straight = list(train_epochs(cfg, tmp_path / "a"))
    first = next(iter(train_epochs(cfg, tmp_path / "b")))  # stopped after epoch 1 of the same run
    resumed = list(train_epochs(cfg, tmp_path / "b", resume=first.checkpoint))
    assert [r.epoch for r in resumed] == [2]
    for key in ("train/loss/total", "val/loss/total", "val/transfer/l1", "val/loss/KL"):
        assert resumed[0].metrics[key] == pytest.approx(straight[1].metrics[key], rel=1e-5, abs=1e-6), key


def test_a_weights_only_checkpoint_evaluates_but_refuses_to_continue(
    tiny_overrides: dict[str, Any], tmp_path: Path
) -> None:
    cfg = resolve_config([], tiny_overrides)
    first = next(iter(train_epochs(cfg, tmp_path / "run")))
    full_size = first.checkpoint.stat().st_size
    assert drop_optimizer_state(first.checkpoint) > 0 and first.checkpoint.stat().st_size < full_size
    assert drop_optimizer_state(first.checkpoint) == 0  # already slim
    _, metrics = evaluate_checkpoint(cfg, first.checkpoint)
    assert metrics["val/transfer/l1"] == pytest.approx(first.metrics["val/transfer/l1"], rel=1e-5)
    with pytest.raises(ConfigError, match="holds model weights only"):
        list(train_epochs(cfg, tmp_path / "run", resume=first.checkpoint))


def test_overfitting_a_few_images_lowers_reconstruction_error(tiny_overrides: dict[str, Any], tmp_path: Path) -> None:
    over = {
        **tiny_overrides,
        "data/synthetic/num_identities": 3,
        "data/synthetic/poses_per_identity": 2,
        "data/synthetic/val_identities": 1,
        "training/steps_per_epoch": 60,
        "training/num_epochs": 3,
        "training/batch_size": 4,
        "model/drop_prob": 0.0,
        "losses/KL/weight": 1e-4,
    }
    results = list(train_epochs(resolve_config([], over), tmp_path / "run"))
    l1 = [r.metrics["train/loss/color_L1"] for r in results]
    assert l1[-1] < 0.5 * l1[0], l1


def test_huge_learning_rate_diverges_naming_step_and_term(tiny_overrides: dict[str, Any], tmp_path: Path) -> None:
    cfg = resolve_config(
        [], {**tiny_overrides, "optimizer/lr": 1e12, "training/steps_per_epoch": 20, "losses/KL/weight": 1.0}
    )
    with pytest.raises(DivergedError, match=r"loss \w+ became non-finite .* at step \d+") as exc:
        list(train_epochs(cfg, tmp_path / "run"))
    assert exc.value.step >= 1 and exc.value.term in ("color_L1", "KL", "total")


def test_lr_schedule_matches_reference() -> None:
    cfg = in_steps(resolve_config([], {}), 100_000)  # the defaults, for the reference's 100k steps
    assert lr_at(0, cfg.optimizer) == 1e-3
    assert lr_at(1000, cfg.optimizer) == 1e-3
    assert lr_at(50500, cfg.optimizer) == pytest.approx(0.5e-3)
    assert lr_at(100000, cfg.optimizer) == 0.0
    assert lr_at(200000, cfg.optimizer) == 0.0


def test_precision_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"  # emulated bf16 would be slower than fp32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    assert resolve_precision("auto", cuda) == "fp32"  # not measured on CUDA: bf16 only when asked for


def test_checkpoints_from_before_precision_keep_how_they_trained(tiny_overrides: dict[str, Any]) -> None:
    tree = yaml.safe_load(render_config(resolve_config([], tiny_overrides)))
    for old, new in ((True, "bf16"), (False, "fp32")):
        training = {k: v for k, v in tree["training"].items() if k != "precision"}
        payload = {"config_yaml": yaml.safe_dump({**tree, "training": {**training, "bf16": old}})}
        assert checkpoint_config(payload).training.precision == new
