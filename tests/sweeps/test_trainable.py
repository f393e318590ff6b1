"""The trainable's report path, without Ray or training: `train_epochs` is a generator of fake
epoch results and `tune.report`/`tune.get_checkpoint` are recorded. One report per epoch; each
epoch's sample grid, eval outputs and record go to the trial's `epochs/` folder, the model state
into a checkpoint only when due (every k epochs, extra epochs, the last); a diverged trial ends
with one report of the worst objective; a restored trial resumes from a copy of Ray's
checkpoint."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.fs as pafs
import pytest

import sweeps.trainable
from sweeps import epoch_output
from sweeps.epoch_output import saves_state
from sweeps.files import EPOCHS_DIR
from sweeps.spec import load_spec
from sweeps.trainable import FAULT_ENV, run_trial
from vunet_core import CHECKPOINT_NAME, Config, DivergedError

ROOT = Path(__file__).resolve().parents[2]
METRIC = "val/transfer/l1"
CONFIG = {"losses": {"KL": {"end_ramp_val": 0.1}}, "sweep": {"stage": "search", "baseline": False, "number": 1}}


@pytest.fixture(scope="module")
def base_tree() -> dict[str, Any]:
    return load_spec(ROOT / "search_spaces" / "smoke.yaml", {}).base_tree()


def epoch_result(root: Path, epoch: int, with_eval: bool = True) -> Any:
    """What vunet_core.train_epochs yields for an epoch (an EpochResult's fields)."""
    out = root / f"epoch_{epoch}"
    out.mkdir(parents=True)
    (out / CHECKPOINT_NAME).write_text(f"state after epoch {epoch}")
    (out / "grid.png").write_bytes(f"grid {epoch}".encode())
    eval_dir = None
    if with_eval:
        eval_dir = out / "eval_out"
        eval_dir.mkdir()
        (eval_dir / "metrics.json").write_text(json.dumps({"epoch": epoch}))
    metrics = {METRIC: 0.5 / epoch, "train/loss": 2.0 / epoch}
    return SimpleNamespace(
        epoch=epoch,
        step=3 * epoch,
        metrics=metrics,
        sample_grid=out / "grid.png",
        eval_dir=eval_dir,
        checkpoint=out / CHECKPOINT_NAME,
    )


class Recorder:
    """Fakes of train_epochs, tune.report and tune.get_checkpoint, recording what they see."""

    def __init__(self, tmp_path: Path, results: list[Any], error: Exception | None = None) -> None:
        self.tmp = tmp_path
        self.results = results
        self.error = error  # raised by training after the results
        self.reports: list[tuple[dict[str, Any], Path | None]] = []
        self.calls: list[dict[str, Any]] = []

    def train_epochs(self, cfg: Config, out_dir: Path, *, resume: Any = None, progress: Any = None) -> Iterator[Any]:
        resumed = Path(resume).read_text() if resume is not None else None
        self.calls.append({"cfg": cfg, "resume": resume, "resumed": resumed, "progress": progress})
        yield from self.results
        if self.error is not None:
            raise self.error

    def report(self, metrics: dict[str, Any], *, checkpoint: Any = None) -> None:
        kept = None
        if checkpoint is not None:  # its temporary directory is gone once report returns
            kept = self.tmp / "reported" / str(len(self.reports))
            checkpoint.to_directory(str(kept))
        self.reports.append((dict(metrics), kept))


@pytest.fixture
def patch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.delenv(FAULT_ENV, raising=False)

    def install(recorder: Recorder, checkpoint: Any = None) -> Recorder:
        monkeypatch.setattr(sweeps.trainable, "train_epochs", recorder.train_epochs)
        monkeypatch.setattr(sweeps.trainable.tune, "report", recorder.report)
        monkeypatch.setattr(sweeps.trainable.tune, "get_checkpoint", lambda: checkpoint)
        monkeypatch.setattr(epoch_output, "trial_storage", lambda: (pafs.LocalFileSystem(), str(tmp_path / "trial")))
        return recorder

    return install


def test_each_epoch_goes_to_the_trials_epochs_folder_and_the_state_only_into_due_checkpoints(
    base_tree: dict[str, Any], tmp_path: Path, patch: Any
) -> None:
    rec = patch(Recorder(tmp_path, [epoch_result(tmp_path / "train", 1), epoch_result(tmp_path / "train", 2)]))
    run_trial(CONFIG, base_tree, METRIC, "min")
    (call,) = rec.calls
    assert call["resume"] is None and call["progress"] is False
    cfg = call["cfg"]  # the base tree with the sampled value set
    assert cfg.losses.KL.end_ramp_val == 0.1 and cfg.model.spatial_size == 32 and cfg.training.num_epochs == 2
    assert [metrics for metrics, _ in rec.reports] == [
        {METRIC: 0.5, "train/loss": 2.0, "epoch": 1, "step": 3},
        {METRIC: 0.25, "train/loss": 1.0, "epoch": 2, "step": 6},
    ]
    # 2 epochs < STATE_EVERY: the state is saved at the last epoch only
    assert rec.reports[0][1] is None
    ckpt = rec.reports[1][1]
    assert ckpt is not None and sorted(p.name for p in ckpt.iterdir()) == sorted([CHECKPOINT_NAME, "meta.json"])
    assert (ckpt / CHECKPOINT_NAME).read_text() == "state after epoch 2"
    assert json.loads((ckpt / "meta.json").read_text()) == {"epoch": 2, "step": 6}
    for epoch in (1, 2):
        out = tmp_path / "trial" / EPOCHS_DIR / f"epoch_{epoch:04d}"
        assert sorted(p.name for p in out.iterdir()) == sorted(["samples.png", "eval", "meta.json"])
        assert (out / "samples.png").read_bytes() == f"grid {epoch}".encode()
        assert json.loads((out / "eval" / "metrics.json").read_text()) == {"epoch": epoch}
        assert json.loads((out / "meta.json").read_text()) == {"epoch": epoch, "step": 3 * epoch}


@pytest.mark.parametrize(
    ("every", "extra", "saved"),
    [(4, (), [4, 8, 10]), (1, (), list(range(1, 11))), (4, (3,), [3, 4, 8, 10]), (0, (), [10])],
)
def test_the_state_is_saved_every_k_epochs_at_the_extra_epochs_and_at_the_end(
    every: int, extra: tuple[int, ...], saved: list[int]
) -> None:
    assert [e for e in range(1, 11) if saves_state(e, 10, every, extra)] == saved


def test_an_epoch_without_eval_outputs_has_no_eval_folder(
    base_tree: dict[str, Any], tmp_path: Path, patch: Any
) -> None:
    rec = patch(Recorder(tmp_path, [epoch_result(tmp_path / "train", 1, with_eval=False)]))
    run_trial(CONFIG, base_tree, METRIC, "min")
    ((metrics, _ckpt),) = rec.reports
    assert metrics["epoch"] == 1
    out = tmp_path / "trial" / EPOCHS_DIR / "epoch_0001"
    assert sorted(p.name for p in out.iterdir()) == sorted(["samples.png", "meta.json"])


@pytest.mark.parametrize(("mode", "worst"), [("min", float("inf")), ("max", float("-inf"))])
def test_a_diverged_trial_ends_with_one_report_of_the_worst_objective(
    base_tree: dict[str, Any], tmp_path: Path, patch: Any, mode: str, worst: float
) -> None:
    diverged = DivergedError(step=7, term="KL", value=float("nan"))
    rec = patch(Recorder(tmp_path, [epoch_result(tmp_path / "train", 1)], error=diverged))
    run_trial(CONFIG, base_tree, METRIC, mode)  # no exception: Ray must not retry it
    assert len(rec.reports) == 2 and rec.reports[0][0]["epoch"] == 1
    last, ckpt = rec.reports[-1]
    assert ckpt is None
    assert {k: str(v) if k == "trial_state" else v for k, v in last.items()} == {
        METRIC: worst,
        "trial_state": "diverged",
        "diverged_step": 7,
        "diverged_term": "KL",
    }


def test_other_training_errors_propagate(base_tree: dict[str, Any], tmp_path: Path, patch: Any) -> None:
    """A crash is Ray's to retry, not a diverged report."""
    crash = RuntimeError("CUDA error: out of memory")
    rec = patch(Recorder(tmp_path, [epoch_result(tmp_path / "train", 1)], error=crash))
    with pytest.raises(RuntimeError, match="out of memory"):
        run_trial(CONFIG, base_tree, METRIC, "min")
    assert [m["epoch"] for m, _ in rec.reports] == [1]


def test_a_restored_trial_resumes_from_a_copy_of_rays_checkpoint(
    base_tree: dict[str, Any], tmp_path: Path, patch: Any
) -> None:
    saved = tmp_path / "ray_checkpoint"
    saved.mkdir()
    (saved / CHECKPOINT_NAME).write_text("state after epoch 1")
    (saved / "samples.png").write_bytes(b"grid 1")

    class FakeCheckpoint:
        @contextlib.contextmanager
        def as_directory(self) -> Iterator[str]:
            local = tmp_path / "as_directory"  # Ray may hand out a temporary copy
            shutil.copytree(saved, local)
            try:
                yield str(local)
            finally:
                shutil.rmtree(local)

    rec = patch(Recorder(tmp_path, [epoch_result(tmp_path / "train", 2)]), checkpoint=FakeCheckpoint())
    run_trial(CONFIG, base_tree, METRIC, "min")
    (call,) = rec.calls
    resume = Path(call["resume"])
    assert resume.name == CHECKPOINT_NAME and call["resumed"] == "state after epoch 1"
    assert not resume.is_relative_to(tmp_path)  # copied into the trial's own work dir
    assert (saved / CHECKPOINT_NAME).read_text() == "state after epoch 1"  # Ray's copy untouched
    assert [m["epoch"] for m, _ in rec.reports] == [2]
