"""`resources: {gpu: auto}`: measured packing of trials onto a GPU; 0 without one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sweeps.gpu import CONTEXT_BYTES, MAX_PER_GPU, pack, resolve_gpu
from sweeps.spec import SpecError, load_spec

SMOKE = Path(__file__).resolve().parents[2] / "search_spaces" / "smoke.yaml"
GIB = 2**30


def test_pack_fits_as_many_trials_as_the_measured_peak_allows() -> None:
    fraction, per_gpu = pack(10 * GIB, 80 * GIB)  # 12.5 GiB + the context each: 6 fit
    assert per_gpu == 6 and fraction == 0.1666 and per_gpu * fraction <= 1
    assert pack(60 * GIB, 80 * GIB) == (1.0, 1)  # does not fit twice: a whole GPU
    assert pack(200 * GIB, 80 * GIB) == (1.0, 1)  # does not fit at all: still one (training will say so)
    assert pack(10 * 2**20, 139 * GIB)[1] == MAX_PER_GPU  # tiny trials: capped, they would only contend
    assert pack(0, 10 * CONTEXT_BYTES)[1] == 10  # the CUDA context alone bounds the count


def test_auto_is_read_from_the_sweep_file_and_bad_values_name_it() -> None:
    spec = load_spec(SMOKE, {"resources/gpu": "auto"})
    assert spec.gpu_auto and spec.gpu == 0.0
    assert not load_spec(SMOKE).gpu_auto
    with pytest.raises(SpecError, match=r"resources/gpu: got 'lots', expected a fraction .* or auto"):
        load_spec(SMOKE, {"resources/gpu": "lots"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU rule")
def test_auto_without_a_cuda_device_is_zero_and_says_so() -> None:
    spec = load_spec(SMOKE, {"resources/gpu": "auto"})
    resolved, packing = resolve_gpu(spec, spec.base_tree())
    assert packing is not None and resolved.gpu == 0.0 and packing.per_gpu == 0
    assert resolved.gpu_note == "resources/gpu auto: no CUDA device here, so 0 (trials train on the CPU)"
    plain = load_spec(SMOKE)
    assert resolve_gpu(plain, plain.base_tree()) == (plain, None)  # a number is left as given
