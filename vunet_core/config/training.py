"""The `training` section: the training loop's length, batches, seed, device, arithmetic and schedule units.

:class:`TrainingConfig` holds the run name, epochs and steps per epoch, batch sizes, the
data-dependent init's batches, the seed, device and precision (fp32, bf16 autocast or auto),
memory format and CPU threads, whether schedule points are fractions of the run or steps, and
whether a progress bar is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from vunet_core.config.fields import check_fields, setting


@dataclass(frozen=True)
class TrainingConfig:
    name: str = setting("vunet", "run name, part of the run directory")
    num_epochs: int = setting(5, "epochs to train", min=1)
    steps_per_epoch: int = setting(0, "optimizer steps per epoch (0 = one pass over the train split)", min=0)
    batch_size: int = setting(8, "training batch size", min=1)
    val_batch_size: int = setting(16, "validation batch size", min=1)
    init_batches: int = setting(4, "batches for data-dependent init (init_batches * batch_size images)", min=1)
    seed: int = setting(0, "seed of weights, sampling and data order")
    device: str = setting("auto", "auto (CUDA when available), cpu or cuda", choices=("auto", "cpu", "cuda"))
    precision: str = setting(
        "auto",
        "training step arithmetic: fp32; bf16 (autocast: convolutions and matmuls in bf16, weights, "
        "optimizer and losses in fp32); auto = bf16 on a CPU with native bf16 (AVX512-BF16 or AMX), else fp32",
        choices=("auto", "fp32", "bf16"),
    )
    channels_last: bool = setting(False, "channels_last memory format")
    num_threads: int = setting(0, "torch CPU threads (0 = torch default)", min=0)
    schedule_units: str = setting(
        "fraction",
        "LR decay and loss ramp points: fractions of the run's steps (scale with the run) or absolute steps",
        choices=("fraction", "steps"),
    )
    progress: bool = setting(True, "show a progress bar")

    def __post_init__(self) -> None:
        check_fields(self)
