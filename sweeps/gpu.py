"""`resources: {gpu: auto}`: as many trials per GPU as fit, measured instead of guessed.

Before Ray starts, a training step of the baseline configuration runs on this machine's first CUDA device; its peak memory
(model, Adam state, activations, gradients) plus a safety margin and the CUDA context
each trial process holds gives the trials that fit on one GPU, and the fraction each
trial asks Ray for. Without a CUDA device `auto` means 0 (trials train on the CPU).
The measurement is this machine's: on a cluster whose driver has no GPU, give a fraction.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from sweeps.search import baseline_point, trial_cfg
from sweeps.spec import SweepSpec

MARGIN = 1.25  # peak memory x this: allocator fragmentation, a larger validation batch
CONTEXT_BYTES = 600 * 2**20  # what each trial process's CUDA context takes outside PyTorch's allocator
MAX_PER_GPU = 16  # more trials than this on one GPU only contend for its compute


@dataclasses.dataclass(frozen=True)
class Packing:
    fraction: float  # resources/gpu of each trial
    per_gpu: int  # trials that fit on one GPU
    line: str  # what was measured, for the terminal and the parent run


def pack(
    peak_bytes: int, total_bytes: int, margin: float = MARGIN, context_bytes: int = CONTEXT_BYTES
) -> tuple[float, int]:
    """(fraction per trial, trials per GPU) for trials that need `peak_bytes` on a GPU of `total_bytes`."""
    need = peak_bytes * margin + context_bytes
    per_gpu = max(1, min(MAX_PER_GPU, math.floor(total_bytes / need)))
    return math.floor(10_000 / per_gpu) / 10_000, per_gpu  # rounded down: per_gpu x fraction <= 1


def resolve_gpu(spec: SweepSpec, base_tree: Mapping[str, Any]) -> tuple[SweepSpec, Packing | None]:
    """The spec with `gpu` set when it says `auto` (else unchanged, None)."""
    if not spec.gpu_auto:
        return spec, None
    import torch

    if not torch.cuda.is_available():
        packing = Packing(0.0, 0, "resources/gpu auto: no CUDA device here, so 0 (trials train on the CPU)")
        return dataclasses.replace(spec, gpu=0.0, gpu_note=packing.line), packing
    from vunet_core import prepare_data, probe_step

    cfg = trial_cfg(base_tree, baseline_point(spec))
    peak = 0 if cfg.training.device == "cpu" else probe_step(cfg, prepare_data(cfg, progress=False), 1).peak_gpu_bytes
    if peak == 0:  # the trials' config keeps them on the CPU
        packing = Packing(0.0, 0, "resources/gpu auto: training/device is cpu, so 0")
        return dataclasses.replace(spec, gpu=0.0, gpu_note=packing.line), packing
    total = int(torch.cuda.get_device_properties(0).total_memory)
    fraction, per_gpu = pack(peak, total)
    line = (
        f"resources/gpu auto: a training step peaks at {peak / 2**30:.2f} GiB of {total / 2**30:.0f} GiB on "
        f"{torch.cuda.get_device_name(0)}; with x{MARGIN} and {CONTEXT_BYTES >> 20} MiB per process, "
        f"{per_gpu} trials fit per GPU: gpu {fraction:g} per trial"
    )
    return dataclasses.replace(spec, gpu=fraction, gpu_note=line), Packing(fraction, per_gpu, line)
