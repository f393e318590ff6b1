"""Validation-pass throughput: the part of every trial epoch that is not the training step.

    python benchmarks/validation.py [-b configs/cpu_32.yaml] [--threads 1] [--rounds 3] [--against DIR]

Times one epoch's validation as the training routine runs it: ``evaluate`` over the whole
validation split (per pair: the reconstruction with its losses, the transfer and the transfer
with another person's appearance) and the epoch's sample grid, on the config's generated data,
with a freshly initialized model (DDI on the first training images). ``--threads``
defaults to 1, what each of the default sweep's two concurrent trials gets.

``--against DIR`` imports a second checkout of the project (e.g. ``git worktree add /tmp/main
main``) into the same process, gives its model the same weights and times the two in
alternating rounds, so the ratio is measured under the same load; it also prints the largest
difference between the two checkouts' validation metrics.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import ROOT, import_project  # noqa: E402  (the sibling benchmark's checkout loader)

MODULES = ("vunet_core.config", "vunet_core.data", "vunet_core.model", "vunet_core.evaluation", "vunet_core.grids")


class Checkout:
    """One checkout's model and validation routine on shared data."""

    def __init__(self, label: str, mods: dict[str, ModuleType], tree: dict[str, Any], splits: Any) -> None:
        self.label, self.mods, self.splits = label, mods, splits
        self.cfg = mods["config"].config_from_tree(tree)  # each checkout builds its own Config
        torch.manual_seed(0)
        self.model = mods["model"].VUNet(self.cfg.model)
        n = self.cfg.training.init_batches * self.cfg.training.batch_size
        batch = splits.train.batch(np.arange(min(n, len(splits.train))))
        self.model.data_dependent_init(batch.pose, batch.appearance)
        self.times: list[float] = []
        self.grid_times: list[float] = []
        self.metrics: dict[str, float] = {}

    def run(self) -> None:
        device = torch.device("cpu")
        start = time.perf_counter()
        self.metrics = self.mods["evaluation"].evaluate(self.model, self.splits.val, self.cfg, 0, None, device)
        self.times.append(time.perf_counter() - start)
        start = time.perf_counter()
        self.mods["grids"].sample_grid(self.model, self.splits.val, self.cfg.eval.num_grid_examples, device)
        self.grid_times.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-b", "--base", type=Path, default=ROOT / "configs" / "cpu_32.yaml")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--against", type=Path, default=None, help="another checkout, timed alternately")
    parser.add_argument("--cache-dir", type=Path, default=None, help="generated data (default: a temporary dir)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    here = import_project(None, MODULES)
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(args.cache_dir or tmp)
        cfg = here["config"].resolve_config([args.base], {"data/cache_dir": cache})
        splits = here["data"].prepare_data(cfg, progress=True)
        tree = here["config"].config_to_tree(cfg)
        runs = [Checkout("this checkout", here, tree, splits)]
        if args.against is not None:
            other = Checkout(str(args.against), import_project(args.against, MODULES), tree, splits)
            other.model.load_state_dict(runs[0].model.state_dict())
            runs.append(other)
        for r in runs:
            r.run()  # warm-up: allocator, oneDNN kernel choice
        for i in range(args.rounds):
            for r in runs:
                r.run()
            print(f"  round {i + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    pairs = len(splits.val)
    print(
        f"validation pass of {args.base.name}: {pairs} pairs x 3 decodes, {cfg.eval.num_grid_examples}-row grid, "
        f"{torch.get_num_threads()} threads; medians over {args.rounds} rounds"
    )
    print(f"{'checkout':40s} {'evaluate s':>10s} {'decodes/s':>10s} {'grid s':>8s}")
    for r in runs:
        ev = statistics.median(r.times)
        print(f"{r.label[-40:]:40s} {ev:10.2f} {3 * pairs / ev:10.1f} {statistics.median(r.grid_times):8.2f}")
    if len(runs) == 2:
        a, b = runs
        speedup = statistics.median(b.times) / statistics.median(a.times)
        grid = statistics.median(b.grid_times) / statistics.median(a.grid_times)
        print(f"this checkout is {speedup:.2f}x as fast at evaluate, {grid:.2f}x at the grid")
        shared = sorted(a.metrics.keys() & b.metrics.keys())
        for k in shared:
            print(f"  {k:40s} {a.metrics[k]:12.6g} {b.metrics[k]:12.6g}  diff {a.metrics[k] - b.metrics[k]:+.2g}")


if __name__ == "__main__":
    main()
