"""How a trial ended, from its last report: completed, early_stopped, diverged or crashed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STATES = ("completed", "early_stopped", "diverged", "crashed")


def trial_state(last_result: Mapping[str, Any], error: bool, max_epochs: int) -> str:
    """`crashed` on error; `diverged` when the trainable reported a non-finite loss;
    `early_stopped` when it ended before `max_epochs` reports; else `completed`."""
    if error:
        return "crashed"
    if last_result.get("trial_state") == "diverged":
        return "diverged"
    if int(last_result.get("training_iteration", 0)) < max_epochs:
        return "early_stopped"
    return "completed"


def trial_number(trial: Any) -> int:
    """1-based order in which Tune created the trial (the prefix of its experiment tag)."""
    head = str(getattr(trial, "experiment_tag", "")).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def is_baseline(trial: Any) -> bool:
    """The first trial evaluates the base configuration (OptunaSearch points_to_evaluate)."""
    return trial_number(trial) == 1
