"""The confirmation stage: is the search's answer better than the baseline beyond seed noise?

After the search, the baseline and the `top_k` best search trials (among those that
reached the top rung) are retrained for the full `max_epochs` with each of the
`confirm/seeds`, fresh seeds the search never used. Per candidate this gives one final
objective per seed; the difference of its mean to the baseline's mean gets a Welch
95 % confidence interval (unequal variances, Welch-Satterthwaite degrees of freedom),
and the verdict follows from the interval alone:

- **better**: the whole interval is on the improving side of 0;
- **worse**: the whole interval is on the other side, or a seed diverged or crashed;
- **no detectable difference**: the interval contains 0.

The confirmed winner is the better candidate with the best mean; when there is none,
the answer is the baseline and the report says so. The stage lives here whole: it picks the
candidates, trains them (:func:`run_stage`: Tune trials in the same Ray session as the
search, resumable), collects and judges their values, and reports them (table, CSV, plot,
the parent run's metrics, the plain-language answer).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scipy import stats

from sweeps.report import SweepReport, TrialRow, ranked
from sweeps.search import TrialMeta, sampled_flat, trial_meta, with_meta
from sweeps.session import SweepSession
from sweeps.spec import SweepSpec
from sweeps.storage import slim_checkpoints
from sweeps.trial_info import TrialState, end_state

LEVEL = 0.95
BETTER, SAME, WORSE = "better", "no detectable difference", "worse"
BASELINE = "baseline"


@dataclass
class Candidate:
    """One configuration under confirmation, with its per-seed final values."""

    label: str  # "baseline" or "trial N" (the search trial it comes from)
    row: TrialRow  # the search trial
    values: dict[int, float] = field(default_factory=dict)  # seed -> final objective
    failed: dict[int, TrialState] = field(default_factory=dict)  # seed -> diverged / crashed / early_stopped
    delta: float = math.nan
    ci: tuple[float, float] = (math.nan, math.nan)
    verdict: str = ""

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values()) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values.values()) if len(self.values) > 1 else math.nan


@dataclass
class Confirmation:
    spec: SweepSpec
    baseline: Candidate
    candidates: list[Candidate]
    wall_s: float = 0.0
    train_s: float = 0.0

    @property
    def winner(self) -> Candidate:
        """The better candidate with the best mean, else the baseline."""
        sign = 1.0 if self.spec.mode == "min" else -1.0
        better = [c for c in self.candidates if c.verdict == BETTER]
        return min(better, key=lambda c: sign * c.mean, default=self.baseline)

    @property
    def top(self) -> Candidate | None:
        """The candidate with the best mean (compared with the baseline in the parent's metrics)."""
        sign = 1.0 if self.spec.mode == "min" else -1.0
        scored = [c for c in self.candidates if c.values]
        return min(scored, key=lambda c: sign * c.mean, default=None)


def run_stage(
    session: SweepSession,
    report: SweepReport,
    callbacks: list[Any],
    fit: Callable[[Any], Any],
    resume: bool,
) -> Confirmation:
    """Retrain the baseline and the best search trials with fresh seeds (`fit` runs a Tuner to
    its end or to an interrupt) and judge them; continues an interrupted confirmation. The
    caller sets the wall time (it knows the legs)."""
    from sweeps.tuner import CONFIRM_DIR_NAME, TUNE_DIR_NAME, can_resume, new_confirm_tuner, restored_tuner

    spec, storage = session.spec, session.tune_storage
    assert spec.confirm is not None
    candidates = pick_candidates(report, spec.confirm.top_k)
    # The confirmation needs no search checkpoint; those that may win stay whole.
    slim_checkpoints(storage.child(TUNE_DIR_NAME), {c.row.trial_id for c in candidates})
    print(
        f"confirmation: {', '.join(c.label for c in candidates)} x seeds "
        f"{', '.join(map(str, spec.confirm.seeds))}, {spec.max_epochs} epochs each",
        flush=True,
    )
    if resume and can_resume(storage, CONFIRM_DIR_NAME):
        tuner = restored_tuner(session, callbacks, CONFIRM_DIR_NAME)
    else:
        tuner = new_confirm_tuner(session, callbacks, trial_configs(candidates, spec.confirm.seeds))
    return collect(spec, candidates, fit(tuner))


def pick_candidates(report: SweepReport, top_k: int) -> list[Candidate]:
    """The baseline, then the `top_k` best search trials at the top rung (distinct from the
    baseline's values)."""
    assert report.baseline is not None
    base = sampled_flat(report.baseline.config)
    picked = [Candidate(BASELINE, report.baseline)]
    for row in ranked(report):
        if len(picked) > top_k:
            break
        if row.trial_id != report.baseline.trial_id and sampled_flat(row.config) != base:
            picked.append(Candidate(f"trial {row.number}", row))
    return picked


def trial_configs(candidates: list[Candidate], seeds: tuple[int, ...]) -> list[dict[str, Any]]:
    """One Tune trial config per candidate and seed: the search trial's values + `training/seed`."""
    out = []
    for c in candidates:
        for seed in seeds:
            meta = TrialMeta(
                stage="confirm", baseline=c.label == BASELINE, candidate=c.label, seed=seed, search_trial=c.row.trial_id
            )
            out.append(with_meta({**sampled_flat(c.row.config), "training/seed": seed}, meta))
    return out


def collect(spec: SweepSpec, candidates: list[Candidate], results: Any, wall_s: float = 0.0) -> Confirmation:
    """Fill the candidates' per-seed values from the confirmation ResultGrid and judge them."""
    by_label = {c.label: c for c in candidates}
    train_s = 0.0
    for result in results:
        meta = trial_meta(result.config)
        cand = by_label.get(meta.candidate)
        if cand is None or meta.seed is None:
            continue
        last = dict(result.metrics or {})
        train_s += float(last.get("time_total_s", 0.0))
        state = end_state(last, error=result.error is not None, max_epochs=spec.max_epochs, metric=spec.metric)
        if state == TrialState.COMPLETED:
            cand.values[meta.seed] = float(last[spec.metric])
        else:
            cand.failed[meta.seed] = state
    baseline, others = candidates[0], candidates[1:]
    for c in others:
        c.delta, c.ci, c.verdict = judge(list(c.values.values()), list(baseline.values.values()), spec.mode)
        if c.failed:
            c.verdict = WORSE
    return Confirmation(spec, baseline, others, wall_s, train_s)


def judge(values: list[float], baseline: list[float], mode: str) -> tuple[float, tuple[float, float], str]:
    """(mean difference to the baseline, its Welch CI, verdict) for `mode` min or max."""
    if len(values) < 2 or len(baseline) < 2:
        return math.nan, (math.nan, math.nan), SAME
    delta = statistics.fmean(values) - statistics.fmean(baseline)
    if statistics.stdev(values) == 0 and statistics.stdev(baseline) == 0:
        low = high = delta  # no spread at all (e.g. a deterministic objective): the difference is exact
    else:
        ci = stats.ttest_ind(values, baseline, equal_var=False).confidence_interval(LEVEL)
        low, high = float(ci.low), float(ci.high)
    gain_low, gain_high = (-high, -low) if mode == "min" else (low, high)  # > 0 = improvement
    verdict = BETTER if gain_low > 0 else WORSE if gain_high < 0 else SAME
    return delta, (low, high), verdict


# --------------------------------------------------------------------------- outputs


def write_csv(conf: Confirmation, path: Path) -> Path:
    """One row per candidate: per-seed values, mean, std, difference and CI, verdict, values."""
    params = sorted({k for c in [conf.baseline, *conf.candidates] for k in sampled_flat(c.row.config)})
    seeds = conf.spec.confirm.seeds if conf.spec.confirm else ()
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["candidate", "search_trial_id", "search_value", "search_epochs", *(f"seed_{s}" for s in seeds),
             "mean", "std", "delta", "delta_ci_low", "delta_ci_high", "verdict", *params]
        )  # fmt: skip
        for c in [conf.baseline, *conf.candidates]:
            flat = sampled_flat(c.row.config)
            per_seed = [c.values.get(s, c.failed.get(s, "")) for s in seeds]
            w.writerow(
                [c.label, c.row.trial_id, c.row.metric, c.row.epochs, *per_seed, c.mean, c.std, c.delta,
                 c.ci[0], c.ci[1], c.verdict or "-", *(flat.get(p, "") for p in params)]
            )  # fmt: skip
    return path


def plot(conf: Confirmation, path: Path) -> Path:
    """Per-seed values per candidate (dots, mean as a bar), the baseline's mean +- std as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [conf.baseline, *conf.candidates]
    with plt.style.context("default"):  # Optuna's plots switch the global style to ggplot
        fig, ax = plt.subplots(figsize=(max(6.5, 1.6 * len(rows) + 2), 4.5))
        _draw(conf, rows, ax)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _draw(conf: Confirmation, rows: list[Candidate], ax: Any) -> None:
    base_mean, base_std = conf.baseline.mean, conf.baseline.std
    if math.isfinite(base_mean):
        spread = base_std if math.isfinite(base_std) else 0.0
        ax.axhspan(base_mean - spread, base_mean + spread, color="tab:gray", alpha=0.25, label="baseline mean ± std")
        ax.axhline(base_mean, color="tab:gray", lw=1)
    colours = {BETTER: "tab:green", SAME: "tab:blue", WORSE: "tab:red", "": "tab:gray"}
    for i, c in enumerate(rows):
        ys = list(c.values.values())
        ax.scatter([i] * len(ys), ys, color=colours.get(c.verdict, "tab:gray"), zorder=3)
        if ys:
            ax.hlines(c.mean, i - 0.25, i + 0.25, color="black", lw=2, zorder=4)
    ax.set_xticks(range(len(rows)), [f"{c.label}\n{c.verdict or 'reference'}" for c in rows], fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(conf.spec.metric)
    seeds = len(conf.spec.confirm.seeds) if conf.spec.confirm else 0
    better = "lower" if conf.spec.mode == "min" else "higher"
    ax.set_title(
        f"confirmation of sweep {conf.spec.name}: {seeds} fresh seeds x {conf.spec.max_epochs} epochs\n"
        f"dots: one seed each, bar: mean; {better} is better",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def format_table(conf: Confirmation) -> str:
    seeds = conf.spec.confirm.seeds if conf.spec.confirm else ()
    head = ["candidate", "search", "mean", "std", *(f"seed {s}" for s in seeds), "delta", "95% CI", "verdict"]
    lines = [head]
    for c in [conf.baseline, *conf.candidates]:
        per_seed = [f"{c.values[s]:.4g}" if s in c.values else c.failed.get(s, "-") for s in seeds]
        ci = f"[{c.ci[0]:+.4f}, {c.ci[1]:+.4f}]" if math.isfinite(c.ci[0]) else "-"
        delta = f"{c.delta:+.4f}" if math.isfinite(c.delta) else "-"
        lines.append(
            [c.label, f"{c.row.metric:.4g}", _num(c.mean), _num(c.std), *per_seed, delta, ci, c.verdict or "-"]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def print_summary(conf: Confirmation) -> None:
    """What the terminal shows of the confirmation at the end of the sweep."""
    spec = conf.spec
    seeds = len(spec.confirm.seeds) if spec.confirm else 0
    fraction = conf.train_s / max(1e-9, conf.wall_s * max(1, spec.max_concurrent_trials))
    print(
        f"\nconfirmation: {len(conf.candidates) + 1} configs x {seeds} fresh seeds in "
        f"{conf.wall_s:.0f} s wall (compute fraction {fraction:.2f}); {spec.metric} after "
        f"{spec.max_epochs} epochs, difference to the baseline with a Welch {LEVEL:.0%} CI"
    )
    print(format_table(conf))
    print(summary(conf))


def summary(conf: Confirmation) -> str:
    """The plain-language answer."""
    win = conf.winner
    metric = conf.spec.metric
    if win is conf.baseline:
        top = conf.top
        detail = ""
        if top is not None:
            detail = f" (closest: {top.label}, {metric} {top.mean:.4g} vs {conf.baseline.mean:.4g}, {top.verdict})"
        return f"no candidate beat the baseline beyond seed noise{detail}; best_config.yaml is the baseline"
    return (
        f"{win.label} is better than the baseline: {metric} {win.mean:.4g} vs {conf.baseline.mean:.4g} "
        f"(difference {win.delta:+.4f}, 95% CI [{win.ci[0]:+.4f}, {win.ci[1]:+.4f}]); best_config.yaml is {win.label}"
    )


def parent_metrics(conf: Confirmation) -> dict[str, float]:
    """`confirm/*` metrics of the parent run: the top candidate against the baseline."""
    top = conf.top
    out = {"confirm/baseline_mean": conf.baseline.mean}
    if top is not None:
        out.update(
            {
                "confirm/best_mean": top.mean,
                "confirm/delta": top.delta,
                "confirm/delta_ci_low": top.ci[0],
                "confirm/delta_ci_high": top.ci[1],
            }
        )
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"
