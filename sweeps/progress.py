"""One line per trial event on the driver's stdout: the sweep's progress at a glance.

trial 3 (1d868443) epoch 2/4: val/transfer/l1 0.4121
trial 3 (1d868443) early_stopped after 2 epochs: val/transfer/l1 0.4121
trial 4 (77e0aa31) completed after 4 epochs: val/transfer/l1 0.3905
confirm baseline seed 1 (4c0f2a19) epoch 1/4: val/transfer/l1 0.4460
"""

from __future__ import annotations

import math
from typing import Any

from ray import tune

from sweeps.outcome import trial_label, trial_state


class ProgressLines(tune.Callback):
    def __init__(self, metric: str, max_epochs: int) -> None:
        self.metric = metric
        self.max_epochs = max_epochs

    def _name(self, trial: Any) -> str:
        return trial_label(trial)

    def _value(self, result: dict[str, Any]) -> str:
        value = result.get(self.metric)
        return f"{self.metric} {value:.4g}" if isinstance(value, (int, float)) and math.isfinite(value) else ""

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        print(f"{self._name(trial)} started", flush=True)

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        if result.get("trial_state") == "diverged":
            return
        epoch = result.get("training_iteration", 0)
        print(f"{self._name(trial)} epoch {epoch}/{self.max_epochs}: {self._value(result)}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        state = trial_state(last, error=False, max_epochs=self.max_epochs)
        epochs = last.get("training_iteration", 0)
        detail = self._value(last)
        if state == "diverged":
            detail = f"loss {last.get('diverged_term')} non-finite at step {last.get('diverged_step')}"
        print(f"{self._name(trial)} {state} after {epochs} epochs: {detail}", flush=True)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        print(f"{self._name(trial)} crashed (error log: {getattr(trial, 'error_file', '?')})", flush=True)
