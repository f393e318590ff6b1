"""Step schedules of a run: the LR decay and the loss ramps, resolved to the run's length.

A config writes its schedule points (``optimizer/lr_decay_begin``/``end`` and each ramped
term's ``start_ramp_it``/``end_ramp_it``) either as fractions of the run's optimizer
steps (``training/schedule_units: fraction``, the default) or as absolute steps
(``steps``, the edflow convention of the reference). Training works in steps: it calls
:func:`in_steps` once, when the run's length is known, and every weight and LR is then a
pure function of the global step (spec §7.3). Fractions make a config carry over to a
run of another length: the reference's 1k / 100k LR decay and 50k-75k KL ramp of a 100k
step run are 0.01 / 1.0 and 0.5-0.75, and stay at those fractions in a run of any length.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

from vunet_core.config import LOSS_TERMS, Config, LossTerm

T = TypeVar("T", bound=LossTerm)


def total_steps(cfg: Config, num_train: int) -> int:
    """Optimizer steps of the whole run: epochs x steps per epoch (one pass if unset)."""
    per_epoch = cfg.training.steps_per_epoch or math.ceil(num_train / cfg.training.batch_size)
    return cfg.training.num_epochs * per_epoch


def to_step(value: float, cfg: Config, total: int) -> int:
    """One schedule point as a step of a run of `total` steps."""
    return round(value * total) if cfg.training.schedule_units == "fraction" else int(value)


def in_steps(cfg: Config, total: int) -> Config:
    """`cfg` with every schedule point as an absolute step of a `total`-step run (units `steps`)."""

    def term(t: T) -> T:
        if t.start_ramp_it is None or t.end_ramp_it is None:
            return t
        return dataclasses.replace(
            t, start_ramp_it=to_step(t.start_ramp_it, cfg, total), end_ramp_it=to_step(t.end_ramp_it, cfg, total)
        )

    opt = cfg.optimizer
    optimizer = dataclasses.replace(
        opt, lr_decay_begin=to_step(opt.lr_decay_begin, cfg, total), lr_decay_end=to_step(opt.lr_decay_end, cfg, total)
    )
    terms: dict[str, Any] = {name: term(getattr(cfg.losses, name)) for name in LOSS_TERMS}
    losses = dataclasses.replace(cfg.losses, **terms)
    training = dataclasses.replace(cfg.training, schedule_units="steps")
    return dataclasses.replace(cfg, optimizer=optimizer, losses=losses, training=training)


def windows(cfg: Config, total: int) -> dict[str, tuple[int, int]]:
    """Name -> (first, last) step of each schedule in use: `optimizer LR decay`, `losses/<term> ramp`."""
    steps = in_steps(cfg, total)
    out = {"optimizer LR decay": (int(steps.optimizer.lr_decay_begin), int(steps.optimizer.lr_decay_end))}
    for name in LOSS_TERMS:
        t = getattr(steps.losses, name)
        if t.start_ramp_it is not None and t.end_ramp_it is not None:
            out[f"losses/{name} ramp"] = (int(t.start_ramp_it), int(t.end_ramp_it))
    return out


def describe_schedules(cfg: Config, total: int) -> list[str]:
    """One line per schedule, in the run's steps, with a warning where absolute steps miss the run."""
    lines = []
    for name, (a, b) in windows(cfg, total).items():
        line = f"{name} {a}-{b} of {total} steps"
        if cfg.training.schedule_units == "steps":
            line += _steps_warning(name, a, b, total)
        lines.append(line)
    return lines


def schedule_mapping(source: Config, source_total: int, cfg: Config, total: int) -> list[str]:
    """`losses/KL ramp 240-360 of 480 steps -> 12000-18000 of 24000`, one line per schedule."""
    before, after = windows(source, source_total), windows(cfg, total)
    lines = []
    for name, (a, b) in after.items():
        was = before.get(name)
        head = f"{name} {was[0]}-{was[1]} of {source_total} steps -> " if was else f"{name} "
        tail = _steps_warning(name, a, b, total) if cfg.training.schedule_units == "steps" else ""
        lines.append(f"{head}{a}-{b} of {total}{tail}")
    return lines


def _steps_warning(name: str, a: int, b: int, total: int) -> str:
    """Why an absolute-step schedule does not fit a run of `total` steps ('' if it does)."""
    if a >= total:
        return " (warning: starts after the run's last step; write it as a fraction to scale it)"
    if name.startswith("optimizer") and b < 0.9 * total:
        return (
            f" (warning: the LR stays at lr_end for the last {1 - b / total:.0%} of the run; "
            "training/schedule_units fraction scales it with the run)"
        )
    return ""
