"""The Optuna side of a sweep file: define-by-run suggestions (paths, steps, log ranges,
conditions, constants), the baseline point, trial trees from nested or flat samples, and
the sweep's searcher driven directly (no cluster): the first trial is the base config,
conditional parameters appear only when active, and the searcher survives a checkpoint."""

from __future__ import annotations

import copy
import math
import pickle
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from sweeps.search import (
    TrialMeta,
    baseline_point,
    define_by_run,
    make_sampler,
    sampled_flat,
    trial_cfg,
    trial_meta,
    trial_tree,
)
from sweeps.searcher import StudySearcher, epoch_values, fail_running_trials, load_study
from sweeps.space import parse_number
from sweeps.spec import SweepSpec, load_spec
from vunet_core import ConfigError, flatten
from vunet_core.paths import merge_trees

optuna.logging.set_verbosity(optuna.logging.WARNING)

GATED = "losses/color_gradient/weight"
SPACE: dict[str, Any] = {
    "name": "space",
    "fixed": {"training/steps_per_epoch": 2},
    "parameters": {
        GATED: {
            "distribution": "uniform",
            "min": 0,
            "max": 10,
            "step": 2.5,
            "when": {"model/appearance_input": "image"},
        },
        "model/appearance_input": {"values": ["crops", "image"]},
        "losses/KL/end_ramp_val": {"distribution": "log_uniform", "min": 1e-3, "max": 1.0},
        "losses/KL/start_ramp_it": {"distribution": "int_uniform", "min": 0, "max": 100, "step": 20},
        "training/batch_size": {"distribution": "int_log_uniform", "min": 2, "max": 64},
        "losses/KL/ramp_shape": {"value": "linear"},
    },
    "metric": {"name": "val/transfer/l1", "mode": "min"},
    "num_samples": 12,
    "max_epochs": 2,
}


# The base config's schedules are absolute steps, so an integer range can search a ramp point.
STEPS_BASE = {
    "training": {"schedule_units": "steps"},
    "optimizer": {"lr_decay_begin": 0, "lr_decay_end": 100},
    "losses": {"KL": {"start_ramp_it": 0, "end_ramp_it": 100}},
}


def make_spec(tmp_path: Path, base: dict[str, Any] | None = None, **changes: Any) -> SweepSpec:
    data = {**copy.deepcopy(SPACE), **changes}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(merge_trees(STEPS_BASE, base or {})))
    data["base"] = ["base.yaml"]
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def searcher(spec: SweepSpec, sweep_dir: Path) -> StudySearcher:
    """The sweep's own searcher (sweeps.tuner), with its SQLite study in a fresh directory."""
    sweep_dir.mkdir(parents=True)
    return StudySearcher(spec, sweep_dir)


def run_searcher(s: StudySearcher, n: int, start: int = 0) -> list[dict[str, Any]]:
    """Suggest/complete n trials as Tune would (metric = a deterministic function of the sample)."""
    out = []
    for i in range(start, start + n):
        config = s.suggest(f"trial_{i}")
        assert config is not None
        flat = sampled_flat(config)
        value = abs(math.log(flat["losses/KL/end_ramp_val"]))
        s.on_trial_complete(f"trial_{i}", {"val/transfer/l1": value, "training_iteration": s.max_epochs})
        out.append(config)
    return out


def check_sample(flat: dict[str, Any]) -> None:
    """Every sampled value honours its distribution; the gated one appears iff its condition holds."""
    assert flat["losses/KL/ramp_shape"] == "linear"  # the constant rides along
    assert flat["model/appearance_input"] in ("crops", "image")
    assert (GATED in flat) == (flat["model/appearance_input"] == "image")
    if GATED in flat:
        assert 0 <= flat[GATED] <= 10 and flat[GATED] % 2.5 == 0
    assert 1e-3 <= flat["losses/KL/end_ramp_val"] <= 1.0
    it, bs = flat["losses/KL/start_ramp_it"], flat["training/batch_size"]
    assert isinstance(it, int) and it % 20 == 0 and 0 <= it <= 100
    assert isinstance(bs, int) and 2 <= bs <= 64


def test_define_by_run_suggests_by_path_with_steps_logs_and_conditions(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    study = optuna.create_study(sampler=make_sampler(spec))
    space = define_by_run(spec)
    seen = set()
    for _ in range(25):
        trial = study.ask()
        constants = space(trial)
        assert constants == {"losses/KL/ramp_shape": "linear"}
        check_sample({**trial.params, **(constants or {})})
        seen.add(trial.params["model/appearance_input"])
        study.tell(trial, trial.params["losses/KL/end_ramp_val"])
    assert seen == {"crops", "image"}  # both branches of the condition were explored
    log_dist = study.trials[0].distributions["losses/KL/end_ramp_val"]
    assert isinstance(log_dist, optuna.distributions.FloatDistribution) and log_dist.log


def test_baseline_point_holds_base_values_of_active_searched_parameters(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    base = flatten(spec.base_tree())
    expected = ("model/appearance_input", "losses/KL/end_ramp_val", "losses/KL/start_ramp_it", "training/batch_size")
    assert baseline_point(spec) == {p: base[p] for p in expected}  # gated param inactive, constant left out
    gated = make_spec(tmp_path, base={"model": {"appearance_input": "image"}})
    assert baseline_point(gated)[GATED] == 0.0  # active under the base values: included


def test_trial_tree_accepts_nested_or_flat_and_sets_only_those_leaves(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    flat = {"losses/KL/end_ramp_val": 0.25, "model/appearance_input": "image", GATED: 5.0}
    nested = {
        "losses": {"KL": {"end_ramp_val": 0.25}, "color_gradient": {"weight": 5.0}},
        "model": {"appearance_input": "image"},
    }
    tree = trial_tree(spec.base_tree(), flat)
    assert tree == trial_tree(spec.base_tree(), nested)
    changed = {p for p, v in flatten(tree).items() if flatten(spec.base_tree())[p] != v}
    assert changed == set(flat)
    cfg = trial_cfg(spec.base_tree(), nested)
    assert cfg.losses.KL.end_ramp_val == 0.25 and cfg.losses.KL.ramped  # the ramp stays on
    assert cfg.training.num_epochs == spec.max_epochs and cfg.training.progress is False


def test_baseline_trial_is_exactly_the_base_config(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, base={"losses": {"color_L2": {"weight": 3.3}}})
    assert trial_tree(spec.base_tree(), baseline_point(spec)) == spec.base_tree()
    assert trial_cfg(spec.base_tree(), baseline_point(spec)) == spec.base_config()


def test_trial_config_rejects_a_sampled_path_that_is_not_a_config_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown config path losses/KL/end_ramp_vale; did you mean"):
        trial_cfg(make_spec(tmp_path).base_tree(), {"losses": {"KL": {"end_ramp_vale": 0.2}}})


def test_trial_config_validates_sampled_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model/appearance_input"):
        trial_cfg(make_spec(tmp_path).base_tree(), {"model/appearance_input": "pixels"})


def test_optuna_search_runs_baseline_first_then_conditional_samples(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, base={"losses": {"KL": {"start_ramp_it": 30}}})  # off the step grid
    configs = run_searcher(searcher(spec, tmp_path / "sweep"), 12)
    assert trial_meta(configs[0]) == TrialMeta(stage="search", baseline=True, number=0)
    assert not any(trial_meta(c).baseline for c in configs[1:])
    assert trial_tree(spec.base_tree(), sampled_flat(configs[0])) == spec.base_tree()  # Ray passes nested values back
    assert sampled_flat(configs[0])["losses/KL/start_ramp_it"] == 30  # enqueued as is, not snapped to the grid
    for config in configs[1:]:
        check_sample(sampled_flat(config))
    values = {sampled_flat(c)["model/appearance_input"] for c in configs[1:]}
    assert values == {"crops", "image"}
    assert len({sampled_flat(c)["losses/KL/end_ramp_val"] for c in configs}) == len(configs)


def test_searcher_survives_a_checkpoint_and_continues_a_running_trial(tmp_path: Path) -> None:
    spec = make_spec(tmp_path)
    first = searcher(spec, tmp_path / "sweep")
    run_searcher(first, 4)
    running = first.suggest("trial_4")
    assert running is not None
    first.on_trial_result("trial_4", {"val/transfer/l1": 0.5, "training_iteration": 1})
    first.save(str(tmp_path / "searcher.json"))  # what Tune does on each experiment checkpoint
    # The driver dies; the next one (pickled searcher from Tune's state + the saved state) goes on.
    restored = pickle.loads(pickle.dumps(first))
    restored.restore(str(tmp_path / "searcher.json"))
    assert fail_running_trials(spec, tmp_path / "sweep") == 1  # what --resume does first
    restored.on_trial_result("trial_4", {"val/transfer/l1": 0.4, "training_iteration": 2})
    restored.on_trial_complete("trial_4", {"val/transfer/l1": 0.4, "training_iteration": spec.max_epochs})
    study = load_study(spec, tmp_path / "sweep")
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 4 + [
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.COMPLETE,
    ]
    continued = study.trials[5]
    assert continued.params == study.trials[4].params
    assert {**continued.params, "losses/KL/ramp_shape": "linear"} == sampled_flat(running)
    assert continued.user_attrs["resumed_from_trial"] == 4
    assert continued.intermediate_values == {1: 0.5, 2: 0.4}  # the curve so far carries over
    for config in run_searcher(restored, 3, start=5):  # finished trials are kept, not run again
        check_sample(sampled_flat(config))
    assert len(load_study(spec, tmp_path / "sweep").trials) == 9


def test_sampler_is_seeded_from_the_spec(tmp_path: Path) -> None:
    runs = iter(range(100))

    def sequence(seed: int) -> list[Any]:
        spec = make_spec(tmp_path, seed=seed)
        sweep_dir = tmp_path / f"sweep{next(runs)}"
        return [sampled_flat(c)["losses/KL/end_ramp_val"] for c in run_searcher(searcher(spec, sweep_dir), 6)]

    assert sequence(3) == sequence(3)
    assert sequence(3)[1:] != sequence(4)[1:]  # the baseline is the same, the samples differ
    assert isinstance(make_sampler(make_spec(tmp_path, sampler="random")), optuna.samplers.RandomSampler)


@pytest.mark.parametrize(
    ("value", "integer", "expected"),
    [
        (3, True, 3),
        (4.0, True, 4),
        (0.5, False, 0.5),
        (2**63 - 1, True, 2**63 - 1),
        (-(2**63), False, -(2**63)),
        (2**63, True, None),
        (99999999999999999999999, False, None),
        (1e23, True, None),  # integral, but not a 64-bit integer
        (float("nan"), False, None),
        (float("inf"), False, None),
        (-math.inf, True, None),
        (True, True, None),
        ("3", True, None),
    ],
)
def test_parse_number_accepts_only_finite_64_bit_numbers(value: Any, integer: bool, expected: Any) -> None:
    assert parse_number(value, integer) == expected


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_resumed_search_proposes_what_an_uninterrupted_one_would(tmp_path: Path, sampler: str) -> None:
    """Tune pickles the searcher when the sweep starts and restores its saved state on --resume:
    the sampler's random state comes back with it, so the search goes on instead of starting over."""
    spec = make_spec(tmp_path, sampler=sampler, seed=3)
    whole = [sampled_flat(c) for c in run_searcher(searcher(spec, tmp_path / "whole"), 8)]

    first = searcher(spec, tmp_path / "cut")
    at_start = pickle.dumps(first)  # what Tune keeps of the searcher from the start
    run_searcher(first, 3)
    running = first.suggest("trial_3")
    assert running is not None and trial_meta(running).number == 3
    first.on_trial_result("trial_3", {"val/transfer/l1": 0.5, "training_iteration": 1})
    first.save(str(tmp_path / "searcher.json"))
    restored = pickle.loads(at_start)
    restored.restore(str(tmp_path / "searcher.json"))
    assert fail_running_trials(spec, tmp_path / "cut") == 1
    value = abs(math.log(sampled_flat(running)["losses/KL/end_ramp_val"]))
    restored.on_trial_complete("trial_3", {"val/transfer/l1": value, "training_iteration": spec.max_epochs})
    after = run_searcher(restored, 4, start=4)
    assert [trial_meta(c).number for c in after] == [4, 5, 6, 7]
    cut = [sampled_flat(c) for c in run_searcher(searcher(spec, tmp_path / "again"), 3)]  # the same first three
    assert cut + [sampled_flat(running)] + [sampled_flat(c) for c in after] == whole
    study = load_study(spec, tmp_path / "cut")
    numbers = [t.user_attrs["trial"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(numbers) == list(range(8))  # one sweep number per trial; Optuna's own numbers differ
    assert [t.number for t in study.trials if t.user_attrs["trial"] == 3] == [3, 4]  # the interrupted one, continued


def test_no_two_trials_share_a_configuration_until_the_space_is_exhausted(tmp_path: Path, capsys: Any) -> None:
    space = {"parameters": {"model/appearance_input": {"values": ["crops", "image"]}}, "num_samples": 5}
    spec = make_spec(tmp_path, **space)
    s = searcher(spec, tmp_path / "sweep")
    configs = [s.suggest(f"t{i}") for i in range(3)]
    assert [sampled_flat(c)["model/appearance_input"] for c in configs[:2]] == ["crops", "image"]  # type: ignore[arg-type]
    assert configs[2] == "FINISHED" and s.suggest("t3") == "FINISHED"
    assert "search space exhausted" in capsys.readouterr().out
    repeats = [t for t in load_study(spec, tmp_path / "sweep").trials if "duplicate_of" in t.user_attrs]
    assert repeats and all(t.state == optuna.trial.TrialState.FAIL for t in repeats)


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_a_multi_objective_study_keeps_each_epochs_values_and_honest_states(tmp_path: Path, sampler: str) -> None:
    """Two directions; every epoch's values as `epoch_<k>` user attributes (Optuna keeps no
    intermediate values for several objectives); COMPLETE / PRUNED / FAIL as with one; a trial
    a killed driver left RUNNING continues in a new Optuna trial that keeps the epochs so far."""
    two = [{"name": "val/transfer/l1", "mode": "min"}, {"name": "val/loss/KL", "mode": "min"}]
    spec = make_spec(tmp_path, metric=two, sampler=sampler, num_samples=6, max_epochs=2)
    s = searcher(spec, tmp_path / "sweep")
    at_start = pickle.dumps(s)
    for i in range(3):
        assert s.suggest(f"t{i}") is not None
        s.on_trial_result(f"t{i}", {"val/transfer/l1": 0.3 + i, "val/loss/KL": 40.0 * i, "training_iteration": 1})
    last = {"val/transfer/l1": 0.2, "val/loss/KL": 50.0, "training_iteration": 2}
    s.on_trial_complete("t0", last)
    s.on_trial_complete("t1", {"val/transfer/l1": 1.3, "val/loss/KL": 40.0, "training_iteration": 1})  # stopped
    s.on_trial_complete("t2", {"val/transfer/l1": float("inf"), "trial_state": "diverged", "training_iteration": 1})
    assert s.suggest("t3") is not None
    s.on_trial_result("t3", {"val/transfer/l1": 0.4, "val/loss/KL": 30.0, "training_iteration": 1})
    s.save(str(tmp_path / "searcher.json"))
    # the driver is killed: a resumed sweep's searcher continues t3
    resumed = pickle.loads(at_start)
    resumed.restore(str(tmp_path / "searcher.json"))
    assert fail_running_trials(spec, tmp_path / "sweep") == 1
    resumed.on_trial_result("t3", {"val/transfer/l1": 0.3, "val/loss/KL": 35.0, "training_iteration": 2})
    resumed.on_trial_complete("t3", {"val/transfer/l1": 0.3, "val/loss/KL": 35.0, "training_iteration": 2})

    study = load_study(spec, tmp_path / "sweep")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    by_number = {t.user_attrs["trial"]: t for t in study.trials if t.state != optuna.trial.TrialState.FAIL}
    states = {n: t.state.name for n, t in by_number.items()}
    assert states == {0: "COMPLETE", 1: "PRUNED", 3: "COMPLETE"}
    assert by_number[0].values == [0.2, 50.0]
    assert by_number[0].user_attrs["epoch_1"] == {"val/transfer/l1": 0.3, "val/loss/KL": 0.0}
    assert by_number[0].user_attrs["epoch_2"] == {"val/transfer/l1": 0.2, "val/loss/KL": 50.0}
    assert by_number[3].user_attrs["epoch_1"] == {"val/transfer/l1": 0.4, "val/loss/KL": 30.0}  # from before the kill
    assert by_number[3].user_attrs["resumed_from_trial"] == 3
    failed = [t for t in study.trials if t.user_attrs.get("trial") == 2]
    assert [t.state.name for t in failed] == ["FAIL"] and failed[0].user_attrs["trial_state"] == "diverged"
    values = epoch_values(spec, tmp_path / "sweep")
    assert values["t3"] == {
        1: {"val/transfer/l1": 0.4, "val/loss/KL": 30.0},
        2: {"val/transfer/l1": 0.3, "val/loss/KL": 35.0},
    }
