"""The confirmation stage: is the search's answer better than the baseline beyond seed noise?

After the search, the baseline and the `top_k` best search trials (among those that
reached the top rung) are retrained for the full `max_epochs` with each of the
`confirm/seeds`, fresh seeds the search never used. Each candidate is then judged against
the baseline by :mod:`sweeps.verdict` (better, worse, equivalent within the margin, or
undecided). Undecided candidates, and the baseline with them, get another round of as many
fresh seeds, up to `confirm/max_seeds`; decided ones stop. A seed that diverged or crashed
makes its candidate worse. What stays undecided after the last round is reported so, with
the seeds it used.

With several objectives the candidates are up to `top_k` points spread along the search's
Pareto front (:mod:`sweeps.front`), each judged on every objective (a margin per objective,
relative to its baseline mean), and undecided until decided on all of them.

The answer is what the sweep's rule picks (:mod:`sweeps.selection`): by default the better
candidate with the best mean (with several objectives: among those not worse on any other);
when there is none, the answer is the baseline and the report says why (equivalent, worse,
or the budget ran out). The stage lives here whole: it picks the candidates, trains them round by round
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

from sweeps import selection, verdict
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
    # with several objectives: the others' per-seed values and verdicts (by objective name)
    others: dict[str, dict[int, float]] = field(default_factory=dict)
    others_judged: dict[str, verdict.Verdict] = field(default_factory=dict)

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
        """Decided on every objective."""
        judged = [self.judged, *self.others_judged.values()]
        return all(v is not None and v.decided for v in judged)

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
    margins: dict[str, float] = field(default_factory=dict)  # every objective's, with several

    def values(self, c: Candidate, name: str) -> dict[int, float]:
        """`c`'s per-seed final values of objective `name`."""
        return c.values if name == self.spec.metric else c.others.get(name, {})

    def judged(self, c: Candidate, name: str) -> verdict.Verdict | None:
        return c.judged if name == self.spec.metric else c.others_judged.get(name)

    def stats(self, c: Candidate, name: str) -> tuple[float, float]:
        """Mean and std of `c`'s per-seed values of objective `name` (NaN where undefined)."""
        values = list(self.values(c, name).values())
        return (
            statistics.fmean(values) if values else math.nan,
            statistics.stdev(values) if len(values) > 1 else math.nan,
        )

    def confirmed(self, c: Candidate) -> selection.Confirmed:
        """`c` as the selection rule sees it."""
        names = [o.name for o in self.spec.objectives] or [self.spec.metric]
        means = {n: self.stats(c, n)[0] for n in names}
        verdicts = {n: j.word for n in names if (j := self.judged(c, n)) is not None}
        return selection.Confirmed(c.label, means, verdicts)

    @property
    def winner(self) -> Candidate:
        """The candidate the sweep's rule picks (`select`, or the default: the better candidate
        with the best mean on the primary objective, not worse on any other), else the baseline."""
        by_label = {c.label: c for c in self.candidates}
        chosen = selection.choose(
            self.spec.rule, [self.confirmed(c) for c in self.candidates], self.confirmed(self.baseline)
        )
        return by_label.get(chosen.label, self.baseline)

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
    if spec.multi:
        print(f"confirmation of the front: {', '.join(c.label for c in candidates[1:])} (spread along it)", flush=True)
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
    """The baseline, then the `top_k` best search trials at the top rung (with several
    objectives: the first `top_k` points of the front in spread order), distinct from the
    baseline's values."""
    from sweeps.front import build_front

    assert report.baseline is not None
    base = sampled_flat(report.baseline.sampled)
    picked = [Candidate(BASELINE, report.baseline)]
    rows = build_front(report, {}, []).members if report.spec.multi else ranked(report)
    for row in rows:
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
            for o in spec.objectives[1:]:
                cand.others.setdefault(o.name, {})[meta.seed] = float(last.get(o.name, math.nan))
        else:
            cand.failed[meta.seed] = state
    return train_s


def judge_all(conf: Confirmation) -> None:
    """Look at every candidate still undecided after a round (a failed seed: worse)."""
    spec = conf.spec
    assert spec.confirm is not None
    level = verdict.look_level(spec.confirm.rounds)
    for o in spec.objectives or ():
        base = list(conf.values(conf.baseline, o.name).values())
        conf.margins[o.name] = spec.confirm.margin.absolute(statistics.fmean(base)) if base else math.nan
    base = list(conf.baseline.values.values())
    conf.margin = spec.confirm.margin.absolute(conf.baseline.mean) if base else math.nan
    for c in conf.candidates:
        if c.decided:
            continue
        c.judged = _judge(list(c.values.values()), base, spec.mode, conf.margin, level, bool(c.failed))
        for o in spec.objectives[1:]:
            base_o = list(conf.values(conf.baseline, o.name).values())
            mine = list(c.others.get(o.name, {}).values())
            c.others_judged[o.name] = _judge(mine, base_o, o.mode, conf.margins[o.name], level, bool(c.failed))


def _judge(
    values: list[float], base: list[float], mode: str, margin: float, level: float, failed: bool
) -> verdict.Verdict:
    """The verdict on one objective; a candidate with a failed seed is worse."""
    judged = verdict.judge(values, base, mode, margin, level)
    return verdict.Verdict(judged.delta, judged.ci, level, WORSE) if failed else judged


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
    others = conf.spec.objectives[1:]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["candidate", "search_trial_id", "search_value", "search_epochs", *(f"seed_{s}" for s in seeds),
             "seeds_used", "mean", "std", "delta", "delta_ci_low", "delta_ci_high", "ci_level", "margin", "verdict",
             *(f"{o.name}:{k}" for o in others for k in OTHER_COLUMNS), *params]
        )  # fmt: skip
        for c in [conf.baseline, *conf.candidates]:
            flat = sampled_flat(c.row.sampled)
            per_seed = [c.values.get(s, c.failed.get(s, "")) for s in seeds]
            level = c.judged.level if c.judged else ""
            w.writerow(
                [c.label, c.row.trial_id, c.row.metric, c.row.epochs, *per_seed, c.seeds_used, c.mean, c.std,
                 c.delta, c.ci[0], c.ci[1], level, conf.margin, c.verdict or "-",
                 *(x for o in others for x in _other_cells(conf, c, o.name)), *(flat.get(p, "") for p in params)]
            )  # fmt: skip
    return path


OTHER_COLUMNS = ("mean", "std", "delta", "delta_ci_low", "delta_ci_high", "margin", "verdict")


def _other_cells(conf: Confirmation, c: Candidate, name: str) -> list[Any]:
    judged = conf.judged(c, name)
    return [
        *conf.stats(c, name),
        judged.delta if judged else math.nan,
        judged.ci[0] if judged else math.nan,
        judged.ci[1] if judged else math.nan,
        conf.margins.get(name, math.nan),
        judged.word if judged else "-",
    ]


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
    ax.set_ylabel(conf.spec.metric + (" (primary; pareto.png shows every objective)" if conf.spec.multi else ""))
    better = "lower" if conf.spec.mode == "min" else "higher"
    ax.set_title(
        f"confirmation of sweep {conf.spec.name}: fresh seeds x {conf.spec.max_epochs} epochs\n"
        f"dots: one seed each, bar: mean; {better} is better",
        fontsize=10,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def format_table(conf: Confirmation) -> str:
    if conf.spec.multi:
        return objective_table(conf)
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


def objective_table(conf: Confirmation) -> str:
    """Several objectives: a line per candidate and objective (mean, std, difference to the
    baseline in units and in %, its CI, the verdict)."""
    level = next((c.judged.level for c in conf.candidates if c.judged), verdict.LEVEL)
    head = ["candidate", "objective", "seeds", "mean", "std", "delta", "delta %", f"{level:.1%} CI", "verdict"]
    lines = []
    base_means = conf.confirmed(conf.baseline).means
    for c in [conf.baseline, *conf.candidates]:
        for o in conf.spec.objectives:
            mean, std = conf.stats(c, o.name)
            judged = conf.judged(c, o.name)
            base = base_means[o.name]
            delta = judged.delta if judged else math.nan
            ci = f"[{judged.ci[0]:+.4g}, {judged.ci[1]:+.4g}]" if judged and math.isfinite(judged.ci[0]) else "-"
            word = _word(judged, conf.margins.get(o.name, math.nan), c.seeds_used) if c is not conf.baseline else "-"
            pct = f"{100 * delta / abs(base):+.1f}" if math.isfinite(delta) and base else "-"
            delta_s = f"{delta:+.4g}" if math.isfinite(delta) else "-"
            lines.append([c.label, o.name, str(c.seeds_used), _num(mean), _num(std), delta_s, pct, ci, word])
    widths = [max(len(line[i]) for line in [head, *lines]) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in [head, *lines])


def _word(judged: verdict.Verdict | None, margin: float, seeds: int) -> str:
    if judged is None:
        return "-"
    if judged.word == EQUIVALENT:
        return f"{EQUIVALENT} within ±{margin:.2g}"
    if judged.word == UNDECIDED:
        return f"{UNDECIDED} after {seeds} seeds"
    return judged.word


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
    if conf.spec.multi:
        return trade_off(conf)
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


def trade_off(conf: Confirmation) -> str:
    """Several objectives: the chosen point and what it trades, or why the answer is the baseline,
    with the rule that chose, in one line."""
    rule, win = conf.spec.rule, conf.winner
    if win is conf.baseline:
        if not conf.candidates:
            return f"no front point to confirm; best_config.yaml is the baseline (rule: {rule})"
        detail = "; ".join(f"{c.label}: {_verdicts(conf, c)}" for c in conf.candidates)
        return f"best_config.yaml is the baseline: no confirmed point qualifies ({detail}); chosen by: {rule}"
    base = conf.confirmed(conf.baseline).means
    mine = conf.confirmed(win).means
    parts = []
    for o in conf.spec.objectives:
        judged = conf.judged(win, o.name)
        if o.name == rule.objective.name and judged is not None and base[o.name]:
            pct = 100 / abs(base[o.name])
            parts.append(
                f"{o.name} {pct * judged.delta:+.1f} % [{pct * judged.ci[0]:+.1f}, {pct * judged.ci[1]:+.1f}] ({judged.word})"
            )
        elif base[o.name]:
            parts.append(
                f"{o.name} {mine[o.name] / base[o.name]:.2g}x the baseline's ({judged.word if judged else '-'})"
            )
    return f"{win.label}: {', '.join(parts)}; chosen by: {rule}; best_config.yaml is {win.label}"


def _verdicts(conf: Confirmation, c: Candidate) -> str:
    return ", ".join(f"{o.name} {j.word if (j := conf.judged(c, o.name)) else '-'}" for o in conf.spec.objectives)


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
    if conf.spec.multi:
        for o in conf.spec.objectives:
            out[f"confirm/baseline_mean/{o.name}"] = conf.confirmed(conf.baseline).means[o.name]
            out[f"confirm/chosen_mean/{o.name}"] = conf.confirmed(conf.winner).means[o.name]
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "-"
