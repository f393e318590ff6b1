"""Schedules written as fractions of the run scale with its length; absolute steps stay steps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vunet_core import ConfigError, resolve_config
from vunet_core.config import Config
from vunet_core.losses import loss_weights
from vunet_core.schedules import describe_schedules, in_steps, schedule_mapping, total_steps
from vunet_core.training import lr_at

RECIPE = {
    "training/num_epochs": 8,
    "training/steps_per_epoch": 60,
    "optimizer/lr_decay_begin": 0.00625,
    "losses/KL/start_ramp_it": 0.5,
    "losses/KL/end_ramp_it": 0.75,
}


def _cfg(**over: object) -> Config:
    return resolve_config([], {**RECIPE, **over})


def test_fractions_resolve_to_steps_of_the_run() -> None:
    cfg = _cfg()
    total = total_steps(cfg, num_train=1000)
    steps = in_steps(cfg, total)
    assert total == 480
    assert (steps.optimizer.lr_decay_begin, steps.optimizer.lr_decay_end) == (3, 480)
    assert (steps.losses.KL.start_ramp_it, steps.losses.KL.end_ramp_it) == (240, 360)
    assert steps.training.schedule_units == "steps"
    assert in_steps(steps, 480) == steps  # resolving twice changes nothing


def test_lr_and_kl_weight_match_at_the_same_fraction_of_a_10x_longer_run() -> None:
    short, long = _cfg(), _cfg(**{"training/num_epochs": 80})
    n, n10 = total_steps(short, 0), total_steps(long, 0)
    assert n10 == 10 * n
    s, s10 = in_steps(short, n), in_steps(long, n10)
    for fraction in (0.0, 0.1, 0.5, 0.6, 0.7, 0.75, 0.9):
        a, b = round(fraction * n), round(fraction * n10)
        assert lr_at(a, s.optimizer) == pytest.approx(lr_at(b, s10.optimizer), rel=1e-9, abs=1e-15)
        assert loss_weights(s.losses, a)["KL"] == pytest.approx(loss_weights(s10.losses, b)["KL"], rel=1e-9)
    # The LR decays to 0 only at the very end of the long run.
    assert all(lr_at(step, s10.optimizer) > 0 for step in range(0, n10 - 1, 7))
    assert lr_at(n10 - 1, s10.optimizer) > 0 and lr_at(n10, s10.optimizer) == 0.0


def test_steps_units_keep_absolute_steps_and_warn_when_the_run_is_longer() -> None:
    cfg = resolve_config(
        [],
        {
            "training/schedule_units": "steps",
            "training/num_epochs": 80,
            "training/steps_per_epoch": 60,
            "optimizer/lr_decay_begin": 3,
            "optimizer/lr_decay_end": 480,
            "losses/KL/start_ramp_it": 240,
            "losses/KL/end_ramp_it": 360,
        },
    )
    assert isinstance(cfg.optimizer.lr_decay_end, int)  # a step stays an int in rendered configs
    steps = in_steps(cfg, total_steps(cfg, 0))
    assert (steps.losses.KL.start_ramp_it, steps.optimizer.lr_decay_end) == (240, 480)
    lines = describe_schedules(cfg, 4800)
    assert lines[0].startswith(
        "optimizer LR decay 3-480 of 4800 steps (warning: the LR stays at lr_end for the last 90%"
    )
    assert lines[1] == "losses/KL ramp 240-360 of 4800 steps"


def test_mapping_names_old_and_new_steps() -> None:
    short, long = _cfg(), _cfg(**{"training/num_epochs": 80})
    assert schedule_mapping(short, 480, long, 4800) == [
        "optimizer LR decay 3-480 of 480 steps -> 30-4800 of 4800",
        "losses/KL ramp 240-360 of 480 steps -> 2400-3600 of 4800",
    ]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"losses/KL/end_ramp_it": 360},
            "losses/KL/end_ramp_it: got 360, expected a fraction of the run's steps in [0, 1]",
        ),
        ({"optimizer/lr_decay_end": 1.5}, "optimizer/lr_decay_end: got 1.5, expected a fraction"),
        (
            {"training/schedule_units": "steps", "optimizer/lr_decay_begin": 3, "losses/KL/start_ramp_it": 240.5},
            "losses/KL/start_ramp_it: got 240.5, expected a whole number of steps",
        ),
        (
            {"training/schedule_units": "epochs"},
            "training/schedule_units: got 'epochs', expected one of fraction, steps",
        ),
    ],
)
def test_schedule_points_out_of_their_units_are_errors(over: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _cfg(**over)


def test_the_shipped_gpu_recipe_is_the_reference_100k_step_schedule() -> None:
    root = Path(__file__).resolve().parents[2]
    cfg = resolve_config([str(root / "configs" / "gpu_128.yaml")], {})
    assert (cfg.model.spatial_size, cfg.model.box_factor, cfg.model.bottleneck_factor) == (128, 1, 1)
    total = total_steps(cfg, num_train=10**6)
    steps = in_steps(cfg, total)
    assert total == 100_000
    assert (steps.optimizer.lr_decay_begin, steps.optimizer.lr_decay_end) == (1000, 100_000)
    assert (steps.losses.KL.start_ramp_it, steps.losses.KL.end_ramp_it) == (50_000, 75_000)
    assert cfg.losses.perceptual.weight == 5.0 and cfg.losses.color_L1.weight == 0.0  # the original objective
