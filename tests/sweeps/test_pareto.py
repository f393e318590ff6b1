"""Dominance, fronts, the spread order, the hypervolume, and multi-objective ASHA on hand-made rungs."""

from __future__ import annotations

import itertools
import math
import random
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from ray.tune.schedulers import TrialScheduler

from sweeps import pareto
from sweeps.pareto import Objective
from sweeps.scheduler import ParetoHalving

L1, KL = Objective("l1", "min"), Objective("kl", "min")


def test_fronts_put_each_point_after_the_points_that_dominate_it() -> None:
    pts = np.array([[1, 5], [2, 3], [3, 1], [2, 4], [4, 4], [math.nan, 0]], float)
    assert pareto.fronts(pts) == [[0, 1, 2], [3], [4], [5]]  # a NaN never dominates and comes last
    assert pareto.front_indices(pts) == [0, 2, 1]  # best on the primary, then the farthest from it


def test_a_max_objective_is_turned_lower_is_better() -> None:
    pts = pareto.lower_is_better([L1, Objective("gain", "max")], [[0.1, 0.5], [0.1, 0.9]])
    assert pareto.dominates(pts[1], pts[0]) and not pareto.dominates(pts[0], pts[1])


def test_spread_order_takes_the_ends_of_the_front_before_its_middle() -> None:
    # a front along a line: the primary's best, then the other end, then the middle
    pts = np.array([[i, 10 - i] for i in range(11)], float)
    order = pareto.spread_order(pts, list(range(11)))
    assert order[:3] == [0, 10, 5]
    assert sorted(order) == list(range(11))


def test_spread_order_is_blind_to_units() -> None:
    pts = np.array([[i, 10 - i] for i in range(11)], float)
    scaled = pts * np.array([1e-3, 1e4])
    assert pareto.spread_order(pts, range(11)) == pareto.spread_order(scaled, range(11))


def test_hypervolume_in_two_and_three_dimensions() -> None:
    assert pareto.hypervolume(np.array([[1, 5], [2, 3], [3, 1]]), [5, 6]) == pytest.approx(14.0)
    assert pareto.hypervolume(np.array([[1, 1, 1], [0, 1.5, 1.5]]), [2, 2, 2]) == pytest.approx(1.25)
    # a dominated point or one beyond the reference adds nothing
    assert pareto.hypervolume(np.array([[1, 5], [2, 3], [3, 1], [4, 4], [9, 0]]), [5, 6]) == pytest.approx(14.0)
    assert pareto.hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_matches_a_monte_carlo_estimate(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.random((8, 3))
    ref = np.ones(3)
    samples = rng.random((200_000, 3))
    covered = np.zeros(len(samples), bool)
    for p in pts:
        covered |= (samples >= p).all(axis=1)
    assert pareto.hypervolume(pts, ref) == pytest.approx(covered.mean(), abs=0.005)


def test_reference_point_lies_beyond_the_worst_values() -> None:
    ref = pareto.reference_point(np.array([[0.1, 40.0], [0.2, 400.0]]))
    assert ref[0] == pytest.approx(0.21) and ref[1] == pytest.approx(436.0)


# --------------------------------------------------------------------------- multi-objective ASHA


def _trial(name: str, baseline: bool = False) -> Any:
    return SimpleNamespace(trial_id=name, config={"sweep": {"baseline": baseline}})


def _scheduler(rf: float = 2) -> ParetoHalving:
    return ParetoHalving((L1, KL), max_t=8, grace_period=2, reduction_factor=rf)


def _report(s: ParetoHalving, trial: Any, l1: float, kl: float, epoch: int = 2) -> str:
    return str(s.on_trial_result(None, trial, {"training_iteration": epoch, "l1": l1, "kl": kl}))


def test_a_dominated_trial_is_stopped_where_front_trials_go_on() -> None:
    s = _scheduler()
    front = [(0.10, 400.0), (0.12, 200.0), (0.15, 50.0)]
    decisions = [_report(s, _trial(f"f{i}"), *v) for i, v in enumerate(front)]
    assert decisions[0] == TrialScheduler.CONTINUE  # the first at a rung always goes on
    # a point dominated by the front: ranked behind every front point of the rung
    assert _report(s, _trial("dominated"), 0.16, 450.0) == TrialScheduler.STOP
    # a new front point beats the dominated one even when it arrives later
    assert _report(s, _trial("new_front"), 0.11, 300.0) == TrialScheduler.CONTINUE


def test_the_baseline_is_never_stopped_but_its_values_judge_the_others() -> None:
    s = _scheduler()
    assert _report(s, _trial("a"), 0.10, 100.0) == TrialScheduler.CONTINUE
    assert _report(s, _trial("base", baseline=True), 0.20, 200.0) == TrialScheduler.CONTINUE  # dominated, protected
    assert "base" in s.vectors[2.0]
    assert _report(s, _trial("b"), 0.25, 250.0) == TrialScheduler.STOP  # behind the baseline too
    assert _report(s, _trial("base", baseline=True), 0.2, 200.0, epoch=8) == TrialScheduler.STOP  # ran max_t


@pytest.mark.parametrize("seed", range(30))
def test_arrival_order_never_lets_a_dominated_trial_through_a_full_rung(seed: int) -> None:
    """Four front points fill the rung's quota (ceil(n / rf) = 4 of 7 with rf 2) whatever the
    order: the dominated ones, arriving anywhere after them, are stopped."""
    front = [(0.10, 400.0), (0.12, 200.0), (0.15, 80.0), (0.2, 50.0)]
    dominated = [(0.21, 420.0), (0.22, 410.0), (0.3, 90.0)]
    points = [(f"f{i}", v) for i, v in enumerate(front)]
    rng = random.Random(seed)
    rng.shuffle(points)
    late = [(f"d{i}", v) for i, v in enumerate(dominated)]
    s = _scheduler()
    for name, v in points:
        _report(s, _trial(name), *v)
    for name, v in late:
        assert _report(s, _trial(name), *v) == TrialScheduler.STOP, (seed, name)


def test_with_one_objective_the_rank_rule_keeps_the_top_share() -> None:
    """ceil(n / rf) of the n recorded go on: with rf 2 a trial continues when it ranks in the top half."""
    s = ParetoHalving((L1,), max_t=8, grace_period=2, reduction_factor=2)
    decisions = []
    for i, v in enumerate([0.5, 0.4, 0.6, 0.3, 0.45, 0.7]):
        decisions.append(s.on_trial_result(None, _trial(f"t{i}"), {"training_iteration": 2, "l1": v}))
    assert decisions == ["CONTINUE", "CONTINUE", "STOP", "CONTINUE", "CONTINUE", "STOP"]


def test_each_trial_is_recorded_once_per_rung() -> None:
    s = _scheduler()
    t = _trial("a")
    for epoch, v in itertools.product([2, 3], [(0.1, 10.0)]):
        _report(s, t, *v, epoch=epoch)
    assert list(s.vectors[2.0]) == ["a"] and s.vectors[4.0] == {}
