"""TPE + ASHA against random search + FIFO on the same space and trial budget.

    python benchmarks/search_efficiency.py search_spaces/kl_ramp.yaml --sweep-seeds 0 1 2
    python benchmarks/search_efficiency.py search_spaces/smoke.yaml --sweep-seeds 0 1 num_samples 6

For each sweep seed (the sweep file's `seed`, i.e. the searcher's) it runs the sweep twice
with `sweeps/run.py`, confirmation off: as `sampler tpe scheduler/type asha` (with the
file's grace period and reduction factor) and as `sampler random scheduler/type fifo`.
Both see the same trial budget (`num_samples`), base config and trial seed. From each sweep's Optuna study it reads, in
trial order, every trial's epochs and final state, and prints per method and sweep seed:
the best value among trials that ran all epochs, the trial-epochs spent in total, and the
trial-epochs spent until a trial first matched the random search's best value of the same
sweep seed (the target; `-` if it never did). The target is a search value, one training
seed's number: compare the gap with the seed spread (`benchmarks/seed_spread.py`) before
calling a method better. Finished sweeps under `--out` are reused. Not a test.

With several objectives (a `metric` list, e.g. search_spaces/kl_ramp.yaml) `asha` is
multi-objective ASHA, and the comparison is the hypervolume of the front after the same
trial-epochs: per sweep seed, the budget is the smaller of the two methods' totals; each
method's trials are taken in proposal order while their epochs fit in it, and the front of
those that ran all epochs is measured up to one reference point for all sweeps of the run
(per objective the worst final value any of them reached, moved out by a tenth of the range).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from sweeps import pareto

ROOT = Path(__file__).resolve().parents[1]
METHODS = {
    "tpe_asha": ["sampler", "tpe", "scheduler/type", "asha"],
    "random_fifo": ["sampler", "random", "scheduler/type", "fifo"],
}


def run_sweep(spec: Path, overrides: list[str], out: Path) -> Path:
    """The sweep's directory, running it unless it finished before."""
    done = [d for d in out.glob("*/") if (d / "results.csv").is_file()]
    if done:
        return done[0]
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{(out / 'mlflow.db').resolve()}"}
    cmd = [sys.executable, str(ROOT / "sweeps" / "run.py"), str(spec), *overrides, "confirm", "false"]
    start = time.perf_counter()
    with open(out / "log.txt", "w") as log:
        subprocess.run([*cmd, "--out-dir", str(out)], stdout=log, stderr=subprocess.STDOUT, env=env, check=True)
    print(f"  {out}: {time.perf_counter() - start:.0f} s", flush=True)
    return next(d for d in out.glob("*/") if (d / "results.csv").is_file())


def trials(sweep_dir: Path) -> list[dict[str, Any]]:
    """Per Optuna trial in order: epochs run, final value(s) if it ran all epochs (else None);
    `value` is the list of every objective's value with several."""
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    out = []
    for t in study.trials:
        if "duplicate_of" in t.user_attrs:  # a repeated proposal, drawn again: never trained
            continue
        full = t.state == optuna.trial.TrialState.COMPLETE and t.values is not None
        value = (t.values if len(study.directions) > 1 else t.values[0]) if full else None
        out.append({"epochs": int(t.user_attrs.get("epochs", 0)), "value": value})
    return out


def directions(sweep_dir: Path) -> list[str]:
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return [d.name for d in optuna.load_study(study_name=summary.study_name, storage=storage).directions]


def within(rows: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The trials, in proposal order, whose epochs fit in `budget` trial-epochs."""
    out, spent = [], 0
    for r in rows:
        spent += r["epochs"]
        if spent > budget:
            break
        out.append(r)
    return out


def compare_fronts(runs: dict[int, dict[str, list[dict[str, Any]]]], signs: np.ndarray) -> None:
    """Several objectives: the hypervolume of each method's front after the same trial-epochs."""
    finals = [
        np.asarray(r["value"]) * signs for rows in runs.values() for rs in rows.values() for r in rs if r["value"]
    ]
    reference = pareto.reference_point(np.vstack(finals))
    print(
        f"\nhypervolume after the same trial-epochs (reference point, lower-is-better units: {np.round(reference, 4)})"
    )
    print(f"{'method':<12} {'sweep seed':>10} {'budget':>7} {'trials':>6} {'front':>5} {'hypervolume':>12}")
    table: dict[str, list[float]] = {m: [] for m in METHODS}
    for seed, rows in runs.items():
        budget = min(sum(r["epochs"] for r in rs) for rs in rows.values())
        for method, rs in rows.items():
            taken = within(rs, budget)
            pts = np.array([np.asarray(r["value"]) * signs for r in taken if r["value"] is not None])
            front = pareto.front_indices(pts) if len(pts) else []
            hv = pareto.hypervolume(pts, reference) if len(pts) else 0.0
            table[method].append(hv)
            print(f"{method:<12} {seed:>10} {budget:>7} {len(taken):>6} {len(front):>5} {hv:>12.4g}")
    for method, hvs in table.items():
        spread = statistics.stdev(hvs) if len(hvs) > 1 else math.nan
        print(
            f"{method:<12} {'mean':>10} {'':>7} {'':>6} {'':>5} {statistics.fmean(hvs):>12.4g} ± {spread:.3g} (std over seeds)"
        )


def epochs_to_reach(rows: list[dict[str, Any]], target: float, sign: float) -> int | None:
    spent = 0
    for r in rows:
        spent += r["epochs"]
        if r["value"] is not None and sign * r["value"] <= sign * target + 1e-12:
            return spent
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", type=Path)
    p.add_argument("--sweep-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=Path("/tmp/search_efficiency"))
    p.add_argument("--mode", choices=("min", "max"), default="min", help="the objective's direction")
    args, overrides = p.parse_known_args()
    sign = 1.0 if args.mode == "min" else -1.0
    table: dict[str, list[tuple[int, float, int, int | None]]] = {m: [] for m in METHODS}
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for seed in args.sweep_seeds:
        rows = {}
        for method, extra in METHODS.items():
            sweep = run_sweep(
                args.spec.resolve(), [*overrides, "seed", str(seed), *extra], args.out / method / f"s{seed}"
            )
            rows[method] = trials(sweep)
        runs[seed] = rows
        dirs = directions(sweep)
        if len(dirs) > 1:
            continue
        finished = [r["value"] for r in rows["random_fifo"] if r["value"] is not None]
        target = min(finished, key=lambda v: sign * v)
        for method, rs in rows.items():
            values = [r["value"] for r in rs if r["value"] is not None]
            best = min(values, key=lambda v: sign * v) if values else math.nan
            table[method].append((seed, best, sum(r["epochs"] for r in rs), epochs_to_reach(rs, target, sign)))
    if len(dirs) > 1:
        compare_fronts(runs, np.array([1.0 if d == "MINIMIZE" else -1.0 for d in dirs]))
        return 0
    print(f"\n{args.spec.name}: trial-epochs until a trial matched random search's best value (same sweep seed)")
    print(f"{'method':<12} {'sweep seed':>10} {'best':>8} {'epochs total':>12} {'epochs to target':>16}")
    for method, found in table.items():
        for seed, best, total, reach in found:
            print(f"{method:<12} {seed:>10} {best:>8.4f} {total:>12} {reach if reach is not None else '-':>16}")
        reached = [r[3] for r in found if r[3] is not None]
        mean = f"{statistics.fmean(reached):.1f}" if reached else "-"
        print(f"{method:<12} {'mean':>10} {statistics.fmean(r[1] for r in found):>8.4f} "
              f"{statistics.fmean(r[2] for r in found):>12.1f} {mean:>16} ({len(reached)}/{len(found)} reached)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
