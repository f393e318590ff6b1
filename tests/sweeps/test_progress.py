"""The compact progress table: trials by state, best first, searched values under short names."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sweeps.pareto import Objective
from sweeps.progress import ProgressLines


def _trial(number: int, status: str, epochs: int, value: float, end: float) -> Any:
    config = {"losses": {"KL": {"end_ramp_val": end}}, "sweep": {"stage": "search", "number": number}}
    last = {"training_iteration": epochs, "val/transfer/l1": value} if epochs else {}
    return SimpleNamespace(trial_id=f"id{number}", config=config, status=status, last_result=last, experiment_tag="")


def test_table_counts_states_and_lists_the_best_first(capsys: Any) -> None:
    lines = ProgressLines("val/transfer/l1", 8, "min", every_s=0.0)
    trials = [
        _trial(0, "RUNNING", 3, 0.20, 1.0),
        _trial(1, "TERMINATED", 2, 0.25, 0.1),
        _trial(2, "RUNNING", 3, 0.18, 0.01),
        _trial(3, "PENDING", 0, float("nan"), 0.5),
    ]
    lines.maybe_table(trials)
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("4 trials: 1 early_stopped, 1 pending, 2 running")
    assert out[1].split() == ["trial", "state", "epoch", "val/transfer/l1", "end_ramp_val"]
    assert [row.split()[0] for row in out[2:]] == ["2", "0", "1", "3"]
    assert out[2].split() == ["2", "running", "3/8", "0.18", "0.01"]
    assert out[5].split() == ["3", "pending", "0/8", "-", "0.5"]


def test_trial_directories_are_short_and_end_in_the_trial_id() -> None:
    from sweeps.trial_info import trial_dirname

    assert trial_dirname(_trial(3, "PENDING", 0, 0.0, 0.5)) == "trial_3_id3"
    confirm = SimpleNamespace(
        trial_id="4c0f2a19", config={"sweep": {"stage": "confirm", "candidate": "trial 3", "seed": 1}}
    )
    assert trial_dirname(confirm) == "confirm_trial_3_seed_1_4c0f2a19"


def test_report_rows_come_from_tune_results_including_a_trial_that_crashed_before_reporting() -> None:
    from sweeps.report import build_report
    from sweeps.sweep_dir import Span, SweepState

    spec = SimpleNamespace(
        metric="val/transfer/l1", mode="min", max_epochs=8, objectives=(Objective("val/transfer/l1", "min"),)
    )
    base = {"sweep": {"stage": "search", "number": 0, "baseline": True}}
    done = SimpleNamespace(
        metrics={"trial_id": "aa", "training_iteration": 8, "val/transfer/l1": 0.17, "time_total_s": 9.0},
        config=base,
        error=None,
        path="/x/tune/trial_0_aa",
    )
    crashed = SimpleNamespace(
        metrics={}, config={"sweep": {"number": 1}}, error=RuntimeError("boom"), path="/x/tune/trial_1_bb"
    )
    report = build_report(spec, [done, crashed], SweepState("sqlite:////x", spans=(Span(1, "search", 0.0, 10.0),)))
    assert [(r.trial_id, r.number, r.state, r.epochs) for r in report.rows] == [
        ("aa", 0, "completed", 8),
        ("bb", 1, "crashed", 0),
    ]
    assert report.baseline is report.rows[0] and report.best is report.rows[0]


def test_the_confirmation_stages_table_says_so(capsys: Any) -> None:
    lines = ProgressLines("val/transfer/l1", 8, "min", every_s=0.0)
    confirm = _trial(0, "RUNNING", 2, 0.3, 1.0)
    confirm.config["sweep"] = {"stage": "confirm", "candidate": "baseline", "seed": 1}
    lines.maybe_table([confirm])
    assert capsys.readouterr().out.splitlines()[0].endswith("] 1 confirmation trials: 1 running")
