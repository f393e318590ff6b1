"""Sweep directories, resume state, the MLflow outbox and URI redaction (no Ray)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from sweeps.outbox import Outbox
from sweeps.spec import SpecError
from sweeps.sweep_dir import (
    SweepState,
    begin_span,
    create_sweep_dir,
    end_span,
    find_resumable,
    read_state,
    resume_tracking_uri,
    write_state,
)
from sweeps.tracking import check_tracking, open_store, redact


def test_a_new_sweep_never_reuses_a_directory_and_resume_needs_a_started_one(tmp_path: Path) -> None:
    assert create_sweep_dir(tmp_path, "smoke") == tmp_path / "smoke"
    assert create_sweep_dir(tmp_path, "smoke") == tmp_path / "smoke-2"
    (tmp_path / "smoke-10").mkdir()
    (tmp_path / "smokey").mkdir()
    with pytest.raises(SpecError, match="--resume: no started sweep smoke"):
        find_resumable(tmp_path, "smoke")  # smoke-10, the newest, never started
    write_state(tmp_path / "smoke-10", SweepState(tracking_uri="sqlite:////x/mlflow.db", cwd="/x"))
    assert find_resumable(tmp_path, "smoke") == tmp_path / "smoke-10"
    assert read_state(tmp_path / "smoke-10").cwd == "/x"
    with pytest.raises(SpecError, match="--resume: no started sweep other"):
        find_resumable(tmp_path, "other")


def _claim(out_dir: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(str(create_sweep_dir(Path(out_dir), "race")))


def test_sweeps_started_at_the_same_moment_get_different_directories(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(str(tmp_path), queue)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    claimed = [queue.get(timeout=5) for _ in procs]
    assert len(set(claimed)) == 6


def test_unwritable_out_dir_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecError, match="--out-dir .*cannot create the sweep directory"):
        create_sweep_dir(tmp_path / "file" / "sub", "smoke")


def test_resume_keeps_the_recorded_store_and_refuses_another(tmp_path: Path) -> None:
    write_state(tmp_path, SweepState(tracking_uri="http://u:s3cret@127.0.0.1:5000"))
    assert "s3cret" not in (tmp_path / "sweep.json").read_text()  # no secret at rest
    state = read_state(tmp_path)
    assert state.tracking_uri == "http://u:***@127.0.0.1:5000"
    with pytest.raises(SpecError, match="needs its password.*set MLFLOW_TRACKING_PASSWORD"):
        resume_tracking_uri(state, "")
    assert resume_tracking_uri(state, "", "p@ss/word") == "http://u:p%40ss%2Fword@127.0.0.1:5000"
    full = "http://u:s3cret@127.0.0.1:5000"
    assert resume_tracking_uri(state, full) == full  # the same store, credentials and all
    with pytest.raises(SpecError, match="differs from the sweep's store") as err:
        resume_tracking_uri(state, "http://u:s3cret@127.0.0.1:5001")
    assert "s3cret" not in str(err.value)
    local = SweepState(tracking_uri="sqlite:////x/mlflow.db")
    assert resume_tracking_uri(local, "") == local.tracking_uri
    with pytest.raises(SpecError, match="differs from the sweep's store"):
        resume_tracking_uri(local, "sqlite:////elsewhere/mlflow.db")


def test_credentials_are_never_shown() -> None:
    assert redact("http://alice:s3cret@host:5000/path") == "http://alice:***@host:5000/path"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
    with pytest.raises(Exception, match="unreachable") as err:
        check_tracking("http://alice:s3cret@127.0.0.1:9", timeout_s=2)
    assert "s3cret" not in str(err.value) and "alice:***@127.0.0.1:9" in str(err.value)


def _open(uri: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    client = open_store(uri)
    queue.put(len(client.search_experiments()))


def test_two_processes_create_the_local_store_at_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_open, args=(uri, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [queue.get(timeout=5) for _ in procs] == [1, 1]  # the Default experiment, once


def _store(tmp_path: Path, **experiment: Any) -> tuple[str, MlflowClient, str]:
    """A local MLflow store with one experiment: (tracking URI, client, experiment id)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = open_store(uri)
    return uri, client, client.create_experiment("x", **experiment)


def _create_t1(box: Outbox) -> None:
    box.put("create_run", "t1", tags={"ray_trial_id": "t1"}, run_name="trial 1", match_tag="ray_trial_id")


def _grid(tmp_path: Path) -> Path:
    from PIL import Image

    image = tmp_path / "grid.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(image)
    return image


def test_outbox_keeps_calls_on_disk_while_the_server_is_down_and_sends_them_later(tmp_path: Path) -> None:
    uri, client, exp = _store(tmp_path)
    image = _grid(tmp_path)
    down = Outbox(tmp_path / "sweep", "http://127.0.0.1:9", exp)
    down.start()
    _create_t1(down)
    for step in (1, 2):
        down.put("log_batch", "t1", metrics=[["val/transfer/l1", 0.5 / step, 0, step]])
    down.put("log_image", "t1", files={"image": image}, image_key="samples", step=2)
    down.put("set_status", "t1", status="FINISHED")
    image.unlink()  # the queue holds its own copy (Tune deletes old checkpoints)
    assert down.flush(timeout_s=2) == 5

    up = Outbox(tmp_path / "sweep", uri, exp)  # e.g. `--sync` once the server is back
    up.start()
    assert up.flush(timeout_s=60) == 0
    (run,) = client.search_runs([exp])
    assert run.info.status == "FINISHED" and run.data.tags["ray_trial_id"] == "t1"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/transfer/l1")] == [1, 2]
    # Replaying a create for a trial that has a run reuses it.
    again = Outbox(tmp_path / "sweep2", uri, exp)
    again.start()
    _create_t1(again)
    assert again.flush(timeout_s=30) == 0 and again.runs["t1"] == run.info.run_id
    assert len(client.search_runs([exp])) == 1


def test_outbox_moves_a_folder_into_a_local_artifact_store_and_a_resend_is_harmless(tmp_path: Path) -> None:
    uri, client, exp = _store(tmp_path, artifact_location=(tmp_path / "artifacts").as_uri())
    box = Outbox(tmp_path / "sweep", uri, exp)
    _create_t1(box)
    box.send(box.pending()[0])
    for epoch in (1, 2):
        folder = tmp_path / f"eval{epoch}"
        (folder / "sub").mkdir(parents=True)
        (folder / "index.json").write_text(f"[{epoch}]")
        (folder / "sub" / "0.png").write_bytes(bytes([epoch]) * 10)
        box.put("log_artifacts", "t1", files={"dir": folder}, move=True, artifact_path=f"eval/epoch_{epoch:04d}")
        assert not folder.exists()  # the driver hands the folder over, no copy
    first = box.pending()[0]
    queued = Path(json.loads(first.read_text())["files"]["dir"])
    box._perform("log_artifacts", "t1", {"artifact_path": "eval/epoch_0001"}, {"dir": str(queued)})  # noqa: SLF001 - a call carried out but not removed (killed in between)
    assert not queued.exists()  # moved, not copied; the call is still queued (as if killed here)
    box.start()
    assert box.flush(timeout_s=30) == 0  # sent again: nothing left to move, nothing lost
    run_id = box.runs["t1"]
    for epoch in (1, 2):
        path = f"eval/epoch_{epoch:04d}"
        assert {a.path for a in client.list_artifacts(run_id, path)} == {f"{path}/index.json", f"{path}/sub"}
        local = Path(client.download_artifacts(run_id, f"{path}/sub/0.png", str(tmp_path / f"dl{epoch}")))
        assert local.read_bytes() == bytes([epoch]) * 10
    assert not list((tmp_path / "sweep" / "mlflow_outbox").glob("*.files"))


def test_an_image_call_the_store_took_before_the_driver_stopped_is_logged_once(tmp_path: Path) -> None:
    uri, client, exp = _store(tmp_path)
    image = _grid(tmp_path)
    box = Outbox(tmp_path / "sweep", uri, exp)
    _create_t1(box)
    box.send(box.pending()[0])
    for step in (1, 2):
        box.put("log_image", "t1", files={"image": image}, image_key="samples", step=step)
    head = box.pending()[0]
    item = json.loads(head.read_text())
    box._perform(item["op"], item["key"], item["args"], item["files"])  # noqa: SLF001 - carried out; the driver dies before removing it
    restarted = Outbox(tmp_path / "sweep", uri, exp)
    restarted.start()
    assert restarted.flush(timeout_s=30) == 0
    names = [a.path for a in client.list_artifacts(restarted.runs["t1"], "images") if a.path.endswith(".png")]
    assert sorted(n.split("+")[2] for n in names) == ["1", "2"]  # each step once


def _exited(pid: int, timeout_s: float) -> bool:
    """The process is gone (or a zombie nobody reaped yet) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_the_sender_is_a_process_out_of_reach_of_ctrl_c_that_stops_on_flush(tmp_path: Path) -> None:
    uri, _, exp = _store(tmp_path)
    box = Outbox(tmp_path / "sweep", uri, exp)
    box.start()
    pid = box.sender_pid
    assert pid is not None and pid != os.getpid()
    # Ctrl-C at a terminal signals its foreground process group: the driver's, not the sender's.
    assert os.getpgid(pid) != os.getpgid(0)
    _create_t1(box)
    assert box.wait_for_run("t1", 60.0)
    os.kill(pid, signal.SIGINT)  # sent to it alone: ignored as well
    box.put("log_batch", "t1", metrics=[["val/transfer/l1", 0.5, 0, 1]])
    assert box.flush(timeout_s=30) == 0 and box.sent == 2
    assert _exited(pid, 5) and box.sender_pid is None


def test_the_sender_of_a_killed_driver_stops_and_leaves_the_queue_on_disk(tmp_path: Path) -> None:
    uri, _, exp = _store(tmp_path)
    driver = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sweeps.outbox import Outbox\n"
        f"box = Outbox(Path({str(tmp_path / 'sweep')!r}), {uri!r}, {exp!r})\n"
        "box.start()\n"
        "print(box.sender_pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True, cwd=root)
    assert proc.stdout is not None
    sender = int(proc.stdout.readline())
    time.sleep(3)  # the sender runs
    proc.kill()  # kill -9 of the driver
    proc.wait()
    assert _exited(sender, 10)  # no sender left behind to race the next driver's
    box = Outbox(tmp_path / "sweep", uri, exp)  # e.g. --resume: the queue is still there to send
    _create_t1(box)
    box.start()
    assert box.flush(timeout_s=60) == 0 and box.runs["t1"]


def test_outbox_hands_out_a_queued_runs_id_once_it_is_created(tmp_path: Path) -> None:
    uri, _, exp = _store(tmp_path)
    box = Outbox(tmp_path / "sweep", uri, exp)
    _create_t1(box)
    assert box.wait_for_run("t1", 5.0) == ""  # no sender yet: nothing can arrive, no waiting
    box.start()
    run_id = box.wait_for_run("t1", 60.0)  # what best_trial.json records, instead of ""
    assert run_id and run_id == box.runs["t1"]
    assert box.wait_for_run("never", 0.2) == ""
    assert box.flush(timeout_s=30) == 0


def test_the_totals_add_up_every_leg_and_a_killed_leg_ends_at_its_last_sign_of_life(tmp_path: Path) -> None:
    write_state(tmp_path, SweepState(tracking_uri="sqlite:////x/mlflow.db"))
    begin_span(tmp_path, 1, "search")
    end_span(tmp_path)
    begin_span(tmp_path, 2, "search")  # this driver is killed: its span stays open
    (tmp_path / "optuna.db").write_text("")  # the study's last write
    os.utime(tmp_path / "optuna.db", (time.time() + 5, time.time() + 5))
    begin_span(tmp_path, 3, "search")  # --resume
    end_span(tmp_path)
    begin_span(tmp_path, 3, "confirm")
    end_span(tmp_path)
    state = read_state(tmp_path)
    assert [(s.leg, s.stage) for s in state.spans] == [(1, "search"), (2, "search"), (3, "search"), (3, "confirm")]
    assert all(s.ended is not None for s in state.spans) and state.legs == 3
    assert 4.5 < state.spans[1].wall_s < 6  # closed at optuna.db's mtime
    assert state.wall_s("search") == pytest.approx(sum(s.wall_s for s in state.spans[:3]))
