"""Asynchronous successive halving (ASHA; Li et al., MLSys 2020) that never stops the baseline.

Rungs sit at epochs `grace_period * reduction_factor**k` below `max_t`. When a trial first
reports at or past a rung, its value is recorded there and compared with the values recorded
at that rung before it: it continues when it is at least as good as the `1 - 1/rf` quantile of
them (the best `1/rf` go on), else it stops. Nothing is waited for, so a trial is judged by
the trials that reached the rung before it, as in Ray's ASHA (one bracket, same rule, same
quantile). The baseline is what every result is compared with: its values enter the rungs and
judge the other trials, but it always runs all `max_t` epochs. Owning the scheduler (instead
of patching Ray's) keeps that rule in our own state.

:class:`ParetoHalving` is the same with several objectives (multi-objective ASHA, Schmucker et
al. 2021): at a rung, the trial is ranked among the trials recorded there by non-dominated
fronts, ties inside a front broken by an epsilon-net (:func:`sweeps.pareto.ranking`), and it
continues when it is among the best `ceil(n / rf)` of the `n` recorded, itself included. For a
single objective that is the quantile rule above; a dominated trial never ranks before a trial
of the front it is dominated by, whatever order they arrive in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from sweeps import pareto
from sweeps.trial_info import is_baseline

TIME_ATTR = "training_iteration"


class SuccessiveHalving(FIFOScheduler):
    """ASHA with a protected trial (see the module docstring)."""

    def __init__(
        self,
        max_t: int,
        grace_period: int,
        reduction_factor: float,
        protected: Callable[[Any], bool] = is_baseline,
    ) -> None:
        super().__init__()
        self.max_t = max_t
        self.reduction_factor = reduction_factor
        self.protected = protected
        rungs, rung = [], float(grace_period)
        while rung < max_t:
            rungs.append(rung)
            rung *= reduction_factor
        self.recorded: dict[float, dict[str, float]] = {r: {} for r in rungs}  # rung -> trial id -> score
        self.objective = ""
        self.sign = 1.0  # score = sign * value: higher is better

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Tune passes the sweep's metric and mode here (the scheduler is built without them)."""
        if metric:
            self.objective = metric
        if mode:
            self.sign = -1.0 if mode == "min" else 1.0
        return True

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if TIME_ATTR not in result or self.objective not in result:
            return TrialScheduler.CONTINUE
        if result[TIME_ATTR] >= self.max_t:
            return TrialScheduler.STOP
        stop = self._judge(trial.trial_id, result[TIME_ATTR], self.sign * float(result[self.objective]))
        return TrialScheduler.STOP if stop and not self.protected(trial) else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        if TIME_ATTR in result and self.objective in result:
            self._judge(trial.trial_id, result[TIME_ATTR], self.sign * float(result[self.objective]))

    def _judge(self, trial_id: str, epoch: int, score: float) -> bool:
        """Record `score` at the highest rung `epoch` reached that has none of this trial yet;
        whether it falls below that rung's cutoff (judged before it was added)."""
        for rung in sorted(self.recorded, reverse=True):
            recorded = self.recorded[rung]
            if epoch < rung or trial_id in recorded:
                continue
            cutoff = self.cutoff(rung)
            recorded[trial_id] = score
            return cutoff is not None and score < cutoff  # a NaN score compares False: it goes on
        return False

    def cutoff(self, rung: float) -> float | None:
        """The score a trial needs at `rung` to continue: the `1 - 1/rf` quantile of the scores
        recorded there (NaN ignored); None while the rung is empty."""
        scores = [s for s in self.recorded[rung].values() if not math.isnan(s)]
        if not scores:
            return None
        return float(np.percentile(scores, (1 - 1 / self.reduction_factor) * 100))

    def debug_string(self) -> str:
        cutoffs = ", ".join(f"epoch {r:g}: {self.cutoff(r)}" for r in sorted(self.recorded))
        return f"Successive halving, baseline protected; cutoffs {cutoffs}"


class ParetoHalving(SuccessiveHalving):
    """Multi-objective ASHA with a protected trial (see the module docstring)."""

    def __init__(
        self,
        objectives: tuple[pareto.Objective, ...],
        max_t: int,
        grace_period: int,
        reduction_factor: float,
        protected: Callable[[Any], bool] = is_baseline,
    ) -> None:
        super().__init__(max_t, grace_period, reduction_factor, protected)
        self.objectives = objectives
        self.objective = objectives[0].name
        self.vectors: dict[float, dict[str, np.ndarray]] = {r: {} for r in self.recorded}  # lower is better

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True  # the objectives came with the constructor

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if TIME_ATTR not in result or any(o.name not in result for o in self.objectives):
            return TrialScheduler.CONTINUE
        if result[TIME_ATTR] >= self.max_t:
            return TrialScheduler.STOP
        stop = self._judge_vector(trial.trial_id, result[TIME_ATTR], self._vector(result))
        return TrialScheduler.STOP if stop and not self.protected(trial) else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> None:
        if TIME_ATTR in result and all(o.name in result for o in self.objectives):
            self._judge_vector(trial.trial_id, result[TIME_ATTR], self._vector(result))

    def _vector(self, result: dict[str, Any]) -> np.ndarray:
        return pareto.lower_is_better(self.objectives, [[float(result[o.name]) for o in self.objectives]])[0]

    def _judge_vector(self, trial_id: str, epoch: int, point: np.ndarray) -> bool:
        """Record `point` at the highest rung `epoch` reached that has none of this trial yet;
        whether it ranks below the best ceil(n / rf) of the rung, itself included."""
        for rung in sorted(self.vectors, reverse=True):
            recorded = self.vectors[rung]
            if epoch < rung or trial_id in recorded:
                continue
            recorded[trial_id] = point
            quota = math.ceil(len(recorded) / self.reduction_factor)
            # Every point dominating it ranks before it: when they fill the quota, no ranking is needed.
            if sum(pareto.dominates(v, point) for v in recorded.values()) >= quota:
                return True
            ids = list(recorded)
            order = pareto.ranking(np.vstack([recorded[i] for i in ids]))
            position = order.index(ids.index(trial_id))
            return position >= quota
        return False

    def debug_string(self) -> str:
        sizes = ", ".join(f"epoch {r:g}: {len(self.vectors[r])} trials" for r in sorted(self.vectors))
        return f"Multi-objective successive halving, baseline protected; {sizes}"
