"""What the driver knows of a Tune trial: how it ended (:class:`TrialState`, decided once by
:func:`end_state`), its number, stage, label and directory name."""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from sweeps.search import trial_meta


class TrialState(StrEnum):
    """A trial's state as the sweep names it (progress lines, tables, CSVs, MLflow's `trial_state`
    tag, Optuna's `trial_state` user attribute)."""

    RUNNING = "running"
    COMPLETED = "completed"  # ran all max_epochs with a finite objective
    EARLY_STOPPED = "early_stopped"  # stopped by the scheduler or the time budget (a normal outcome)
    DIVERGED = "diverged"  # its loss turned non-finite
    CRASHED = "crashed"  # it raised (after its retries)
    INTERRUPTED = "interrupted"  # the sweep was stopped while it ran

    @property
    def ok(self) -> bool:
        """Ended normally: its last value can be ranked."""
        return self in (TrialState.COMPLETED, TrialState.EARLY_STOPPED)

    @property
    def failed(self) -> bool:
        return self in (TrialState.DIVERGED, TrialState.CRASHED)


def end_state(last_result: Mapping[str, Any], *, error: bool, max_epochs: int, metric: str) -> TrialState:
    """How a trial ended, from its last report: `crashed` on error; `diverged` when the trainable
    reported a non-finite loss; `early_stopped` when it ended before `max_epochs` reports or
    without a finite objective; else `completed`."""
    if error:
        return TrialState.CRASHED
    if last_result.get("trial_state") == TrialState.DIVERGED:
        return TrialState.DIVERGED
    value = last_result.get(metric)
    finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if int(last_result.get("training_iteration", 0) or 0) < max_epochs or not finite:
        return TrialState.EARLY_STOPPED
    return TrialState.COMPLETED


def trial_number(trial: Any) -> int:
    """The trial's number everywhere (progress lines, tables, MLflow run names, the study's
    `trial` user attribute): 0-based, 0 = the baseline. Trials without one (confirmation) use
    Tune's 1-based order."""
    number = trial_meta(getattr(trial, "config", None)).number
    if number is not None:
        return number
    head = str(getattr(trial, "experiment_tag", "")).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def is_baseline(trial: Any) -> bool:
    return trial_meta(getattr(trial, "config", None)).baseline


def stage(trial: Any) -> str:
    """`search` or `confirm`."""
    return trial_meta(getattr(trial, "config", None)).stage


def trial_label(trial: Any) -> str:
    """How progress lines and MLflow run names call a trial: `trial 3 (1d868443)` in the
    search, `confirm trial 3 seed 1 (...)` in confirmation."""
    meta = trial_meta(getattr(trial, "config", None))
    if meta.confirming:
        return f"confirm {meta.candidate} seed {meta.seed} ({trial.trial_id})"
    return f"trial {trial_number(trial)} ({trial.trial_id})"


def trial_dirname(trial: Any) -> str:
    """Tune's directory of a trial (its `trial_dirname_creator`), ending in the trial id:
    `trial_3_1d868443`, `confirm_trial_3_seed_1_4c0f2a19`."""
    meta = trial_meta(getattr(trial, "config", None))
    if meta.confirming:
        return f"confirm_{meta.candidate.replace(' ', '_')}_seed_{meta.seed}_{trial.trial_id}"
    return f"trial_{trial_number(trial)}_{trial.trial_id}"
