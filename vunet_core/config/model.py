"""The `model` section: the architecture's settings (spec §3) and the scale count they imply.

:class:`ModelConfig` holds the image side, the crop and bottleneck factors, the widths, dropout,
what the appearance encoder sees and how the posterior feeds the next scale; when built it checks
that the side is a power of 2 and that the appearance encoder keeps at least two scales.
:func:`num_scales_of` is the pose encoder's and decoder's scale count, used by the model too.
"""

from __future__ import annotations

from dataclasses import dataclass

from vunet_core.config.fields import FieldError, check_fields, setting


@dataclass(frozen=True)
class ModelConfig:
    spatial_size: int = setting(64, "image side S in pixels (power of 2, >= 16)", min=16)
    box_factor: int = setting(2, "crop side is S / 2**box_factor (64 px: 2 = DeepFashion, 1 = Market)", min=0)
    bottleneck_factor: int = setting(2, "encoders end at side 2**bottleneck_factor (spec §3)", min=0)
    base_channels: int = setting(32, "width of the first scale (original: 32)", min=1)
    max_channels: int = setting(128, "width cap, also the latent channels (original: 128)", min=1)
    drop_prob: float = setting(0.1, "dropout inside residual blocks during training", min=0.0, max=0.99)
    appearance_input: str = setting(
        "crops", "what F_phi sees: the 8 part crops or the whole image", choices=("crops", "image")
    )
    posterior_feedback: str = setting(
        "sample", "what feeds the next posterior scale (spec §4)", choices=("sample", "mean")
    )
    temperature: float = setting(1.0, "prior sampling temperature in sample mode", min=0.0)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.spatial_size & (self.spatial_size - 1):
            raise FieldError("spatial_size", f"got {self.spatial_size}, expected a power of 2 (16, 32, 64, 128, 256)")
        num_scales = num_scales_of(self)
        if num_scales - self.box_factor < 2:  # spec §3: n_F >= 2
            raise FieldError(
                "box_factor",
                f"got {self.box_factor}, the appearance encoder needs >= 2 scales "
                f"(1 + log2(spatial_size) - bottleneck_factor - box_factor = {num_scales - self.box_factor})",
            )


def num_scales_of(m: ModelConfig) -> int:
    """Scales of the pose encoder and decoder: 1 + log2(S) - bottleneck_factor (spec §3)."""
    return 1 + m.spatial_size.bit_length() - 1 - m.bottleneck_factor
