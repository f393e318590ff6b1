"""The `losses` section: one weighted, optionally ramped term per loss (spec §6), and the VGG19 tap settings.

:class:`LossTerm` is a weight or a ramp between two weights over a window of the run (all four
ramp keys or none; a ``log`` ramp needs weights > 0); :class:`PerceptualTerm` adds the VGG19
weights file and the per-tap feature and Gram weights. :class:`LossesConfig` holds the terms named
in :data:`LOSS_TERMS`; its defaults are the CPU recipe (``color_L1`` in place of the perceptual
term, whose weights cannot ship; the comment in ``vunet_core/config/__init__.py`` says why).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vunet_core.config.fields import FieldError, check_fields, schedule_setting, setting
from vunet_core.paths import RAMP_KEYS

LOSS_TERMS = ("color_L1", "color_L2", "color_gradient", "KL", "perceptual")
NUM_VGG_TAPS = 6


@dataclass(frozen=True)
class LossTerm:
    weight: float = setting(0.0, "constant weight, used when no ramp is set", min=0.0)
    start_ramp_it: float | None = schedule_setting(None, "where the ramp starts (all four ramp keys set = ramped)")
    end_ramp_it: float | None = schedule_setting(
        None, "where the ramp ends; <= start_ramp_it is a step at start_ramp_it"
    )
    start_ramp_val: float | None = setting(None, "weight before start_ramp_it", min=0.0)
    end_ramp_val: float | None = setting(None, "weight after end_ramp_it", min=0.0)
    ramp_shape: str = setting("linear", "interpolation inside the ramp", choices=("linear", "log"))

    # A term's ramp rules live here: all four ramp keys or none; `log` needs weights > 0; a
    # `ramped` term ignores `weight`. A layer setting only `weight` makes the term constant
    # (vunet_core.paths.merge_trees / apply_overrides clear the ramp below it).
    def __post_init__(self) -> None:
        check_fields(self)
        set_keys = [k for k in RAMP_KEYS if getattr(self, k) is not None]
        if set_keys and len(set_keys) != len(RAMP_KEYS):
            missing = [k for k in RAMP_KEYS if k not in set_keys]
            raise FieldError("", f"a ramp needs all of {', '.join(RAMP_KEYS)}; missing {', '.join(missing)}")
        if self.ramp_shape == "log" and self.ramped and min(self.start_ramp_val or 0, self.end_ramp_val or 0) <= 0:
            raise FieldError("ramp_shape", "log needs start_ramp_val and end_ramp_val > 0")

    @property
    def ramped(self) -> bool:
        return self.start_ramp_it is not None


@dataclass(frozen=True)
class PerceptualTerm(LossTerm):
    vgg_weights: str = setting("", "VGG19 state dict file (torchvision layout, Caffe ILSVRC weights); never downloaded")
    feature_weights: list[float] = setting([1.0] * NUM_VGG_TAPS, "weights of input, relu1_2 ... relu5_2")
    gram_weights: list[float] = setting([0.0] * NUM_VGG_TAPS, "Gram-matrix weights per tap (0 = off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("feature_weights", "gram_weights"):
            values = getattr(self, key)
            if len(values) != NUM_VGG_TAPS or min(values) < 0:
                raise FieldError(key, f"got {values}, expected {NUM_VGG_TAPS} numbers >= 0")


@dataclass(frozen=True)
class LossesConfig:
    color_L1: LossTerm = field(default_factory=lambda: LossTerm(weight=637.5), metadata={"doc": "mean |x_hat - x|"})
    color_L2: LossTerm = field(default_factory=LossTerm, metadata={"doc": "mean (x_hat - x)^2"})
    color_gradient: LossTerm = field(default_factory=LossTerm, metadata={"doc": "image-gradient magnitude L1"})
    KL: LossTerm = field(
        default_factory=lambda: LossTerm(
            weight=1.0, start_ramp_it=0.5, end_ramp_it=0.75, start_ramp_val=1e-6, end_ramp_val=1.0
        ),
        metadata={"doc": "KL(q || p) of the unit-variance latents"},
    )
    perceptual: PerceptualTerm = field(default_factory=PerceptualTerm, metadata={"doc": "VGG19 feature loss"})
