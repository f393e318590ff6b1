"""MlflowTrials turns trial events into queued MLflow calls: one child run per trial (tags, every
resolved config value as a param), each epoch's metrics and checkpoint outputs once, the end
state as tag + run status, and never an exception out of a tracking call. Built on a fake
outbox that records the calls; no MLflow store, no Ray."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sweeps.mlflow_trials import MlflowTrials
from sweeps.spec import load_spec
from vunet_core import flatten

ROOT = Path(__file__).resolve().parents[2]
METRIC = "val/transfer/l1"
PARENT_ID = "parent-run-42"
SAMPLED = {"losses": {"KL": {"end_ramp_val": 0.1}, "color_L2": {"weight": 2.5}}}


class FakeOutbox:
    """What MlflowTrials reads of an Outbox: `runs`, `pending()`, `client`, and `put`, recorded."""

    def __init__(self, runs: dict[str, str] | None = None, pending: list[Path] | None = None) -> None:
        self.runs = dict(runs or {})
        self._pending = list(pending or [])
        self.client = FakeClient()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def pending(self) -> list[Path]:
        return list(self._pending)

    def put(self, op: str, key: str, **args: Any) -> None:
        self.calls.append((op, key, args))

    def ops(self, key: str | None = None) -> list[str]:
        return [op for op, k, _ in self.calls if key is None or k == key]

    def of(self, op: str, key: str | None = None) -> list[dict[str, Any]]:
        return [args for o, k, args in self.calls if o == op and (key is None or k == key)]


class RaisingOutbox(FakeOutbox):
    def put(self, op: str, key: str, **args: Any) -> None:
        raise OSError("No space left on device")


class FakeClient:
    """The store of a resumed sweep: run-1 holds the objective at step 1 and epoch 1's sample grid."""

    def get_metric_history(self, run_id: str, key: str) -> list[Any]:
        assert key == METRIC
        return [SimpleNamespace(step=1)] if run_id == "run-1" else []

    def list_artifacts(self, run_id: str, path: str) -> list[Any]:
        assert path == "samples"
        return [SimpleNamespace(path="samples/epoch_0001")] if run_id == "run-1" else []


@pytest.fixture(scope="module")
def base_tree() -> dict[str, Any]:
    return load_spec(ROOT / "search_spaces" / "smoke.yaml", {}).base_tree()


def search_trial(trial_id: str = "a1b2c3", number: int = 0, baseline: bool = True) -> Any:
    config = {**SAMPLED, "sweep": {"stage": "search", "baseline": baseline, "number": number}}
    return SimpleNamespace(trial_id=trial_id, config=config, last_result={}, error_file=None)


def confirm_trial(trial_id: str = "c0ffee") -> Any:
    meta = {"stage": "confirm", "candidate": "trial 3", "seed": 1, "baseline": False, "search_trial": "abc"}
    return SimpleNamespace(trial_id=trial_id, config={**SAMPLED, "sweep": meta}, last_result={}, error_file=None)


def make(base_tree: dict[str, Any], outbox: FakeOutbox | None = None) -> tuple[MlflowTrials, FakeOutbox]:
    box = outbox or FakeOutbox()
    return MlflowTrials(box, PARENT_ID, base_tree, METRIC), box  # type: ignore[arg-type]


def as_param(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def checkpoint_dir(root: Path, epoch: int, step: int) -> Path:
    path = root / f"checkpoint_{epoch:06d}"
    (path / "eval").mkdir(parents=True)
    (path / "eval" / "metrics.json").write_text("{}")
    (path / "samples.png").write_bytes(b"\x89PNG fake")
    (path / "meta.json").write_text(json.dumps({"epoch": epoch, "step": step}))
    return path


def opened(base_tree: dict[str, Any]) -> tuple[MlflowTrials, Any, Any]:
    """A search trial whose run was opened, with the outbox's record cleared."""
    trials, box = make(base_tree)
    trial = search_trial()
    trials.opened_run(trial)
    box.calls.clear()
    return trials, box, trial


def test_a_started_trial_gets_one_child_run_with_its_tags_and_every_config_value(base_tree: dict[str, Any]) -> None:
    trials, box = make(base_tree)
    trials.opened_run(search_trial())
    creates = box.of("create_run")
    assert len(creates) == 1 and box.calls[0][:2] == ("create_run", "a1b2c3")
    tags = creates[0]["tags"]
    assert tags["mlflow.parentRunId"] == PARENT_ID and tags["ray_trial_id"] == "a1b2c3"
    assert tags["sampled_params"] == "losses/KL/end_ramp_val,losses/color_L2/weight"
    assert (str(tags["stage"]), str(tags["baseline"]), str(tags["trial_state"])) == ("search", "true", "running")
    assert "candidate" not in tags and "seed" not in tags and "search_trial_id" not in tags
    assert creates[0]["run_name"] == "trial 0 a1b2c3"

    batches = box.of("log_batch", "a1b2c3")
    assert batches and all(0 < len(b["params"]) <= 100 and not b.get("metrics") for b in batches)
    params = [tuple(p) for b in batches for p in b["params"]]
    expected = {k: as_param(v) for k, v in flatten(base_tree).items()}
    expected.update({"losses/KL/end_ramp_val": "0.1", "losses/color_L2/weight": "2.5"})
    assert len(params) == len(dict(params))  # each value once
    assert dict(params) == expected  # the complete resolved config, sampled values set
    assert dict(params)["model/spatial_size"] == "32" and dict(params)["training/progress"] == "false"


def test_a_sampled_trial_is_named_by_its_number_and_not_marked_baseline(base_tree: dict[str, Any]) -> None:
    trials, box = make(base_tree)
    trials.opened_run(search_trial("d4e5f6", number=5, baseline=False))
    (create,) = box.of("create_run")
    assert create["run_name"] == "trial 5 d4e5f6" and str(create["tags"]["baseline"]) == "false"


def test_a_confirmation_trial_carries_its_candidate_seed_and_search_trial(base_tree: dict[str, Any]) -> None:
    trials, box = make(base_tree)
    trials.opened_run(confirm_trial())
    (create,) = box.of("create_run")
    tags = create["tags"]
    assert str(tags["stage"]) == "confirm" and str(tags["baseline"]) == "false"
    assert (str(tags["candidate"]), str(tags["seed"]), str(tags["search_trial_id"])) == ("trial 3", "1", "abc")
    assert create["run_name"] == "confirm trial 3 seed 1 c0ffee"


def test_each_epoch_is_logged_once_at_its_epoch_step(base_tree: dict[str, Any]) -> None:
    trials, box, trial = opened(base_tree)
    for epoch, value in ((1, 0.5), (1, 0.5), (2, 0.4), (2, 0.4)):  # Tune may hand an epoch over twice
        result = {"training_iteration": epoch, "epoch": epoch, "step": 3 * epoch, METRIC: value, "train/loss": 2.0}
        trials.result(trial, {**result, "trial_state": "running", "val/broken": float("nan")})
    batches = box.of("log_batch", "a1b2c3")
    assert box.ops() == ["log_batch", "log_batch"]
    points = [(name, value, step) for b in batches for name, value, _, step in b["metrics"]]
    # numeric, finite, known-prefix metrics only; step = epoch (not the optimizer step)
    assert sorted(points) == sorted(
        [(METRIC, 0.5, 1), ("train/loss", 2.0, 1), (METRIC, 0.4, 2), ("train/loss", 2.0, 2)]
    )


def test_a_result_before_the_start_event_creates_the_run_first(base_tree: dict[str, Any]) -> None:
    trials, box = make(base_tree)
    trial = search_trial()
    trials.result(trial, {"training_iteration": 1, METRIC: 0.5})
    trials.opened_run(trial)  # the start event arriving late is a re-open, not a second run
    assert box.ops()[0] == "create_run" and box.ops().count("create_run") == 1
    assert box.calls[-1] == ("set_status", "a1b2c3", {"status": "RUNNING"})


def test_a_checkpoint_queues_its_sample_grid_and_eval_outputs_once(base_tree: dict[str, Any], tmp_path: Path) -> None:
    trials, box, trial = opened(base_tree)
    path = checkpoint_dir(tmp_path, epoch=2, step=20)
    trials.checkpoint(trial, path)
    trials.checkpoint(trial, path)  # the same epoch again
    trials.checkpoint(trial, checkpoint_dir(tmp_path / "again", epoch=2, step=20))
    assert box.calls == [
        ("log_image", "a1b2c3", {"files": {"image": path / "samples.png"}, "image_key": "samples", "step": 2}),
        ("log_artifact", "a1b2c3", {"files": {"file": path / "samples.png"}, "artifact_path": "samples/epoch_0002"}),
        ("log_artifacts", "a1b2c3", {"files": {"dir": path / "eval"}, "artifact_path": "eval/epoch_0002"}),
    ]


def test_a_checkpoint_without_its_epoch_record_queues_nothing(base_tree: dict[str, Any], tmp_path: Path) -> None:
    trials, box, trial = opened(base_tree)
    path = checkpoint_dir(tmp_path, epoch=1, step=3)
    (path / "meta.json").unlink()
    trials.checkpoint(trial, path)
    assert box.calls == []


@pytest.mark.parametrize(
    ("state", "status"),
    [("completed", "FINISHED"), ("early_stopped", "FINISHED"), ("diverged", "FAILED"), ("crashed", "FAILED")],
)
def test_finish_sets_the_state_tag_and_the_run_status(
    base_tree: dict[str, Any], tmp_path: Path, state: str, status: str
) -> None:
    trials, box = make(base_tree)
    error = tmp_path / "error.txt"
    error.write_text("Traceback: boom")
    trial = search_trial()
    trial.error_file = str(error)
    trial.last_result = {"training_iteration": 1, "trial_state": "diverged", "diverged_term": "KL", "diverged_step": 7}
    trials.opened_run(trial)
    box.calls.clear()
    trials.finish(trial, state)  # type: ignore[arg-type]  # the state's plain name (TrialState is a str enum)
    tags = {k: str(v) for b in box.of("log_batch", "a1b2c3") for k, v in b.get("tags", [])}
    expected = {"trial_state": state}
    if state == "diverged":
        expected["diverged_at"] = "KL at step 7"
    assert tags == expected
    errors = box.of("log_artifact", "a1b2c3")
    if state == "crashed":
        assert errors == [{"files": {"file": error}, "artifact_path": "error"}]
    else:
        assert errors == []
    assert box.calls[-1] == ("set_status", "a1b2c3", {"status": status})
    assert box.ops().count("set_status") == 1


def test_a_retried_trial_reopens_its_run_instead_of_creating_another(base_tree: dict[str, Any]) -> None:
    trials, box = make(base_tree)
    trial = search_trial()
    trials.opened_run(trial)
    trials.result(trial, {"training_iteration": 1, METRIC: 0.5})
    box.calls.clear()
    trials.opened_run(trial)  # Ray restarts it from its checkpoint after a crash
    assert box.calls == [("set_status", "a1b2c3", {"status": "RUNNING"})]
    trials.result(trial, {"training_iteration": 1, METRIC: 0.5})  # the replayed epoch
    trials.result(trial, {"training_iteration": 2, METRIC: 0.4})
    assert [m[3] for b in box.of("log_batch") for m in b["metrics"]] == [2]


def test_end_active_ends_only_the_runs_still_open(base_tree: dict[str, Any]) -> None:
    trials, box = make(base_tree)
    for trial_id in ("t3", "t1", "t2"):
        trials.opened_run(search_trial(trial_id))
    done = search_trial("t2")
    done.last_result = {"training_iteration": 2, METRIC: 0.3}
    trials.finish(done, "completed")  # type: ignore[arg-type]
    box.calls.clear()
    trials.end_active("KILLED", "interrupted")
    assert box.calls == [
        ("log_batch", "t1", {"tags": [["trial_state", "interrupted"]]}),
        ("set_status", "t1", {"status": "KILLED"}),
        ("log_batch", "t3", {"tags": [["trial_state", "interrupted"]]}),
        ("set_status", "t3", {"status": "KILLED"}),
    ]
    box.calls.clear()
    trials.end_active("FAILED", "failed")  # nothing is left open
    assert box.calls == []


def test_a_resumed_sweep_does_not_log_an_epoch_twice(base_tree: dict[str, Any], tmp_path: Path) -> None:
    """Epochs already in MLflow (run-1) or still queued in the outbox are not queued again."""
    queued = [
        {"op": "create_run", "key": "t2", "files": {}, "args": {}},
        {"op": "log_batch", "key": "t2", "files": {}, "args": {"metrics": [[METRIC, 0.4, 0, 2]]}},
        {"op": "log_image", "key": "t2", "files": {}, "args": {"image_key": "samples", "step": 2}},
    ]
    files = []
    for i, item in enumerate(queued, 1):
        files.append(tmp_path / f"{i:08d}.json")
        files[-1].write_text(json.dumps(item))
    trials, box = make(base_tree, FakeOutbox(runs={"t1": "run-1"}, pending=files))
    t1, t2 = search_trial("t1"), search_trial("t2", number=1, baseline=False)
    trials.restored(t1)
    trials.opened_run(t2)
    assert box.calls == [("set_status", "t1", {"status": "RUNNING"}), ("set_status", "t2", {"status": "RUNNING"})]
    box.calls.clear()
    trials.result(t1, {"training_iteration": 1, METRIC: 0.5})  # in MLflow already
    trials.result(t2, {"training_iteration": 2, METRIC: 0.4})  # queued already
    trials.checkpoint(t1, checkpoint_dir(tmp_path / "t1", epoch=1, step=3))
    trials.checkpoint(t2, checkpoint_dir(tmp_path / "t2", epoch=2, step=6))
    assert box.calls == []
    trials.result(t1, {"training_iteration": 2, METRIC: 0.4})
    assert [(k, [m[3] for m in a["metrics"]]) for _, k, a in box.calls] == [("t1", [2])]


def test_a_failing_outbox_never_stops_the_sweep(
    base_tree: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trials, _ = make(base_tree, RaisingOutbox())
    trial = search_trial()
    trial.last_result = {"training_iteration": 1, "trial_state": "diverged", "diverged_term": "KL", "diverged_step": 7}
    with caplog.at_level(logging.ERROR, logger="sweeps.mlflow_trials"):
        trials.opened_run(trial)
        trials.restored(trial)
        trials.result(trial, {"training_iteration": 1, METRIC: 0.5})
        trials.checkpoint(trial, checkpoint_dir(tmp_path, epoch=1, step=3))
        for state in ("completed", "early_stopped", "diverged", "crashed"):
            trials.finish(trial, state)  # type: ignore[arg-type]
        trials.active.add(trial.trial_id)
        trials.end_active("FAILED", "failed")  # the driver's failure path: must not raise either
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and "a1b2c3" in r.getMessage()]
    assert len(failures) >= 9  # each failed call is reported, none raised
    assert not trials.active
