"""The confirmation stage: is the search's answer better than the baseline beyond seed noise?

After the search, the baseline and the `top_k` best search trials (among those that
reached the top rung) are retrained for the full `max_epochs` with each of the
`confirm/seeds`, fresh seeds the search never used. Each candidate is then judged against
the baseline by :mod:`sweeps.verdict` (better, worse, equivalent within the margin, or
undecided). Undecided candidates, and the baseline with them, get another round of as many
fresh seeds, up to `confirm/max_seeds`; decided ones stop. A seed that diverged or crashed
makes its candidate worse. What stays undecided after the last round is reported so, with
the seeds it used.

The confirmed winner is the better candidate with the best mean; when there is none,
the answer is the baseline and the report says why (equivalent, worse, or the budget ran
out). The stage lives here whole: it picks the candidates, trains them round by round
(:func:`run_stage`: Tune trials in the same Ray session as the search, each round its own
resumable Tune run), collects and judges their values, and reports them (table, CSV, plot,
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

from sweeps import verdict
from sweeps.report import SweepReport, TrialRow, ranked
from sweeps.search import TrialMeta, sampled_flat, trial_meta, with_meta
from sweeps.session import SweepSession
from sweeps.spec import SweepSpec
from sweeps.storage import slim_checkpoints
from sweeps.trial_info import TrialState, end_state
from sweeps.verdict import BETTER, EQUIVALENT, UNDECIDED, WORSE

BASELINE = "baseline"


@dataclass
class Candidate:
    """One configuration under confirmation, with its per-seed final values."""

    label: str  # "baseline" or "trial N" (the search trial it comes from)
    row: TrialRow  # the search trial
    values: dict[int, float] = field(default_factory=dict)  # seed -> final objective
    failed: dict[int, TrialState] = field(default_factory=dict)  # seed -> diverged / crashed / early_stopped
    judged: verdict.Verdict | None = None  # at the last look it got

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values.values()) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values.values()) if len(self.values) > 1 else math.nan

    @property
    def seeds_used(self) -> int:
        return len(self.values) + len(self.failed)

    @property
    def decided(self) -> bool:
        return self.judged is not None and self.judged.decided

    @property
    def verdict(self) -> str:
        return self.judged.word if self.judged is not None else ""

    @property
    def delta(self) -> float:
        return self.judged.delta if self.judged is not None else math.nan

    @property
    def ci(self) -> tuple[float, float]:
        return self.judged.ci if self.judged is not None else (math.nan, math.nan)


@dataclass
class Confirmation:
    spec: SweepSpec
    baseline: Candidate
    candidates: list[Candidate]
    wall_s: float = 0.0
    train_s: float = 0.0
    margin: float = math.nan  # in the objective's units (confirm/margin resolved on the baseline's mean)

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


@dataclass(frozen=True)
class Runner:
    """How the driver runs a stage's Tuners: `fit` runs one to its end (or to an interrupt),
    `stopped` says whether an interrupt came, `resume` whether the sweep is being resumed."""

    fit: Callable[[Any], Any]
    stopped: Callable[[], bool]
    resume: bool = False


def run_stage(session: SweepSession, report: SweepReport, callbacks: list[Any], runner: Runner) -> Confirmation:
    """Retrain the baseline and the best search trials with fresh seeds, round by round until
    each candidate is decided or has `max_seeds`; continues an interrupted confirmation. The
    caller sets the wall time (it knows the legs)."""
    from sweeps.tuner import TUNE_DIR_NAME

    spec = session.spec
    assert spec.confirm is not None
    candidates = pick_candidates(report, spec.confirm.top_k)
    # The confirmation needs no search checkpoint; those that may win stay whole.
    slim_checkpoints(session.tune_storage.child(TUNE_DIR_NAME), {c.row.trial_id for c in candidates})
    conf = Confirmation(spec, candidates[0], candidates[1:])
    search_seed = int(session.base_tree["training"]["seed"])
    for round_no in range(1, spec.confirm.rounds + 1):
        runners = [conf.baseline, *(c for c in conf.candidates if not c.decided)]
        seeds = spec.confirm.round_seeds(round_no, avoid=search_seed)
        if len(runners) == 1 or not seeds:
            break
        _print_round(spec, round_no, runners, seeds)
        results = runner.fit(_round_tuner(session, callbacks, round_no, trial_configs(runners, seeds), runner.resume))
        if runner.stopped():
            break
        conf.train_s += record(spec, runners, results)
        judge_all(conf)
    return conf


def _round_tuner(
    session: SweepSession, callbacks: list[Any], round_no: int, configs: list[dict[str, Any]], resume: bool
) -> Any:
    """The round's Tune run: restored when a resumed sweep had started it, else new."""
    from sweeps.tuner import can_resume, confirm_dir, new_confirm_tuner, restored_tuner

    name = confirm_dir(round_no)
    if resume and can_resume(session.tune_storage, name):
        return restored_tuner(session, callbacks, name)
    return new_confirm_tuner(session, callbacks, configs, name)


def _print_round(spec: SweepSpec, round_no: int, runners: list[Candidate], seeds: tuple[int, ...]) -> None:
    assert spec.confirm is not None
    what = "confirmation" if round_no == 1 else f"confirmation round {round_no} (undecided so far)"
    print(
        f"{what}: {', '.join(c.label for c in runners)} x seeds {', '.join(map(str, seeds))}, "
        f"{spec.max_epochs} epochs each (at most {spec.confirm.max_seeds} seeds per candidate)",
        flush=True,
    )


def pick_candidates(report: SweepReport, top_k: int) -> list[Candidate]:
    """The baseline, then the `top_k` best search trials at the top rung (distinct from the
    baseline's values)."""
    assert report.baseline is not None
    base = sampled_flat(report.baseline.sampled)
    picked = [Candidate(BASELINE, report.baseline)]
    for row in ranked(report):
        if len(picked) > top_k:
            break
        if row.trial_id != report.baseline.trial_id and sampled_flat(row.sampled) != base:
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
            out.append(with_meta({**sampled_flat(c.row.sampled), "training/seed": seed}, meta))
    return out


def record(spec: SweepSpec, candidates: list[Candidate], results: Any) -> float:
    """Put a round's results (a ResultGrid) into the candidates' per-seed values; returns the
    round's training seconds."""
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
    return train_s


def judge_all(conf: Confirmation) -> None:
    """Look at every candidate still undecided after a round (a failed seed: worse)."""
    spec = conf.spec
    assert spec.confirm is not None
    level = verdict.look_level(spec.confirm.rounds)
    base = list(conf.baseline.values.values())
    conf.margin = spec.confirm.margin.absolute(conf.baseline.mean) if base else math.nan
    for c in conf.candidates:
        if c.decided:
            continue
        c.judged = verdict.judge(list(c.values.values()), base, spec.mode, conf.margin, level)
        if c.failed:
            c.judged = verdict.Verdict(c.judged.delta, c.judged.ci, level, WORSE)


# --------------------------------------------------------------------------- outputs


def _seeds(conf: Confirmation) -> list[int]:
    """Every seed any candidate used, in order."""
    return sorted({s for c in [conf.baseline, *conf.candidates] for s in [*c.values, *c.failed]})


def _label(c: Candidate, conf: Confirmation) -> str:
    """The verdict in words: `equivalent within +-0.0007`, `undecided after 6 seeds`."""
    if c.verdict == EQUIVALENT:
        return f"{EQUIVALENT} within ±{conf.margin:.2g}"
    if c.verdict == UNDECIDED:
        return f"{UNDECIDED} after {c.seeds_used} seeds"
    return c.verdict or "-"


def write_csv(conf: Confirmation, path: Path) -> Path:
    """One row per candidate: per-seed values, seeds used, mean, std, difference and CI (and
    its level), the margin, the verdict, the searched values."""
    params = sorted({k for c in [conf.baseline, *conf.candidates] for k in sampled_flat(c.row.sampled)})
    seeds = _seeds(conf)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["candidate", "search_trial_id", "search_value", "search_epochs", *(f"seed_{s}" for s in seeds),
             "seeds_used", "mean", "std", "delta", "delta_ci_low", "delta_ci_high", "ci_level", "margin", "verdict",
             *params]
        )  # fmt: skip
        for c in [conf.baseline, *conf.candidates]:
            flat = sampled_flat(c.row.sampled)
            per_seed = [c.values.get(s, c.failed.get(s, "")) for s in seeds]
            level = c.judged.level if c.judged else ""
            w.writerow(
                [c.label, c.row.trial_id, c.row.metric, c.row.epochs, *per_seed, c.seeds_used, c.mean, c.std,
                 c.delta, c.ci[0], c.ci[1], level, conf.margin, c.verdict or "-", *(flat.get(p, "") for p in params)]
            )  # fmt: skip
    return path


def plot(conf: Confirmation, path: Path) -> Path:
    """Per-seed values per candidate (dots, mean as a bar), the baseline's mean +- std as a band
    and its mean +- margin as dashed lines."""
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
        if math.isfinite(conf.margin) and conf.margin > 0:
            for y in (base_mean - conf.margin, base_mean + conf.margin):
                ax.axhline(y, color="tab:purple", lw=1, ls="--")
            ax.plot([], [], color="tab:purple", lw=1, ls="--", label=f"baseline mean ± margin ({conf.margin:.2g})")
    colours = {BETTER: "tab:green", EQUIVALENT: "tab:purple", UNDECIDED: "tab:blue", WORSE: "tab:red"}
    for i, c in enumerate(rows):
        ys = list(c.values.values())
        ax.scatter([i] * len(ys), ys, color=colours.get(c.verdict, "tab:gray"), zorder=3)
        if ys:
            ax.hlines(c.mean, i - 0.25, i + 0.25, color="black", lw=2, zorder=4)
    names = [
        f"{c.label} ({c.seeds_used} seeds)\n{_label(c, conf) if c is not conf.baseline else 'reference'}" for c in rows
    ]
    ax.set_xticks(range(len(rows)), names, fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(conf.spec.metric)
    better = "lower" if conf.spec.mode == "min" else "higher"
    ax.set_title(
        f"confirmation of sweep {conf.spec.name}: fresh seeds x {conf.spec.max_epochs} epochs\n"
        f"dots: one seed each, bar: mean; {better} is better",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def format_table(conf: Confirmation) -> str:
    seeds = _seeds(conf)
    level = next((c.judged.level for c in conf.candidates if c.judged), verdict.LEVEL)
    head = ["candidate", "search", "seeds", "mean", "std", *(f"seed {s}" for s in seeds), "delta"]
    head += [f"{level:.1%} CI", "verdict"]
    lines = [head]
    for c in [conf.baseline, *conf.candidates]:
        per_seed = [f"{c.values[s]:.4g}" if s in c.values else c.failed.get(s, "-") for s in seeds]
        ci = f"[{c.ci[0]:+.4f}, {c.ci[1]:+.4f}]" if math.isfinite(c.ci[0]) else "-"
        delta = f"{c.delta:+.4f}" if math.isfinite(c.delta) else "-"
        row = [c.label, f"{c.row.metric:.4g}", str(c.seeds_used), _num(c.mean), _num(c.std), *per_seed, delta, ci]
        lines.append([*row, _label(c, conf) if c is not conf.baseline else "-"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def print_summary(conf: Confirmation) -> None:
    """What the terminal shows of the confirmation at the end of the sweep."""
    spec = conf.spec
    assert spec.confirm is not None
    fraction = conf.train_s / max(1e-9, conf.wall_s * max(1, spec.max_concurrent_trials))
    print(
        f"\nconfirmation: {len(conf.candidates) + 1} configs, {conf.baseline.seeds_used} fresh seeds for the "
        f"baseline (at most {spec.confirm.max_seeds}) in {conf.wall_s:.0f} s wall (compute fraction {fraction:.2f}); "
        f"{spec.metric} after {spec.max_epochs} epochs, difference to the baseline with a Welch CI at "
        f"{verdict.LEVEL:.0%} over {spec.confirm.rounds} looks, margin {spec.confirm.margin} = ±{conf.margin:.2g}"
    )
    print(format_table(conf))
    print(summary(conf))


def summary(conf: Confirmation) -> str:
    """The plain-language answer: the winner, or why the answer is the baseline."""
    win, metric, base = conf.winner, conf.spec.metric, conf.baseline.mean
    if win is not conf.baseline:
        return (
            f"{win.label} is better than the baseline: {metric} {win.mean:.4g} vs {base:.4g} "
            f"(difference {win.delta:+.4f}, {win.judged.level if win.judged else verdict.LEVEL:.1%} CI "
            f"[{win.ci[0]:+.4f}, {win.ci[1]:+.4f}], {win.seeds_used} seeds); best_config.yaml is {win.label}"
        )
    if not conf.candidates:
        return "no candidate to confirm; best_config.yaml is the baseline"
    words = {c.label: _label(c, conf) for c in conf.candidates}
    if all(c.verdict == EQUIVALENT for c in conf.candidates):
        why = f"the candidates are equivalent to it within ±{conf.margin:.2g} ({conf.spec.confirm.margin if conf.spec.confirm else ''})"
    elif any(c.verdict == UNDECIDED for c in conf.candidates):
        why = "the seed budget ran out before a decision (raise confirm/max_seeds to decide)"
    else:
        why = "no candidate beat it"
    detail = ", ".join(f"{label}: {word}" for label, word in words.items())
    return f"best_config.yaml is the baseline: {why} ({detail}; baseline {metric} {base:.4g})"


def parent_metrics(conf: Confirmation) -> dict[str, float]:
    """`confirm/*` metrics of the parent run: the top candidate against the baseline."""
    top = conf.top
    out = {"confirm/baseline_mean": conf.baseline.mean, "confirm/margin": conf.margin}
    if top is not None:
        out.update(
            {
                "confirm/best_mean": top.mean,
                "confirm/delta": top.delta,
                "confirm/delta_ci_low": top.ci[0],
                "confirm/delta_ci_high": top.ci[1],
                "confirm/seeds_used": float(top.seeds_used),
            }
        )
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"
