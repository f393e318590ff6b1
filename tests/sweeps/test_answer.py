"""What a finished sweep leaves behind (sweeps/answer.py), on a fake outbox: the answer's files,
the parent run's last entries in order, and the end of the terminal output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sweeps import confirm
from sweeps.answer import close_finished
from sweeps.files import BEST_CONFIG, BEST_TRIAL
from sweeps.report import SweepReport
from sweeps.search import trial_cfg
from sweeps.session import PARENT, SweepSession
from sweeps.storage import local
from tests.sweeps.test_confirm import BASE, collect, result, row
from tests.sweeps.test_space import make_spec, run_searcher, searcher
from vunet_core import render_config


class FakeOutbox:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def put(self, op: str, key: str, files: dict[str, Path] | None = None, **args: Any) -> None:
        self.calls.append((op, key, {**args, **{k: Path(v) for k, v in (files or {}).items()}}))

    def wait_for_run(self, key: str, timeout_s: float) -> str:
        return f"run-of-{key}"

    def of(self, op: str) -> list[dict[str, Any]]:
        return [args for o, key, args in self.calls if o == op and key == PARENT]


def _finished(tmp_path: Path, confirmed: bool) -> tuple[SweepSession, SweepReport, confirm.Confirmation | None]:
    spec = make_spec(tmp_path, max_epochs=4, confirm={"top_k": 1, "seeds": [1, 2, 3]} if confirmed else False)
    sweep_dir = tmp_path / "sweep"
    run_searcher(searcher(spec, sweep_dir), 2)  # the study the report's plots read
    rows = [row(0, 0.20), row(3, 0.17, lr=3e-3), row(4, 0.19, epochs=2, state="early_stopped", lr=4e-3)]
    rows[0].sampled["sweep"] = {"stage": "search", "baseline": True, "number": 0}
    report = SweepReport(spec, rows, wall_s=100.0, best=rows[1], baseline=rows[0])
    session = SweepSession(spec, spec.base_tree(), "sqlite:////x/mlflow.db", sweep_dir, local(sweep_dir))
    session.experiment_id, session.parent_id = "1", "parent-run"
    if not confirmed:
        return session, report, None
    picked = confirm.pick_candidates(report, top_k=1)
    results = [result("baseline", s, v) for s, v in zip((1, 2, 3), BASE, strict=True)]
    results += [result("trial 3", s, v) for s, v in zip((1, 2, 3), (0.170, 0.172, 0.169), strict=True)]
    return session, report, collect(spec, picked, results)


@pytest.mark.parametrize("confirmed", [True, False])
def test_the_answer_is_written_logged_and_the_parent_finished_last(
    tmp_path: Path, capsys: Any, confirmed: bool
) -> None:
    session, report, confirmation = _finished(tmp_path, confirmed)
    outbox = FakeOutbox()
    close_finished(session, outbox, report, confirmation)  # type: ignore[arg-type]
    sweep_dir = session.sweep_dir

    best = report.rows[1]  # trial 3: the search's best, and confirmed better
    assert (sweep_dir / BEST_CONFIG).read_text() == render_config(trial_cfg(session.base_tree, best.sampled))
    record = json.loads((sweep_dir / BEST_TRIAL).read_text())
    assert (record["trial_id"], record["run_id"], record["parent_run_id"]) == ("t3", "run-of-t3", "parent-run")
    assert ("confirmation" in record) is confirmed
    logged = {args["file"].name for args in outbox.of("log_artifact") if "artifact_path" not in args}
    expected = {"results.csv", BEST_CONFIG, BEST_TRIAL} | ({"confirm.csv", "confirm.png"} if confirmed else set())
    assert expected <= logged
    metrics = {m[0]: m[1] for args in outbox.of("log_batch") for m in args.get("metrics", [])}
    assert metrics["best/val/transfer/l1"] == pytest.approx(0.17)
    assert ("confirm/delta" in metrics) is confirmed
    tags = {k: v for args in outbox.of("log_batch") for k, v in args.get("tags", [])}
    assert tags["sweep_state"] == "finished" and tags["best_trial_id"] == "t3" and tags["best_run_id"] == "run-of-t3"
    if confirmed:
        assert tags["confirm_winner"] == "trial 3" and tags["confirm_verdict"] == confirm.BETTER
    assert outbox.calls[-1] == ("set_status", PARENT, {"status": "FINISHED"})
    out = capsys.readouterr().out
    assert f"reuse it:    python sweeps/train_best.py {sweep_dir / BEST_CONFIG} training/num_epochs 40" in out
    assert ("trial 3 is better than the baseline" in out) is confirmed


def test_a_sweep_without_a_finite_trial_has_no_answer(tmp_path: Path, capsys: Any) -> None:
    session, report, _ = _finished(tmp_path, confirmed=False)
    report.best = None
    outbox = FakeOutbox()
    close_finished(session, outbox, report, None)  # type: ignore[arg-type]
    assert not (session.sweep_dir / BEST_CONFIG).exists() and not (session.sweep_dir / BEST_TRIAL).exists()
    assert "nothing to reuse" in capsys.readouterr().out
    assert outbox.calls[-1] == ("set_status", PARENT, {"status": "FINISHED"})
