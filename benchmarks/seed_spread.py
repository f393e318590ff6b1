"""Train config variants with several seeds and print what differs beyond the seed spread.

    python benchmarks/seed_spread.py -b configs/cpu_32.yaml --seeds 0 1 2 \\
        --variant recipe= \\
        --variant "kl_from_0=losses/KL/start_ramp_it 0 losses/KL/end_ramp_it 0 losses/KL/start_ramp_val 1 losses/KL/end_ramp_val 1" \\
        --variant "kl_off=losses/KL/start_ramp_val 1e-6 losses/KL/end_ramp_val 1e-6"

Each (variant, seed) is one `vunet-train` run on one thread, `--jobs` at a time, in
`--out/<variant>/seed<k>/`; finished runs (a complete `metrics.jsonl`) are reused, so the
script can be re-run to add seeds or variants. Prints, per variant: each seed's final
`val/transfer/l1` and `val/transfer/appearance_gain`, their mean and std, and per epoch
the mean +- std of both (the step-count vs appearance-gain table), then the rank
correlation between every epoch's value and the final one (how early a value predicts
the end, over all runs). Not a test: numbers for notes and for sizing sweeps.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

METRICS = ("val/transfer/l1", "val/transfer/appearance_gain")


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, overrides = text.partition("=")
    return name.strip(), overrides.split()


def run_one(base: list[str], overrides: list[str], seed: int, epochs: int, out: Path) -> Path:
    metrics = out / "metrics.jsonl"
    if metrics.is_file() and len(metrics.read_text().splitlines()) >= epochs:
        return metrics
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "vunet_core.cli", "-b", *base, "-t", "--runs-dir", str(out / "runs")]
    cmd += [*overrides, "training/seed", str(seed), "training/num_threads", "1", "training/progress", "false"]
    start = time.perf_counter()
    with open(out / "log.txt", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
    run_dir = max((out / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    metrics.write_text((run_dir / "metrics.jsonl").read_text())
    print(f"  {out}: {time.perf_counter() - start:.0f} s", flush=True)
    return metrics


def read_epochs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def fmt(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} +- {std:.4f}"


def report(results: dict[str, dict[int, list[dict[str, Any]]]]) -> None:
    for name, by_seed in results.items():
        print(f"\n## {name}")
        for metric in METRICS:
            finals = {s: e[-1][metric] for s, e in by_seed.items()}
            seeds = ", ".join(f"seed {s}: {v:.4f}" for s, v in finals.items())
            print(f"final {metric}: {fmt(list(finals.values()))}  ({seeds})")
        num_epochs = min(len(e) for e in by_seed.values())
        print("epoch  step  " + "  ".join(f"{m:<24}" for m in METRICS) + "  epoch_s")
        for k in range(num_epochs):
            rows = [e[k] for e in by_seed.values()]
            cells = "  ".join(f"{fmt([r[m] for r in rows]):<24}" for m in METRICS)
            secs = statistics.fmean(r["time/epoch_s"] for r in rows)
            print(f"{k + 1:<5}  {rows[0]['step']:<4}  {cells}  {secs:.1f}")
    runs = [e for by_seed in results.values() for e in by_seed.values()]
    num_epochs = min(len(e) for e in runs)
    if len(runs) >= 4:
        print("\nrank correlation (Spearman) of each epoch's value with the final one, over all runs:")
        for metric in METRICS:
            final = [e[num_epochs - 1][metric] for e in runs]
            rhos = [spearmanr([e[k][metric] for e in runs], final)[0] for k in range(num_epochs - 1)]
            print(f"  {metric}: " + "  ".join(f"ep{k + 1} {r:.2f}" for k, r in enumerate(rhos) if not math.isnan(r)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-b", "--base", nargs="+", default=["configs/cpu_32.yaml"])
    p.add_argument("--variant", action="append", default=[], help="NAME=PATH VALUE ... (overrides of the base)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="benchmarks_out/seed_spread")
    args = p.parse_args()
    variants = dict(parse_variant(v) for v in args.variant) or {"base": []}
    from vunet_core import parse_overrides, resolve_config

    jobs = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for name, overrides in variants.items():
            num_epochs = resolve_config(args.base, parse_overrides(overrides)).training.num_epochs
            for seed in args.seeds:
                out = Path(args.out) / name / f"seed{seed}"
                jobs.append((name, seed, pool.submit(run_one, args.base, overrides, seed, num_epochs, out)))
        results: dict[str, dict[int, list[dict[str, Any]]]] = {}
        for name, seed, future in jobs:
            results.setdefault(name, {})[seed] = read_epochs(future.result())
    report(results)


if __name__ == "__main__":
    main()
