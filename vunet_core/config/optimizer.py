"""The `optimizer` section: Adam's settings and the linear learning-rate decay (the original's recipe).

:class:`OptimizerConfig` holds the learning rate, where its linear decay begins and ends (schedule
points: fractions of the run or steps, per ``training/schedule_units``; their order is checked by
:class:`~vunet_core.config.Config`, once both are in one unit), Adam's betas and epsilon, and
optional gradient-norm clipping.
"""

from __future__ import annotations

from dataclasses import dataclass

from vunet_core.config.fields import check_fields, schedule_setting, setting


@dataclass(frozen=True)
class OptimizerConfig:
    lr: float = setting(1e-3, "Adam learning rate before the decay", min=0.0)
    lr_decay_begin: float = schedule_setting(0.01, "where the linear LR decay starts")
    lr_decay_end: float = schedule_setting(1.0, "where the LR reaches lr_end")
    lr_end: float = setting(0.0, "LR after lr_decay_end", min=0.0)
    beta1: float = setting(0.5, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = setting(0.9, "Adam beta2", min=0.0, max=0.999999)
    eps: float = setting(1e-8, "Adam epsilon", min=0.0)
    grad_clip_norm: float = setting(0.0, "clip the gradient norm to this value (0 = off, as the original)", min=0.0)

    def __post_init__(self) -> None:
        check_fields(self)
