"""End-of-sweep summary of the search stage: table of trials, results CSV, Optuna plots.

Like is compared with like: the search's best trial is the one with the best
last-reported objective among the trials that reached the furthest epoch (ASHA's top
rung; diverged and crashed trials never win), so a value measured after 2 epochs never
competes with one measured after 8. Without a confirmation stage its complete resolved
config is written as `best_config.yaml`, with `best_trial.json` beside it (sweep,
experiment and run ids) so `sweeps/train_best.py` can link the long training back to the
trial it came from; with one, the confirmed winner's (`sweeps/confirm.py`).
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.search import sampled_flat, trial_meta
from sweeps.spec import SweepSpec
from sweeps.sweep_dir import SweepState
from sweeps.trial_info import TrialState, end_state

TOP_ROWS = 10


@dataclass
class TrialRow:
    trial_id: str
    number: int
    state: TrialState
    epochs: int
    metric: float
    sampled: dict[str, Any]  # Tune's trial config: the sampled values and the `sweep` entry
    train_s: float
    values: dict[str, float] = field(default_factory=dict)  # every objective's last value (`metric` included)


@dataclass
class SweepReport:
    spec: SweepSpec
    rows: list[TrialRow]
    wall_s: float  # the search's, summed over the legs
    legs: int = 1  # driver runs it took (1 + the times it was resumed)
    best: TrialRow | None = None
    baseline: TrialRow | None = None

    @property
    def train_s(self) -> float:
        return sum(r.train_s for r in self.rows)


def _row(result: Any, spec: SweepSpec) -> TrialRow:
    """One trial's row from its `ray.tune.Result` (last reported metrics, config, error)."""
    last = dict(result.metrics or {})
    config = dict(result.config or {})
    value = last.get(spec.metric)
    # a trial that crashed before its first report has no metrics: its directory names it
    trial_id = str(last.get("trial_id") or Path(result.path).name.rsplit("_", 1)[-1])
    return TrialRow(
        trial_id=trial_id,
        number=trial_meta(config).number or 0,
        state=end_state(last, error=result.error is not None, max_epochs=spec.max_epochs, metric=spec.metric),
        epochs=int(last.get("training_iteration", 0)),
        metric=float(value) if isinstance(value, (int, float)) else float("nan"),
        sampled=config,
        train_s=float(last.get("time_total_s", 0.0)),
        values={o.name: _float(last.get(o.name)) for o in spec.objectives or ()} or {spec.metric: _float(value)},
    )


def _float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def build_report(spec: SweepSpec, results: Any, state: SweepState) -> SweepReport:
    """Rows from the search stage's `ray.tune.ResultGrid`, one per trial; the wall time of the
    search over every leg the sweep took (`state`)."""
    rows = [_row(result, spec) for result in results]
    report = SweepReport(spec, rows, state.wall_s("search"), legs=max(1, state.legs))
    report.best = next(iter(ranked(report)), None)
    report.baseline = next((r for r in rows if trial_meta(r.sampled).baseline), None)
    return report


def ranked(report: SweepReport) -> list[TrialRow]:
    """Trials that reached the furthest epoch any finished trial reached, best first."""
    eligible = [r for r in report.rows if r.state.ok and math.isfinite(r.metric)]
    top = max((r.epochs for r in eligible), default=0)
    sign = 1.0 if report.spec.mode == "min" else -1.0
    return sorted((r for r in eligible if r.epochs == top), key=lambda r: sign * r.metric)


def write_report(report: SweepReport, sweep_dir: Path) -> list[Path]:
    """results.csv and the Optuna plots in the sweep dir."""
    return [_write_csv(report, sweep_dir / "results.csv"), *_optuna_plots(report.spec, sweep_dir)]


def _write_csv(report: SweepReport, path: Path) -> Path:
    params = sorted({k for r in report.rows for k in sampled_flat(r.sampled)})
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        others = [o.name for o in report.spec.objectives[1:]]
        w.writerow(["trial", "trial_id", "state", "epochs", report.spec.metric, *others, "train_s", *params])
        for r in report.rows:
            flat = sampled_flat(r.sampled)
            cells = [r.number, r.trial_id, r.state, r.epochs, r.metric, *(r.values.get(o) for o in others)]
            cells.append(round(r.train_s, 2))
            w.writerow([*cells, *(flat.get(p, "") for p in params)])
    return path


def _optuna_plots(spec: SweepSpec, sweep_dir: Path) -> list[Path]:
    """Optimization history, parameter importances, parallel coordinates (those that apply)."""
    import matplotlib

    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as ovm

    from sweeps.searcher import load_study

    study = load_study(spec, sweep_dir)
    out = []
    plots: dict[str, Callable[[optuna.Study], Any]] = {
        "optimization_history": ovm.plot_optimization_history,
        "param_importances": ovm.plot_param_importances,
        "parallel_coordinate": ovm.plot_parallel_coordinate,
    }
    # several objectives: Optuna plots one at a time, the primary here (pareto.png shows them all)
    target = {"target": lambda t: t.values[0], "target_name": spec.metric} if spec.multi else {}
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                ax = plot(study, **target)
        except Exception:  # noqa: BLE001 - e.g. importances need >= 2 finished trials with varied params
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        path = sweep_dir / f"{name}.png"
        fig.set_size_inches(9, 5)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        matplotlib.pyplot.close(fig)
        out.append(path)
    return out


def format_table(report: SweepReport, limit: int = TOP_ROWS) -> str:
    """The trials, best first; a last line says how many were left out."""
    sign = 1.0 if report.spec.mode == "min" else -1.0
    rows = sorted(report.rows, key=lambda r: sign * r.metric if math.isfinite(r.metric) else math.inf)
    params = sorted({k for r in rows for k in sampled_flat(r.sampled)})
    head = ["trial", "id", report.spec.metric, "at epoch", "state", *short_names(params)]
    lines = [
        [
            str(r.number),
            r.trial_id,
            f"{r.metric:.4g}",
            str(r.epochs),
            r.state,
            *_values(sampled_flat(r.sampled), params),
        ]
        for r in rows[:limit]
    ]
    table = text_table(head, lines)
    if len(rows) > limit:
        table += f"\n({len(rows) - limit} more trials not shown; all are in results.csv)"
    return table


def short_names(paths: list[str]) -> list[str]:
    """The shortest unique tail of each `/`-path: `losses/KL/end_ramp_val` -> `end_ramp_val`."""
    names = []
    for path in paths:
        parts = path.split("/")
        for n in range(1, len(parts) + 1):
            tail = "/".join(parts[-n:])
            if sum(p == tail or p.endswith("/" + tail) for p in paths) == 1:
                break
        names.append(tail)
    return names


def text_table(head: list[str], lines: list[list[str]]) -> str:
    """Plain aligned columns (no box drawing, no colour)."""
    widths = [max(len(str(row[i])) for row in [head, *lines]) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [head, *lines]
    )


def _values(flat: dict[str, Any], params: list[str]) -> list[str]:
    return [_fmt(flat.get(p)) for p in params]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def print_report(report: SweepReport) -> None:
    spec = report.spec
    concurrency = max(1, spec.max_concurrent_trials)
    fraction = report.train_s / max(1e-9, report.wall_s * concurrency)
    legs = f" over {report.legs} legs (resumed {report.legs - 1}x)" if report.legs > 1 else ""
    print(
        f"\nsweep {spec.name}: {len(report.rows)} trials in {report.wall_s:.0f} s wall{legs}, "
        f"{report.train_s:.0f} s of trial training (compute fraction {fraction:.2f})"
    )
    print("(trial = the sweep's trial number, 0 = the baseline, also optuna.db's `trial` attribute; id = Tune's)")
    print(format_table(report))
    if report.baseline is not None:
        b = report.baseline
        print(f"baseline (trial {b.number}, {b.trial_id}): {spec.metric} = {b.metric:.4g}")
    if report.best is not None:
        print(
            f"search best (trial {report.best.number}, {report.best.trial_id}, at epoch {report.best.epochs}): "
            f"{spec.metric} = {report.best.metric:.4g}"
        )
