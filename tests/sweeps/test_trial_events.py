"""The sweep's one Tune callback: each trial event reaches MLflow, the progress lines and the
contact cache, and how a trial ended is decided once for all of them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray import tune

from sweeps.progress import ProgressLines
from sweeps.trial_events import TrialEvents
from sweeps.trial_info import TrialState, end_state


class RecordingMlflow:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def opened_run(self, trial: Any) -> None:
        self.calls.append(("open", trial.trial_id))

    def restored(self, trial: Any) -> None:
        self.calls.append(("restore", trial.trial_id))

    def result(self, trial: Any, result: dict[str, Any]) -> None:
        self.calls.append(("result", trial.trial_id, str(result["training_iteration"])))

    def checkpoint(self, trial: Any, path: Path) -> None:
        self.calls.append(("checkpoint", trial.trial_id, path.name))

    def finish(self, trial: Any, state: str) -> None:
        self.calls.append(("finish", trial.trial_id, state))


def _trial(number: int, last: dict[str, Any]) -> Any:
    config = {"sweep": {"stage": "search", "number": number}}
    return SimpleNamespace(
        trial_id=f"t{number}", config=config, last_result=last, status="RUNNING", error_file="/x/error.txt"
    )


@pytest.mark.parametrize(
    ("last", "error", "state", "line"),
    [
        ({"training_iteration": 4, "val/transfer/l1": 0.2}, False, "completed", "completed after 4 epochs"),
        ({"training_iteration": 2, "val/transfer/l1": 0.3}, False, "early_stopped", "early_stopped after 2 epochs"),
        (
            {"training_iteration": 1, "trial_state": "diverged", "diverged_term": "KL", "diverged_step": 7},
            False,
            "diverged",
            "diverged after 1 epochs: loss KL non-finite at step 7",
        ),
        ({}, True, "crashed", "crashed (error log: /x/error.txt)"),
    ],
)
def test_each_event_reaches_mlflow_and_the_progress_lines_with_one_state(
    tmp_path: Path, capsys: Any, last: dict[str, Any], error: bool, state: str, line: str
) -> None:
    mlflow = RecordingMlflow()
    events = TrialEvents(mlflow, ProgressLines("val/transfer/l1", 4, every_s=1e9), tmp_path)  # type: ignore[arg-type]
    trial = _trial(3, last)
    events.on_trial_start(0, [trial], trial)
    events.on_trial_result(0, [trial], trial, {"training_iteration": 1, "val/transfer/l1": 0.5})
    events.on_checkpoint(0, [trial], trial, tune.Checkpoint(str(tmp_path / "checkpoint_000000")))
    if error:
        events.on_trial_error(0, [trial], trial)
    else:
        events.on_trial_complete(0, [trial], trial)
    assert mlflow.calls == [
        ("open", "t3"),
        ("result", "t3", "1"),
        ("checkpoint", "t3", "checkpoint_000000"),
        ("finish", "t3", state),
    ]
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["trial 3 (t3) started", "trial 3 (t3) epoch 1/4: val/transfer/l1 0.5"]
    assert out[2].startswith(f"trial 3 (t3) {line}")
    assert not (tmp_path / "contact").exists()  # a checkpoint without eval outputs caches nothing


def test_a_restored_trial_reopens_its_run_without_a_started_line(tmp_path: Path, capsys: Any) -> None:
    mlflow = RecordingMlflow()
    events = TrialEvents(mlflow, ProgressLines("val/transfer/l1", 4), tmp_path)  # type: ignore[arg-type]
    trial = _trial(1, {})
    events.on_trial_restore(0, [trial], trial)
    assert mlflow.calls == [("restore", "t1")] and capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("last", "error", "state"),
    [
        ({"training_iteration": 4, "val/transfer/l1": 0.2}, False, TrialState.COMPLETED),
        ({"training_iteration": 3, "val/transfer/l1": 0.2}, False, TrialState.EARLY_STOPPED),
        ({"training_iteration": 4, "val/transfer/l1": float("nan")}, False, TrialState.EARLY_STOPPED),
        ({"training_iteration": 4}, False, TrialState.EARLY_STOPPED),
        (
            {"training_iteration": 2, "trial_state": "diverged", "val/transfer/l1": float("inf")},
            False,
            TrialState.DIVERGED,
        ),
        ({"training_iteration": 4, "val/transfer/l1": 0.2}, True, TrialState.CRASHED),
    ],
)
def test_one_rule_decides_how_a_trial_ended(last: dict[str, Any], error: bool, state: TrialState) -> None:
    """The callback, the searcher, the report and the confirmation all call end_state."""
    assert end_state(last, error=error, max_epochs=4, metric="val/transfer/l1") is state
    assert str(state) == state.value  # MLflow tags, CSV cells and Optuna attributes hold the plain name
