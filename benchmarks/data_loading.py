"""Data pipeline benchmark: generation speed, cache build time, per-batch load time vs. a training step.

    python benchmarks/data_loading.py [--sizes 64 128] [--batch-size 8] [--step-sizes 64] [--cache-dir DIR]

For each image size it generates the default people (48 identities x 12 poses),
builds the preprocessing cache, and times building shuffled, wrapped training
batches (``iterate_batches``) of the given size. The loading time is then put
against one full training step of the default (full-width) config, timed with the
training routine's own step (``vunet_core.training.probe_step``).
The issue's target: loading < 5 % of a step at 64 px on the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vunet_core.config import Config, config_from_tree
from vunet_core.data import Batch, iterate_batches, prepare_data
from vunet_core.data.prepare import ensure_synthetic
from vunet_core.training import probe_step


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def batch_ms(cfg: Config, batch_size: int, num_batches: int) -> tuple[float, Batch]:
    """Median milliseconds to build one shuffled training batch (cache already in memory)."""
    train = prepare_data(cfg, progress=False).train
    rng = np.random.default_rng(0)
    times: list[float] = []
    last: Batch | None = None
    while len(times) < num_batches:
        start = time.perf_counter()
        for batch in iterate_batches(train, batch_size, shuffle=True, rng=rng, wrap=True):
            times.append(time.perf_counter() - start)
            last = batch
            start = time.perf_counter()
    assert last is not None
    return 1000 * statistics.median(times), last


def step_ms(cfg: Config, repeats: int) -> float:
    """Mean milliseconds of one full training step (the routine's own `train_step`)."""
    return 1000 * probe_step(cfg, prepare_data(cfg, progress=False), repeats).seconds


def run_size(size: int, cache_dir: Path, args: argparse.Namespace) -> None:
    cfg = config_from_tree({"model": {"spatial_size": size}, "data": {"cache_dir": str(cache_dir)}})
    n = cfg.data.synthetic.num_identities * cfg.data.synthetic.poses_per_identity
    gen_s = _timed(lambda: ensure_synthetic(cfg, progress=False))
    cache_s = _timed(lambda: prepare_data(cfg, progress=False))
    reuse_s = _timed(lambda: prepare_data(cfg, progress=False))
    load, _ = batch_ms(cfg, args.batch_size, args.num_batches)
    print(f"{size:>4} px: generation {n / gen_s:7.0f} images/s ({n} images, {gen_s:.2f} s)")
    print(f"        cache build {cache_s:.2f} s, reuse {reuse_s * 1000:.0f} ms")
    print(f"        batch of {args.batch_size}: {load:.2f} ms")
    if size in args.step_sizes:
        step = step_ms(cfg, args.repeats)
        print(f"        measured VUNet step {step:.0f} ms -> loading = {100 * load / step:.3g} % of a step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--step-sizes", type=int, nargs="*", default=[64], help="sizes to time a model step at")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-batches", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: a fresh temporary directory")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            run_size(size, args.cache_dir or Path(tmp), args)


if __name__ == "__main__":
    main()
