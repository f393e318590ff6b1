"""Does an early epoch rank trials as their final values do? Spearman correlation per objective and epoch.

    python benchmarks/rank_correlation.py sqlite:////abs/path/mlflow.db kl_ramp \\
        --metrics val/transfer/l1 val/loss/KL

Reads a finished sweep's search trials from its MLflow experiment, keeps those that ran
every epoch, and prints for each metric and each epoch k the Spearman rank correlation
between the trials' values at epoch k and at their last epoch. A rung of (multi-objective)
ASHA only helps where this is high for every objective: that is how the default job's
`grace_period` was chosen. ASHA-selected survivors are a biased sample (run it on a FIFO
sweep to see every trial). Not a test.
"""

from __future__ import annotations

import argparse

from mlflow import MlflowClient
from scipy.stats import spearmanr


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tracking_uri", help="the sweep's MLflow store (absolute)")
    p.add_argument("experiment", help="the sweep's experiment (its name)")
    p.add_argument("--metrics", nargs="+", default=["val/transfer/l1", "val/loss/KL"])
    args = p.parse_args()
    client = MlflowClient(args.tracking_uri)
    exp = client.get_experiment_by_name(args.experiment)
    if exp is None:
        raise SystemExit(f"no experiment {args.experiment!r} in {args.tracking_uri}")
    runs = client.search_runs([exp.experiment_id], "tags.stage = 'search'", max_results=5000)
    history = {
        r.info.run_name: {
            m: {x.step: x.value for x in client.get_metric_history(r.info.run_id, m)} for m in args.metrics
        }
        for r in runs
    }
    last = max((max(h[args.metrics[0]], default=0) for h in history.values()), default=0)
    full = {name: h for name, h in history.items() if all(last in h[m] for m in args.metrics)}
    print(f"{args.experiment}: {len(full)} of {len(runs)} search trials ran all {last} epochs")
    print(f"{'metric':<24} " + " ".join(f"{f'ep {k}':>6}" for k in range(1, last)))
    for m in args.metrics:
        finals = [h[m][last] for h in full.values()]
        cells = []
        for k in range(1, last):
            early = [h[m].get(k, float("nan")) for h in full.values()]
            cells.append(f"{spearmanr(early, finals)[0]:>6.2f}" if len(full) > 2 else f"{'-':>6}")
        print(f"{m:<24} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
