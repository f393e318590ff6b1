"""The scheduler keeps the baseline trial running; other trials follow plain ASHA, decision for decision."""

from __future__ import annotations

import os
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from sweeps.scheduler import SuccessiveHalving
from sweeps.tuner import dir_size


def _trials(n: int, baseline: int | None = None) -> list[Any]:
    return [SimpleNamespace(trial_id=f"t{i}", config={"sweep": {"baseline": i == baseline}}) for i in range(n)]


def test_baseline_is_never_stopped_early_but_judges_others() -> None:
    asha = SuccessiveHalving(max_t=4, grace_period=1, reduction_factor=2)
    asha.set_search_properties("loss", "min")
    baseline, good, bad = _trials(3, baseline=0)
    assert asha.on_trial_result(None, good, {"training_iteration": 1, "loss": 0.1}) == TrialScheduler.CONTINUE
    assert asha.on_trial_result(None, baseline, {"training_iteration": 1, "loss": 0.9}) == TrialScheduler.CONTINUE
    assert asha.on_trial_result(None, bad, {"training_iteration": 1, "loss": 0.95}) == TrialScheduler.STOP
    assert asha.recorded[1.0]["t0"] == -0.9  # the baseline's value judged the bad trial
    assert asha.on_trial_result(None, baseline, {"training_iteration": 4, "loss": 0.5}) == TrialScheduler.STOP


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("mode", ["min", "max"])
def test_without_a_baseline_it_decides_as_rays_asha(seed: int, mode: str) -> None:
    """Same rungs, same quantile, same asynchronous order: every decision equals Ray's ASHA."""
    rng = random.Random(seed)
    max_t, grace, rf = rng.choice([(8, 1, 2), (8, 2, 2), (9, 1, 3), (12, 2, 2.5)])
    ours = SuccessiveHalving(max_t=max_t, grace_period=grace, reduction_factor=rf)
    ours.set_search_properties("loss", mode)
    ray_asha = ASHAScheduler(metric="loss", mode=mode, max_t=max_t, grace_period=grace, reduction_factor=rf)
    trials = _trials(12)
    for trial in trials:
        ray_asha.on_trial_add(None, trial)
    epochs = dict.fromkeys((t.trial_id for t in trials), 0)
    live = list(trials)
    while live:
        trial = rng.choice(live)  # trials report in an arbitrary interleaving
        epochs[trial.trial_id] += 1
        value = rng.choice([rng.random(), rng.random(), float("nan")]) if seed % 5 == 0 else rng.random()
        result = {"training_iteration": epochs[trial.trial_id], "loss": value}
        decision = ours.on_trial_result(None, trial, result)
        assert decision == ray_asha.on_trial_result(None, trial, result)
        if decision == TrialScheduler.STOP:
            live.remove(trial)


def test_dir_size_counts_files_and_ignores_ones_that_vanish_while_it_walks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "kept.bin").write_bytes(b"x" * 100)
    (tmp_path / "a" / "drained.bin").write_bytes(b"x" * 50)
    (tmp_path / "link").symlink_to(tmp_path / "a" / "kept.bin")
    assert dir_size(tmp_path) == 150  # a symlink is not counted twice
    real_lstat = os.lstat

    def lstat(path: str) -> os.stat_result:
        if path.endswith("drained.bin"):  # deleted between listing and stat (the MLflow outbox drains)
            raise FileNotFoundError(path)
        return real_lstat(path)

    monkeypatch.setattr(os, "lstat", lstat)
    assert dir_size(tmp_path) == 100


def test_tunes_experiment_state_is_saved_every_second_up_to_100_trials_then_in_proportion() -> None:
    from sweeps.driver import state_period_s

    assert [state_period_s(n) for n in (1, 12, 100, 250, 1000, 2000)] == [1.0, 1.0, 1.0, 2.5, 10.0, 10.0]
