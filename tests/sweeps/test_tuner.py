"""The scheduler keeps the baseline trial running; other trials follow plain ASHA."""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.schedulers import TrialScheduler

from sweeps.tuner import BaselineKeepingASHA


def test_baseline_is_never_stopped_early_but_judges_others() -> None:
    asha = BaselineKeepingASHA(metric="loss", mode="min", max_t=4, grace_period=1, reduction_factor=2)
    trials = [SimpleNamespace(trial_id=f"t{i}", config={"sweep": {"baseline": i == 1}}) for i in (1, 2, 3)]
    for trial in trials:
        asha.on_trial_add(None, trial)
    good = asha.on_trial_result(None, trials[1], {"training_iteration": 1, "loss": 0.1})
    baseline = asha.on_trial_result(None, trials[0], {"training_iteration": 1, "loss": 0.9})
    bad = asha.on_trial_result(None, trials[2], {"training_iteration": 1, "loss": 0.95})
    assert (good, baseline, bad) == (TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, TrialScheduler.STOP)
    assert asha.on_trial_result(None, trials[0], {"training_iteration": 4, "loss": 0.5}) == TrialScheduler.STOP
