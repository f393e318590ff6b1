"""The sweep's story on the driver's stdout: a line per trial event, a compact table every minute.

trial 3 (1d868443) started
trial 3 (1d868443) epoch 2/4: val/transfer/l1 0.4121
trial 3 (1d868443) early_stopped after 2 epochs: val/transfer/l1 0.4121
trial 4 (77e0aa31) completed after 4 epochs: val/transfer/l1 0.3905
confirm baseline seed 1 (4c0f2a19) epoch 1/4: val/transfer/l1 0.4460

Trial numbers are Optuna's (0 = the baseline), the same as in the final table and the
MLflow run names. Plain text only: no colours, no box drawing, so a log file reads
like the terminal.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sweeps.report import short_names, text_table
from sweeps.search import sampled_flat
from sweeps.trial_info import TrialState, end_state, stage, trial_label

TABLE_EVERY_S = 60.0
TABLE_ROWS = 8
TUNE_STATUS = {"PENDING": "pending", "RUNNING": TrialState.RUNNING, "PAUSED": "paused", "ERROR": TrialState.CRASHED}


class ProgressLines:
    """The driver's stdout lines per trial event (called by :mod:`sweeps.trial_events`)."""

    def __init__(
        self,
        metric: str,
        max_epochs: int,
        mode: str = "min",
        every_s: float = TABLE_EVERY_S,
        others: tuple[str, ...] = (),
    ) -> None:
        self.metric = metric
        self.others = others  # the other objectives, shown beside the primary
        self.max_epochs = max_epochs
        self.sign = 1.0 if mode == "min" else -1.0
        self.every_s = every_s
        self.start = self.last_table = time.monotonic()

    def _value(self, result: dict[str, Any]) -> str:
        shown = []
        for name in (self.metric, *self.others):
            value = result.get(name)
            if isinstance(value, (int, float)) and math.isfinite(value):
                shown.append(f"{name} {value:.4g}")
        return ", ".join(shown)

    def started(self, trial: Any) -> None:
        print(f"{trial_label(trial)} started", flush=True)

    def epoch(self, trial: Any, result: dict[str, Any], trials: list[Any]) -> None:
        if result.get("trial_state") == TrialState.DIVERGED:
            return  # its end line says so
        epoch = result.get("training_iteration", 0)
        print(f"{trial_label(trial)} epoch {epoch}/{self.max_epochs}: {self._value(result)}", flush=True)
        self.maybe_table(trials)

    def ended(self, trial: Any, state: TrialState) -> None:
        """`completed/early_stopped/diverged after N epochs: ...`, or `crashed (error log: ...)`."""
        if state == TrialState.CRASHED:
            print(f"{trial_label(trial)} crashed (error log: {getattr(trial, 'error_file', '?')})", flush=True)
            return
        last = trial.last_result or {}
        detail = self._value(last)
        if state == TrialState.DIVERGED:
            detail = f"loss {last.get('diverged_term')} non-finite at step {last.get('diverged_step')}"
        print(f"{trial_label(trial)} {state} after {last.get('training_iteration', 0)} epochs: {detail}", flush=True)

    def maybe_table(self, trials: list[Any]) -> None:
        """The compact table, at most every `every_s` (checked on each reported epoch)."""
        now = time.monotonic()
        if now - self.last_table >= self.every_s and trials:
            self.last_table = now
            print(self.table(trials, now - self.start), flush=True)

    def table(self, trials: list[Any], elapsed_s: float) -> str:
        """`[3 min] 5 trials: 2 running, 2 early_stopped, 1 completed`, then the best rows."""
        rows = []
        for t in trials:
            last = t.last_result or {}
            done = t.status in ("TERMINATED", "ERROR")
            state: str = TUNE_STATUS.get(t.status, "?")
            if done:
                state = end_state(last, error=t.status == "ERROR", max_epochs=self.max_epochs, metric=self.metric)
            value = last.get(self.metric)
            rows.append((state, t, last, float(value) if isinstance(value, (int, float)) else math.nan))
        counts: dict[str, int] = {}
        for state, *_ in rows:
            counts[state] = counts.get(state, 0) + 1
        what = "confirmation trials" if trials and all(stage(t) == "confirm" for t in trials) else "trials"
        head_line = f"[{elapsed_s / 60:.0f} min] {len(rows)} {what}: " + ", ".join(
            f"{n} {s}" for s, n in sorted(counts.items())
        )
        rows.sort(key=lambda r: (0, self.sign * r[3]) if math.isfinite(r[3]) else (1, 0.0))
        params = sorted({k for _, t, _, _ in rows for k in sampled_flat(t.config)})
        lines = []
        for state, t, last, value in rows[:TABLE_ROWS]:
            flat = sampled_flat(t.config)
            lines.append(
                [
                    trial_label(t).rsplit(" (", 1)[0].removeprefix("trial "),
                    state,
                    f"{last.get('training_iteration', 0)}/{self.max_epochs}",
                    f"{value:.4g}" if math.isfinite(value) else "-",
                    *(_short(flat.get(p)) for p in params),
                ]
            )
        table = text_table(["trial", "state", "epoch", self.metric, *short_names(params)], lines)
        more = f"\n({len(rows) - TABLE_ROWS} more trials not shown)" if len(rows) > TABLE_ROWS else ""
        return f"{head_line}\n{_indent(table)}{more}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
