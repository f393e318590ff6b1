"""The scheduler keeps the baseline trial running; other trials follow plain ASHA."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler

from sweeps.tuner import BaselineKeepingASHA, dir_size


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
