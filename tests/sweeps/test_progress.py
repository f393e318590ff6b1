"""The compact progress table: trials by state, best first, searched values under short names."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sweeps.progress import ProgressLines


def _trial(number: int, status: str, epochs: int, value: float, end: float) -> Any:
    config = {"losses": {"KL": {"end_ramp_val": end}}, "sweep": {"stage": "search", "optuna_trial": number}}
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
