"""The whole configuration: :class:`Config`, the root of the config tree, and the rules that span sections.

A :class:`Config` holds one instance of each section (model, data, losses, optimizer, training,
eval). Each section checked itself when it was built; what needs two sections is checked here:
every schedule point in use (:func:`schedule_points`: the LR decay and each ramped loss term's
window) must fit ``training/schedule_units`` (a fraction in [0, 1] or a whole step), and the LR
decay must not end before it begins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vunet_core.config.data import DataConfig
from vunet_core.config.evaluation import EvalConfig
from vunet_core.config.fields import ConfigError
from vunet_core.config.losses import LOSS_TERMS, LossesConfig
from vunet_core.config.model import ModelConfig
from vunet_core.config.optimizer import OptimizerConfig
from vunet_core.config.training import TrainingConfig


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"doc": "architecture"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"doc": "dataset and pairing"})
    losses: LossesConfig = field(default_factory=LossesConfig, metadata={"doc": "loss terms and weights"})
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig, metadata={"doc": "Adam and LR schedule"})
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"doc": "training loop"})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"doc": "evaluation outputs"})

    def __post_init__(self) -> None:
        """A Config that exists is valid: each section checked itself when built; what spans
        sections (schedule points against training/schedule_units, then the LR decay's order) is
        checked here."""
        for path, value in schedule_points(self).items():
            _check_schedule_point(path, value, self.training.schedule_units)
        if self.optimizer.lr_decay_end < self.optimizer.lr_decay_begin:  # compared once both are in one unit
            raise ConfigError("optimizer/lr_decay_end: must be >= optimizer/lr_decay_begin")


def schedule_points(cfg: Config) -> dict[str, float]:
    """`/`-path -> value of every schedule point in use (LR decay, each ramped term's window)."""
    points: dict[str, float] = {
        "optimizer/lr_decay_begin": cfg.optimizer.lr_decay_begin,
        "optimizer/lr_decay_end": cfg.optimizer.lr_decay_end,
    }
    for name in LOSS_TERMS:
        term = getattr(cfg.losses, name)
        if term.start_ramp_it is not None and term.end_ramp_it is not None:
            points[f"losses/{name}/start_ramp_it"] = term.start_ramp_it
            points[f"losses/{name}/end_ramp_it"] = term.end_ramp_it
    return points


def _check_schedule_point(path: str, value: float, units: str) -> None:
    if units == "fraction" and not 0 <= value <= 1:
        raise ConfigError(
            f"{path}: got {value!r}, expected a fraction of the run's steps in [0, 1] "
            "(training/schedule_units is fraction; set it to steps for absolute steps)"
        )
    if units == "steps" and value != int(value):
        raise ConfigError(f"{path}: got {value!r}, expected a whole number of steps (training/schedule_units is steps)")
