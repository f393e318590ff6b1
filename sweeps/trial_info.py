"""What the driver knows of a Tune trial: how it ended (completed, early_stopped, diverged or
crashed), its number, stage, label and directory name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sweeps.search import trial_meta

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


def optuna_number(config: Mapping[str, Any]) -> int | None:
    """The Optuna trial number a searcher wrote into a trial's config (0 = the baseline), if any."""
    number = trial_meta(config).get("optuna_trial")
    return number if isinstance(number, int) else None


def trial_number(trial: Any) -> int:
    """The trial's number everywhere (progress lines, tables, MLflow run names): its Optuna trial
    number, 0-based, 0 = the baseline. Trials without one (confirmation) use Tune's 1-based order."""
    number = optuna_number(getattr(trial, "config", None) or {})
    if number is not None:
        return number
    head = str(getattr(trial, "experiment_tag", "")).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def trains_baseline(config: Mapping[str, Any]) -> bool:
    """Whether a trial config trains the base configuration (the searcher marks it; never with
    `baseline: false`)."""
    return bool(trial_meta(config).get("baseline"))


def is_baseline(trial: Any) -> bool:
    return trains_baseline(getattr(trial, "config", None) or {})


def stage(trial: Any) -> str:
    """`search` or `confirm`."""
    return str(trial_meta(getattr(trial, "config", None) or {}).get("stage", "search"))


def trial_label(trial: Any) -> str:
    """How progress lines and MLflow run names call a trial: `trial 3 (1d868443)` in the
    search, `confirm trial 3 seed 1 (...)` in confirmation."""
    meta = trial_meta(getattr(trial, "config", None) or {})
    if meta.get("stage") == "confirm":
        return f"confirm {meta.get('candidate')} seed {meta.get('seed')} ({trial.trial_id})"
    return f"trial {trial_number(trial)} ({trial.trial_id})"


def trial_dirname(trial: Any) -> str:
    """Tune's directory of a trial (its `trial_dirname_creator`), ending in the trial id:
    `trial_3_1d868443`, `confirm_trial_3_seed_1_4c0f2a19`."""
    meta = trial_meta(getattr(trial, "config", None) or {})
    if meta.get("stage") == "confirm":
        candidate = str(meta.get("candidate")).replace(" ", "_")
        return f"confirm_{candidate}_seed_{meta.get('seed')}_{trial.trial_id}"
    return f"trial_{trial_number(trial)}_{trial.trial_id}"
