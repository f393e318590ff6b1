"""Confirmation logic on synthetic numbers: verdicts, the winner, candidates, outputs; and
the search stage's honesty without Ray: no baseline when `baseline: false`, PRUNED for
early-stopped trials, every epoch an intermediate value."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from ray.tune.schedulers import TrialScheduler

from sweeps import confirm, verdict
from sweeps.report import SweepReport, TrialRow
from sweeps.search import trial_meta
from sweeps.searcher import StudySearcher, load_study
from sweeps.trial_info import TrialState
from sweeps.tuner import make_scheduler
from tests.sweeps.test_space import make_spec

BASE = [0.200, 0.204, 0.198]


@pytest.mark.parametrize(
    ("values", "mode", "word"),
    [
        ([0.180, 0.183, 0.179], "min", verdict.BETTER),  # lower L1, far beyond the seed spread
        ([0.199, 0.206, 0.197], "min", verdict.UNDECIDED),  # overlapping, and wider than the margin
        ([0.230, 0.226, 0.233], "min", verdict.WORSE),
        ([0.230, 0.226, 0.233], "max", verdict.BETTER),  # e.g. the appearance gain: higher is better
        ([0.180, 0.183, 0.179], "max", verdict.WORSE),
        ([0.2003, 0.2011, 0.2006], "min", verdict.EQUIVALENT),  # the whole interval within +-0.005
    ],
)
def test_verdict_follows_the_welch_interval(values: list[float], mode: str, word: str) -> None:
    BASE_TIGHT = [0.2007, 0.2001, 0.2010]
    base = BASE_TIGHT if word == verdict.EQUIVALENT else BASE
    got = verdict.judge(values, base, mode, margin=0.005)
    assert got.word == word and got.decided == (word != verdict.UNDECIDED)
    assert got.ci[0] < got.delta < got.ci[1]
    assert got.delta == pytest.approx(sum(values) / 3 - sum(base) / 3)


def test_a_gain_smaller_than_the_seed_spread_is_undecided_and_a_tiny_one_equivalent() -> None:
    noisy = [0.18, 0.22, 0.20]  # mean 0.200; a candidate 0.005 better on average
    got = verdict.judge([x - 0.005 for x in noisy], noisy, "min", margin=0.002)
    assert got.word == verdict.UNDECIDED and got.ci[0] < 0 < got.ci[1]
    # Significantly better, but by less than what matters: equivalent, not better.
    tight = [0.2000, 0.2001, 0.2002]
    assert verdict.judge([x - 0.0005 for x in tight], tight, "min", margin=0.002).word == verdict.EQUIVALENT
    assert verdict.judge([x - 0.0005 for x in tight], tight, "min", margin=0.0).word == verdict.BETTER


def test_exactly_repeatable_values_still_get_a_verdict() -> None:
    got = verdict.judge([0.1, 0.1], [0.2, 0.2], "min", margin=0.0)
    assert (got.delta, got.ci, got.word) == (pytest.approx(-0.1), (pytest.approx(-0.1),) * 2, verdict.BETTER)
    assert verdict.judge([0.2, 0.2], [0.2, 0.2], "min", margin=0.0).word == verdict.EQUIVALENT


def test_more_looks_need_stricter_intervals() -> None:
    """Bonferroni over the looks: each of 2 looks at 97.5 %, so a difference that 95 % calls
    better in one look can stay undecided when a second look is planned."""
    assert verdict.look_level(1) == pytest.approx(0.95) and verdict.look_level(2) == pytest.approx(0.975)
    values, base = [0.1965, 0.1985, 0.1975], [0.2000, 0.2015, 0.1995]
    assert verdict.judge(values, base, "min", 0.0, verdict.look_level(1)).word == verdict.BETTER
    assert verdict.judge(values, base, "min", 0.0, verdict.look_level(2)).word == verdict.UNDECIDED


def row(number: int, metric: float, epochs: int = 4, state: str = "completed", lr: float = 1e-3) -> TrialRow:
    return TrialRow(f"t{number}", number, TrialState(state), epochs, metric, {"optimizer": {"lr": lr}}, 10.0)


def report(tmp_path: Path, rows: list[TrialRow]) -> SweepReport:
    spec = make_spec(tmp_path, max_epochs=4, confirm={"top_k": 2, "seeds": [1, 2, 3]})
    out = SweepReport(spec, rows, 100.0)
    out.baseline = rows[0]
    return out


def test_candidates_come_from_the_top_rung_only(tmp_path: Path) -> None:
    rows = [
        row(1, 0.30, lr=1e-3),
        row(2, 0.10, epochs=2, state="early_stopped", lr=2e-3),  # best value, but measured at epoch 2
        row(3, 0.25, lr=3e-3),
        row(4, 0.28, lr=4e-3),
        row(5, float("inf"), state="diverged", lr=5e-3),
        row(6, 0.29, lr=1e-3),  # the baseline's values again: nothing to confirm
    ]
    picked = confirm.pick_candidates(report(tmp_path, rows), top_k=3)
    assert [c.label for c in picked] == ["baseline", "trial 3", "trial 4"]
    configs = confirm.trial_configs(picked[:2], (1, 2))
    assert [(trial_meta(c).candidate, c["training"]["seed"]) for c in configs] == [
        ("baseline", 1),
        ("baseline", 2),
        ("trial 3", 1),
        ("trial 3", 2),
    ]
    assert configs[2]["optimizer"]["lr"] == 3e-3 and trial_meta(configs[0]).baseline is True


def result(candidate: str, seed: int, value: float, epochs: int = 4, **extra: Any) -> SimpleNamespace:
    meta = {"stage": "confirm", "candidate": candidate, "seed": seed}
    metrics = {"val/transfer/l1": value, "training_iteration": epochs, "time_total_s": 5.0, **extra}
    return SimpleNamespace(config={"sweep": meta}, metrics=metrics, error=None)


def collect(spec: Any, candidates: list[confirm.Candidate], results: Any) -> confirm.Confirmation:
    """One round's results recorded and judged, as run_stage does after each round."""
    conf = confirm.Confirmation(spec, candidates[0], candidates[1:])
    conf.train_s = confirm.record(spec, candidates, results)
    confirm.judge_all(conf)
    return conf


def test_winner_is_the_best_confirmed_candidate_else_the_baseline(tmp_path: Path) -> None:
    rep = report(tmp_path, [row(1, 0.20), row(2, 0.17, lr=2e-3), row(3, 0.18, lr=3e-3)])
    picked = confirm.pick_candidates(rep, top_k=2)
    results = [result("baseline", s, v) for s, v in zip((1, 2, 3), BASE, strict=True)]
    results += [result("trial 2", s, v) for s, v in zip((1, 2, 3), (0.199, 0.206, 0.197), strict=True)]
    results += [result("trial 3", s, v) for s, v in zip((1, 2, 3), (0.180, 0.183, 0.179), strict=True)]
    conf = collect(rep.spec, picked, results)
    assert [c.verdict for c in conf.candidates] == [verdict.UNDECIDED, verdict.BETTER]
    assert conf.winner.label == "trial 3" and conf.top is conf.winner
    assert "trial 3 is better than the baseline" in confirm.summary(conf)
    metrics = confirm.parent_metrics(conf)
    assert metrics["confirm/best_mean"] == pytest.approx(0.1806667, abs=1e-6)
    assert metrics["confirm/delta_ci_low"] < metrics["confirm/delta"] < metrics["confirm/delta_ci_high"] < 0

    # The same, but trial 3 diverged with one seed: not robust, so not the answer.
    results[-1] = result("trial 3", 3, float("inf"), trial_state="diverged")
    picked = confirm.pick_candidates(rep, top_k=2)
    conf = collect(rep.spec, picked, results)
    assert conf.candidates[1].verdict == verdict.WORSE and conf.candidates[1].failed == {3: "diverged"}
    assert conf.winner is conf.baseline
    assert confirm.summary(conf).startswith("best_config.yaml is the baseline: the seed budget ran out")
    assert "trial 3: worse" in confirm.summary(conf) and "trial 2: undecided after 3 seeds" in confirm.summary(conf)

    path = confirm.write_csv(conf, tmp_path / "confirm.csv")
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["candidate"] for r in rows] == ["baseline", "trial 2", "trial 3"]
    assert rows[2]["seed_3"] == "diverged" and rows[1]["verdict"] == verdict.UNDECIDED
    assert rows[1]["seeds_used"] == "3" and float(rows[1]["margin"]) == pytest.approx(0.01 * 0.2006667)
    assert float(rows[0]["seed_2"]) == 0.204 and rows[2]["optimizer/lr"] == "0.003"
    png = confirm.plot(conf, tmp_path / "confirm.png")
    assert png.stat().st_size > 10_000
    table = confirm.format_table(conf)
    assert "undecided after 3 seeds" in table and "diverged" in table and "97.5% CI" in table


def test_baseline_false_marks_no_trial_and_asha_may_stop_any(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, baseline=False, max_epochs=4)
    (tmp_path / "sweep").mkdir()
    searcher = StudySearcher(spec, tmp_path / "sweep")
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert not any(trial_meta(c).baseline for c in configs)
    asha = make_scheduler(spec)
    asha.set_search_properties("val/transfer/l1", "min")
    trials = [SimpleNamespace(trial_id=f"t{i}", config=c) for i, c in enumerate(configs)]
    for trial in trials:
        asha.on_trial_add(None, trial)
    first = asha.on_trial_result(None, trials[0], {"training_iteration": 1, "val/transfer/l1": 0.9})
    asha.on_trial_result(None, trials[1], {"training_iteration": 1, "val/transfer/l1": 0.1})
    assert first == TrialScheduler.CONTINUE  # nothing to compare with yet
    late = asha.on_trial_result(None, trials[2], {"training_iteration": 1, "val/transfer/l1": 0.95})
    assert late == TrialScheduler.STOP  # the first trial is not protected: plain ASHA


def test_study_gets_every_epoch_and_honest_end_states(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, max_epochs=3)
    (tmp_path / "sweep").mkdir()
    searcher = StudySearcher(spec, tmp_path / "sweep")
    for i in range(4):
        searcher.suggest(f"t{i}")
    for epoch in (1, 2):
        searcher.on_trial_result("t0", {"val/transfer/l1": 0.5 - 0.1 * epoch, "training_iteration": epoch})
    # Tune passes the result a scheduler stopped a trial on to on_trial_complete only.
    searcher.on_trial_complete("t0", {"val/transfer/l1": 0.2, "training_iteration": 3})
    searcher.on_trial_result("t1", {"val/transfer/l1": 0.6, "training_iteration": 1})
    searcher.on_trial_complete("t1", {"val/transfer/l1": 0.6, "training_iteration": 1})  # ASHA stopped it
    searcher.on_trial_result("t2", {"val/transfer/l1": 0.45, "training_iteration": 1})
    diverged = {"val/transfer/l1": float("inf"), "trial_state": "diverged", "diverged_step": 7, "training_iteration": 2}
    searcher.on_trial_result("t2", diverged)
    searcher.on_trial_complete("t2", diverged)
    searcher.on_trial_complete("t3", {"training_iteration": 0}, error=True)
    trials = load_study(spec, tmp_path / "sweep").trials
    State = optuna.trial.TrialState
    assert [t.state for t in trials] == [State.COMPLETE, State.PRUNED, State.FAIL, State.FAIL]
    assert trials[0].intermediate_values == {1: pytest.approx(0.4), 2: pytest.approx(0.3), 3: pytest.approx(0.2)}
    assert trials[1].value == 0.6 and trials[1].intermediate_values == {1: 0.6}  # its last value, at epoch 1
    assert trials[2].user_attrs["diverged_step"] == 7 and trials[2].intermediate_values == {1: 0.45}
    assert trials[3].user_attrs["trial_state"] == "crashed"
    assert [t.user_attrs["epochs"] for t in trials] == [3, 1, 2, 0]


def test_undecided_candidates_get_another_round_of_seeds_and_decided_ones_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweeps.session import SweepSession
    from sweeps.storage import local

    rep = report(tmp_path, [row(0, 0.20), row(2, 0.17, lr=2e-3), row(3, 0.18, lr=3e-3)])
    assert rep.spec.confirm is not None and rep.spec.confirm.max_seeds == 6  # twice the 3 seeds by default
    session = SweepSession(rep.spec, rep.spec.base_tree(), "sqlite:////x", tmp_path, local(tmp_path))
    noise = {1: 0.002, 2: -0.001, 3: 0.0, 4: -0.002, 5: 0.001, 6: 0.0005}
    means = {"baseline": 0.200, "trial 2": 0.180, "trial 3": 0.199}  # trial 3 is close: needs more seeds
    rounds: list[tuple[int, list[tuple[str, int]]]] = []

    def fake_tuner(session: Any, callbacks: Any, round_no: int, configs: list[dict[str, Any]], resume: bool) -> Any:
        rounds.append((round_no, [(trial_meta(c).candidate, trial_meta(c).seed) for c in configs]))
        return configs

    def fit(configs: list[dict[str, Any]]) -> list[SimpleNamespace]:
        return [
            result(
                trial_meta(c).candidate, trial_meta(c).seed, means[trial_meta(c).candidate] + noise[trial_meta(c).seed]
            )
            for c in configs
        ]  # type: ignore[index]

    monkeypatch.setattr(confirm, "_round_tuner", fake_tuner)
    conf = confirm.run_stage(session, rep, [], confirm.Runner(fit, lambda: False))
    assert rounds[0] == (1, [(c, s) for c in ("baseline", "trial 2", "trial 3") for s in (1, 2, 3)])
    assert rounds[1] == (2, [(c, s) for c in ("baseline", "trial 3") for s in (4, 5, 6)])  # trial 2 was decided
    assert len(rounds) == 2
    trial2, trial3 = conf.candidates
    assert (trial2.verdict, trial2.seeds_used, conf.baseline.seeds_used) == (verdict.BETTER, 3, 6)
    assert trial3.seeds_used == 6 and trial3.verdict == verdict.UNDECIDED  # 0.001 apart, spread 0.0015: no call
    assert trial3.judged is not None and trial3.judged.level == pytest.approx(0.975)
    assert "undecided after 6 seeds" in confirm.format_table(conf)
    assert confirm.parent_metrics(conf)["confirm/seeds_used"] == 3  # the top candidate's (trial 2)

    # Interrupted in the first round: no second round starts.
    rounds.clear()
    rep = report(tmp_path, [row(0, 0.20), row(2, 0.17, lr=2e-3), row(3, 0.18, lr=3e-3)])
    confirm.run_stage(session, rep, [], confirm.Runner(fit, lambda: True))
    assert [r for r, _ in rounds] == [1]
