"""The search's Pareto front (a sweep with several objectives): table, `pareto.csv`, `pareto.png`
and the hypervolume per rung.

Like the single-objective best trial, the front compares like with like: it is made of the
trials that ran to the furthest epoch any trial reached (stopped trials were measured earlier,
when the rate had not settled) and are not dominated by another of them. Its members are
listed in spread order (:func:`sweeps.pareto.spread_order`): the best on the primary objective
first, then each time the point farthest from those before it, so the first k are k points
spread along the front (what the contact sheets and the confirmation take).

The hypervolume at each rung is that of the front of the values every trial had at that
epoch, up to one reference point for the whole sweep (per objective the worst value seen at
any rung, moved out by a tenth of the range); it is logged on the parent run as
`pareto/hypervolume` with the rung as step. Its growth over the rungs says how much the
later epochs moved the trade-off; the number compares sweeps only at the same reference point.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweeps import pareto
from sweeps.report import SweepReport, TrialRow, short_names, text_table

FRONT_DIR = "front"  # one config per (confirmed) front point: front/trial_<n>.yaml
EpochValues = dict[str, dict[int, dict[str, float]]]  # trial id -> epoch -> objective -> value


@dataclass
class Front:
    report: SweepReport
    top_epoch: int  # the furthest epoch reached: only trials there can be on the front
    members: list[TrialRow]  # on the front, in spread order
    reference: np.ndarray  # lower-is-better units
    hypervolume: dict[int, float] = field(default_factory=dict)  # rung epoch -> hypervolume
    confirmed: list[tuple[str, dict[str, tuple[float, float]]]] = field(default_factory=list)  # label -> (mean, std)

    @property
    def objectives(self) -> tuple[pareto.Objective, ...]:
        return self.report.spec.objectives

    def on_front(self, row: TrialRow) -> bool:
        return any(m.trial_id == row.trial_id for m in self.members)


def _point(objectives: Sequence[pareto.Objective], values: dict[str, float]) -> np.ndarray:
    return pareto.lower_is_better(objectives, [[values.get(o.name, math.nan) for o in objectives]])[0]


def build_front(report: SweepReport, per_epoch: EpochValues, rungs: Sequence[int]) -> Front:
    """The front of `report`'s trials and the hypervolume at each of `rungs` (epochs)."""
    objectives = report.spec.objectives
    eligible = [r for r in report.rows if r.state.ok and all(math.isfinite(v) for v in r.values.values())]
    top = max((r.epochs for r in eligible), default=0)
    finalists = [r for r in eligible if r.epochs == top]
    points = np.vstack([_point(objectives, r.values) for r in finalists]) if finalists else np.zeros((0, 0))
    members = [finalists[i] for i in pareto.front_indices(points)] if finalists else []
    at_rung = {e: _rung_points(objectives, per_epoch, e) for e in rungs}
    seen = [p for pts in at_rung.values() for p in pts] + ([*points] if len(points) else [])
    reference = pareto.reference_point(np.vstack(seen)) if seen else np.full(len(objectives), math.nan)
    front = Front(report, top, members, reference)
    for epoch, pts in at_rung.items():
        if pts:
            front.hypervolume[epoch] = pareto.hypervolume(np.vstack(pts), reference)
    return front


def _rung_points(objectives: Sequence[pareto.Objective], per_epoch: EpochValues, epoch: int) -> list[np.ndarray]:
    out = []
    for epochs in per_epoch.values():
        values = epochs.get(epoch)
        if values is not None and all(math.isfinite(values.get(o.name, math.nan)) for o in objectives):
            out.append(_point(objectives, values))
    return out


# --------------------------------------------------------------------------- outputs


def _ordered(front: Front) -> list[TrialRow]:
    """The front in spread order, then the others by the primary objective."""
    sign = front.objectives[0].sign
    rest = [r for r in front.report.rows if not front.on_front(r)]
    rest.sort(key=lambda r: sign * r.metric if math.isfinite(r.metric) else math.inf)
    return [*front.members, *rest]


def _status(front: Front, row: TrialRow) -> str:
    if front.on_front(row):
        return "yes"
    if row.epochs < front.top_epoch or not row.state.ok:
        return f"- ({row.state} at epoch {row.epochs})"
    return "no (dominated)"


def write_csv(front: Front, path: Path) -> Path:
    """pareto.csv: per trial, each objective's last value, the epoch it was measured at, on the front."""
    names = [o.name for o in front.objectives]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trial", "trial_id", "state", "epochs", *names, "on_front", "front_order"])
        order = {m.trial_id: i for i, m in enumerate(front.members)}
        for r in _ordered(front):
            cells = [r.number, r.trial_id, r.state, r.epochs, *(r.values.get(n) for n in names)]
            w.writerow([*cells, str(front.on_front(r)).lower(), order.get(r.trial_id, "")])
    return path


def format_table(front: Front, limit: int = 12) -> str:
    rows = _ordered(front)
    head = ["trial", "id", *short_names([o.name for o in front.objectives]), "at epoch", "on front"]
    lines = [
        [str(r.number), r.trial_id, *(_num(r.values.get(o.name)) for o in front.objectives), str(r.epochs)]
        + [_status(front, r)]
        for r in rows[: max(limit, len(front.members))]
    ]
    table = text_table(head, lines)
    if len(rows) > len(lines):
        table += f"\n({len(rows) - len(lines)} more trials not shown; all are in pareto.csv)"
    return table


def print_front(front: Front) -> None:
    spec = front.report.spec
    directions = ", ".join(f"{o.name} ({o.mode})" for o in front.objectives)
    print(
        f"\nPareto front of {spec.name}: {len(front.members)} of {len(front.report.rows)} trials, "
        f"objectives {directions}, compared at epoch {front.top_epoch}"
    )
    print(format_table(front))
    print(hypervolume_line(front))


def reference_text(front: Front) -> str:
    """The hypervolume's reference point in the objectives' own units."""
    signs = [o.sign for o in front.objectives]
    return ", ".join(f"{o.name} {s * v:.4g}" for o, s, v in zip(front.objectives, signs, front.reference, strict=True))


def hypervolume_line(front: Front) -> str:
    if not front.hypervolume:
        return "hypervolume: no rung has values of every objective"
    per = ", ".join(f"epoch {e}: {v:.4g}" for e, v in sorted(front.hypervolume.items()))
    return (
        f"hypervolume of the front per rung ({per}); reference point: {reference_text(front)} "
        "(the worst values seen + 10 % of the range)"
    )


def parent_metrics(front: Front) -> list[tuple[str, float, int]]:
    """(key, value, step) for the parent run: the hypervolume per rung, the front's size."""
    out = [("pareto/hypervolume", v, e) for e, v in sorted(front.hypervolume.items())]
    out.append(("pareto/front_size", float(len(front.members)), front.top_epoch))
    return out


def plot(front: Front, path: Path) -> Path:
    """pareto.png: the first two objectives, every trial's last values (hollow: stopped early),
    the front joined, the baseline marked, and the confirmed means with their std when there are."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with plt.style.context("default"):
        fig, ax = plt.subplots(figsize=(7.5, 5.5))
        _draw(front, ax)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw(front: Front, ax: Any) -> None:
    x_obj, y_obj = front.objectives[0], front.objectives[1]
    baseline = front.report.baseline
    for r in front.report.rows:
        x, y = r.values.get(x_obj.name, math.nan), r.values.get(y_obj.name, math.nan)
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        full = r.epochs == front.top_epoch and r.state.ok
        colour = "tab:red" if front.on_front(r) else "tab:blue"
        ax.scatter(x, y, s=40, facecolors=colour if full else "none", edgecolors=colour, zorder=3)
        ax.annotate(str(r.number), (x, y), xytext=(4, 3), textcoords="offset points", fontsize=8)
    pts = sorted((m.values[x_obj.name], m.values[y_obj.name]) for m in front.members)
    if len(pts) > 1:
        ax.plot(*zip(*pts, strict=True), color="tab:red", lw=1.2, zorder=2)
    if baseline is not None:
        bx, by = baseline.values.get(x_obj.name, math.nan), baseline.values.get(y_obj.name, math.nan)
        ax.scatter(bx, by, marker="*", s=220, color="gold", edgecolors="black", zorder=4)
    for label, stats in front.confirmed:
        (mx, sx), (my, sy) = stats.get(x_obj.name, (math.nan,) * 2), stats.get(y_obj.name, (math.nan,) * 2)
        ax.errorbar(mx, my, xerr=_zero(sx), yerr=_zero(sy), fmt="D", color="tab:green", ms=6, capsize=3, zorder=5)
        ax.annotate(label, (mx, my), xytext=(5, -10), textcoords="offset points", fontsize=8, color="tab:green")
    _legend(ax, front, baseline is not None)
    for axis, obj in (("x", x_obj), ("y", y_obj)):
        values = [r.values.get(obj.name, math.nan) for r in front.report.rows]
        finite = [v for v in values if math.isfinite(v)]
        if finite and min(finite) > 0 and max(finite) / min(finite) > 10:
            getattr(ax, f"set_{axis}scale")("log")
        better = "lower" if obj.mode == "min" else "higher"
        getattr(ax, f"set_{axis}label")(f"{obj.name} ({better} is better)")
    spec = front.report.spec
    ax.set_title(f"{spec.name}: every trial's last values; front at epoch {front.top_epoch}", fontsize=10)
    ax.grid(alpha=0.3)


def _legend(ax: Any, front: Front, baseline: bool) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="", color="tab:red", label=f"on the front (epoch {front.top_epoch})"),
        Line2D([], [], marker="o", ls="", color="tab:blue", label="dominated"),
        Line2D([], [], marker="o", ls="", mfc="none", color="tab:blue", label="stopped early (last values)"),
    ]
    if baseline:
        handles.append(Line2D([], [], marker="*", ls="", ms=12, mfc="gold", mec="black", label="baseline (search)"))
    if front.confirmed:
        handles.append(Line2D([], [], marker="D", ls="", color="tab:green", label="confirmed mean ± std (fresh seeds)"))
    ax.legend(handles=handles, fontsize=8, loc="best")


def _zero(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _num(value: float | None) -> str:
    return f"{value:.4g}" if value is not None and math.isfinite(value) else "-"
