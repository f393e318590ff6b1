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

from sweeps import confirm
from sweeps.report import SweepReport, TrialRow
from sweeps.search import trial_meta
from sweeps.searcher import StudySearcher, load_study
from sweeps.trial_info import TrialState
from sweeps.tuner import make_scheduler
from tests.sweeps.test_space import make_spec

BASE = [0.200, 0.204, 0.198]


@pytest.mark.parametrize(
    ("values", "mode", "verdict"),
    [
        ([0.180, 0.183, 0.179], "min", confirm.BETTER),  # lower L1, far beyond the seed spread
        ([0.199, 0.206, 0.197], "min", confirm.SAME),  # overlapping
        ([0.230, 0.226, 0.233], "min", confirm.WORSE),
        ([0.230, 0.226, 0.233], "max", confirm.BETTER),  # e.g. the appearance gain: higher is better
        ([0.180, 0.183, 0.179], "max", confirm.WORSE),
    ],
)
def test_verdict_follows_the_welch_interval(values: list[float], mode: str, verdict: str) -> None:
    delta, (low, high), got = confirm.judge(values, BASE, mode)
    assert got == verdict
    assert low < delta < high
    assert delta == pytest.approx(sum(values) / 3 - sum(BASE) / 3)


def test_a_gain_smaller_than_the_seed_spread_is_no_difference() -> None:
    noisy = [0.18, 0.22, 0.20]  # mean 0.200; a candidate 0.005 better on average
    _, (low, high), verdict = confirm.judge([x - 0.005 for x in noisy], noisy, "min")
    assert verdict == confirm.SAME and low < 0 < high


def test_exactly_repeatable_values_still_get_a_verdict() -> None:
    assert confirm.judge([0.1, 0.1], [0.2, 0.2], "min") == (pytest.approx(-0.1), (pytest.approx(-0.1),) * 2, "better")
    assert confirm.judge([0.2, 0.2], [0.2, 0.2], "min")[2] == confirm.SAME


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


def test_winner_is_the_best_confirmed_candidate_else_the_baseline(tmp_path: Path) -> None:
    rep = report(tmp_path, [row(1, 0.20), row(2, 0.17, lr=2e-3), row(3, 0.18, lr=3e-3)])
    picked = confirm.pick_candidates(rep, top_k=2)
    results = [result("baseline", s, v) for s, v in zip((1, 2, 3), BASE, strict=True)]
    results += [result("trial 2", s, v) for s, v in zip((1, 2, 3), (0.199, 0.206, 0.197), strict=True)]
    results += [result("trial 3", s, v) for s, v in zip((1, 2, 3), (0.180, 0.183, 0.179), strict=True)]
    conf = confirm.collect(rep.spec, picked, results, 60.0)
    assert [c.verdict for c in conf.candidates] == [confirm.SAME, confirm.BETTER]
    assert conf.winner.label == "trial 3" and conf.top is conf.winner
    assert "trial 3 is better than the baseline" in confirm.summary(conf)
    metrics = confirm.parent_metrics(conf)
    assert metrics["confirm/best_mean"] == pytest.approx(0.1806667, abs=1e-6)
    assert metrics["confirm/delta_ci_low"] < metrics["confirm/delta"] < metrics["confirm/delta_ci_high"] < 0

    # The same, but trial 3 diverged with one seed: not robust, so not the answer.
    results[-1] = result("trial 3", 3, float("inf"), trial_state="diverged")
    picked = confirm.pick_candidates(rep, top_k=2)
    conf = confirm.collect(rep.spec, picked, results, 60.0)
    assert conf.candidates[1].verdict == confirm.WORSE and conf.candidates[1].failed == {3: "diverged"}
    assert conf.winner is conf.baseline
    assert confirm.summary(conf).startswith("no candidate beat the baseline beyond seed noise")

    path = confirm.write_csv(conf, tmp_path / "confirm.csv")
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["candidate"] for r in rows] == ["baseline", "trial 2", "trial 3"]
    assert rows[2]["seed_3"] == "diverged" and rows[1]["verdict"] == confirm.SAME
    assert float(rows[0]["seed_2"]) == 0.204 and rows[2]["optimizer/lr"] == "0.003"
    png = confirm.plot(conf, tmp_path / "confirm.png")
    assert png.stat().st_size > 10_000
    table = confirm.format_table(conf)
    assert "no detectable difference" in table and "diverged" in table


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
