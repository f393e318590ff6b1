"""Signals, kill -9, concurrent sweeps and a tracking-server outage, through the real CLI.

Each test runs real sweeps (Ray, Optuna, MLflow) in subprocesses; the outage test starts
a real `mlflow server` on 127.0.0.1, kills it mid-sweep and starts it again.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow import MlflowClient

from tests.sweeps.test_sweep_cli import RUN, children, client_for, run_cli, sweep_env
from tests.sweeps.test_sweep_faults import write_spec

pytestmark = pytest.mark.slow


class Sweep:
    """A sweep CLI process whose output lines are collected with their arrival times."""

    def __init__(self, args: list[str], cwd: Path, **env: str) -> None:
        self.proc = subprocess.Popen(
            [*RUN, *args],
            cwd=cwd,
            env=sweep_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # kill -9 of the group also ends the Ray processes it started
        )
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):  # type: ignore[union-attr]
            self.lines.append((time.monotonic(), line))

    @property
    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while not any(text in line for _, line in self.lines):
            assert self.proc.poll() is None and time.time() < deadline, self.output[-3000:]
            time.sleep(0.1)

    def finish(self, timeout: float = 300) -> int:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._reader.join(timeout=10)
        return self.proc.returncode


def _no_running_anywhere(cwd: Path, sweep_dir: Path, name: str) -> None:
    client = client_for(cwd)
    exp = client.get_experiment_by_name(name)
    assert exp is not None
    assert not [r for r in client.search_runs([exp.experiment_id]) if r.info.status == "RUNNING"]
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def _unique_steps(client: MlflowClient, kids: list[Any], epochs: int) -> None:
    for kid in kids:
        steps = [m.step for m in client.get_metric_history(kid.info.run_id, "val/transfer/l1")]
        assert sorted(steps) == list(range(1, epochs + 1)), steps


def test_sigterm_while_the_last_trials_run_is_resumable_from_another_directory(tmp_path: Path) -> None:
    cwd, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    cwd.mkdir()
    elsewhere.mkdir()
    spec = write_spec(tmp_path / "term.yaml", "term", num_samples=2, max_concurrent_trials=2, max_epochs=3)
    sweep = Sweep([str(spec)], cwd)
    sweep.wait_for("epoch 1/3")  # both (= the last) trials are running
    sweep.proc.send_signal(signal.SIGTERM)
    assert sweep.finish(180) == 143, sweep.output[-3000:]
    sweep_dir = cwd / "sweeps_out" / "term"
    assert not (sweep_dir / "best_config.yaml").exists() and "best (" not in sweep.output
    _no_running_anywhere(cwd, sweep_dir, "term")
    _, kids = children(client_for(cwd), "term")
    assert {k.data.tags["trial_state"] for k in kids} == {"interrupted"} and {k.info.status for k in kids} == {"KILLED"}
    command = next(line for _, line in sweep.lines if "--resume" in line).strip()
    argv = shlex.split(command)[2:]
    assert shlex.split(command)[1].endswith("sweeps/run.py") and argv[-3:] == [
        "--resume",
        "--sweep-dir",
        str(sweep_dir),
    ]
    out = run_cli(argv, elsewhere, MLFLOW_TRACKING_URI="")  # the recorded store, not ./mlflow.db here
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert not (elsewhere / "mlflow.db").exists() and not (elsewhere / ".vunet_cache").exists()
    with open(sweep_dir / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(r["state"] == "completed" and r["epochs"] == "3" for r in rows)
    client = client_for(cwd)
    parent, kids = children(client, "term")
    assert parent.info.status == "FINISHED" and {k.info.status for k in kids} == {"FINISHED"}
    _unique_steps(client, kids, 3)
    _no_running_anywhere(cwd, sweep_dir, "term")
    study = optuna.load_study(study_name="term", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 2

    other = run_cli([*argv[:-3], "--resume", "--out-dir", str(cwd / "sweeps_out")], elsewhere, MLFLOW_TRACKING_URI="x")
    assert other.returncode == 2 and "differs from the sweep's store" in other.stderr
    changed = run_cli([*argv, "optimizer/lr", "0.01"], elsewhere)
    assert changed.returncode == 2 and "the sweep started with overrides" in changed.stderr


def test_kill_9_then_resume_logs_every_epoch_once(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "k9.yaml", "k9", num_samples=2, max_concurrent_trials=1, max_epochs=4)
    slower = yaml.safe_load(spec.read_text())
    slower["fixed"]["training"]["steps_per_epoch"] = 15  # epochs of a few seconds, as in real sweeps
    spec.write_text(yaml.safe_dump(slower, sort_keys=False))
    sweep = Sweep([str(spec)], tmp_path)
    sweep.wait_for("epoch 3/4")
    os.killpg(sweep.proc.pid, signal.SIGKILL)
    sweep.finish(60)
    out = run_cli([str(spec), "--resume"], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = client_for(tmp_path)
    parent, kids = children(client, "k9")
    assert parent.info.status == "FINISHED" and len(kids) == 2
    assert {k.info.status for k in kids} == {"FINISHED"}
    _unique_steps(client, kids, 4)
    _no_running_anywhere(tmp_path, tmp_path / "sweeps_out" / "k9", "k9")


def test_two_sweeps_started_together_get_their_own_directory_study_and_parent_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "twin.yaml", "twin", num_samples=1, max_concurrent_trials=1, max_epochs=1)
    sweeps = [Sweep([str(spec), "--num-cpus", "1"], tmp_path) for _ in range(2)]
    assert [s.finish(300) for s in sweeps] == [0, 0], sweeps[0].output[-2000:] + sweeps[1].output[-2000:]
    dirs = {tmp_path / "sweeps_out" / "twin", tmp_path / "sweeps_out" / "twin-2"}
    assert all((d / "best_config.yaml").is_file() and (d / "optuna.db").is_file() for d in dirs)
    client = client_for(tmp_path)
    exp = client.get_experiment_by_name("twin")
    assert exp is not None
    parents = client.search_runs([exp.experiment_id], filter_string="tags.role = 'sweep'")
    assert len(parents) == 2 and {p.data.tags["sweep_dir"] for p in parents} == {str(d) for d in dirs}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(root: Path, port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "art")]
    cmd += ["--workers", "1"]
    log = open(root / f"server-{time.time():.0f}.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("mlflow server did not start")


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def test_tracking_server_outage_delays_no_trial_and_loses_no_metric(tmp_path: Path) -> None:
    port = _free_port()
    uri = f"http://alice:s3cret@127.0.0.1:{port}"  # credentials: sent as basic auth, never printed
    server = _start_server(tmp_path, port)
    spec = write_spec(tmp_path / "outage.yaml", "outage", num_samples=2, max_concurrent_trials=1, max_epochs=4)
    try:
        sweep = Sweep([str(spec)], tmp_path, MLFLOW_TRACKING_URI=uri)
        sweep.wait_for("epoch 1/4")
        _stop_server(server)
        down_at = time.monotonic()
        sweep.wait_for("trial 1 (", timeout=300)  # trials go on while the server is down
        sweep.wait_for("epoch 2/4", timeout=300)
        server = _start_server(tmp_path, port)
        assert sweep.finish(300) == 0, sweep.output[-3000:]
    finally:
        _stop_server(server) if server.poll() is None else None
    assert "s3cret" not in sweep.output and "alice:***@127.0.0.1" in sweep.output
    progress = [t for t, line in sweep.lines if line.startswith("trial ") and t >= down_at]
    assert len(progress) >= 4, sweep.output[-3000:]
    gaps = [b - a for a, b in zip(progress, progress[1:], strict=False)]
    print(f"\noutage: longest gap between progress lines {max(gaps):.1f} s; progress lines {len(progress)}")
    assert max(gaps) < 30  # tracking never holds up training (an epoch here takes ~2 s)
    server = _start_server(tmp_path, port)
    try:
        client = MlflowClient(uri)
        parent, kids = children(client, "outage")
        assert parent.info.status == "FINISHED" and len(kids) == 2, sweep.output[-3000:]
        assert {k.info.status for k in kids} == {"FINISHED"}
        refused = tmp_path / "sweeps_out" / "outage" / "mlflow_outbox" / "refused.log"
        assert not refused.exists(), refused.read_text()
        _unique_steps(client, kids, 4)
        for kid in kids:
            images = [a.path for a in client.list_artifacts(kid.info.run_id, "images")]
            assert sum(p.endswith(".png") for p in images) == 4
        assert not [
            p for p in (tmp_path / "sweeps_out" / "outage" / "mlflow_outbox").glob("*.json") if p.stem.isdigit()
        ]
    finally:
        _stop_server(server)


def test_a_server_still_down_at_the_end_leaves_the_calls_on_disk_for_sync(tmp_path: Path) -> None:
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _start_server(tmp_path, port)
    spec = write_spec(tmp_path / "late.yaml", "late", num_samples=1, max_concurrent_trials=1, max_epochs=2)
    sweep = Sweep([str(spec)], tmp_path, MLFLOW_TRACKING_URI=uri)
    try:
        sweep.wait_for("started")
        _stop_server(server)
        assert sweep.finish(300) == 0, sweep.output[-3000:]
        assert "could not be sent yet" in sweep.output and "--sync" in sweep.output
        pending = [p for p in (tmp_path / "sweeps_out" / "late" / "mlflow_outbox").glob("*.json") if p.stem.isdigit()]
        assert pending
        server = _start_server(tmp_path, port)
        out = run_cli([str(spec), "--sync"], tmp_path / "sweeps_out", MLFLOW_TRACKING_URI=uri, timeout=300)
        assert out.returncode == 2, out.stdout + out.stderr  # from another directory: no sweep there
        out = run_cli([str(spec), "--sync"], tmp_path, MLFLOW_TRACKING_URI=uri, timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        assert f"sent {len(pending)} of {len(pending)} queued calls" in out.stdout
        client = MlflowClient(uri)
        parent, kids = children(client, "late")
        assert parent.info.status == "FINISHED" and [k.info.status for k in kids] == ["FINISHED"]
        _unique_steps(client, kids, 2)
    finally:
        _stop_server(server)


def _end_line(output: str) -> re.Match[str]:
    found = re.search(r"(\d+) trials in (\d+) s wall(?: over (\d+) legs)?.*compute fraction ([\d.]+)", output)
    assert found is not None, output[-3000:]
    return found


def test_a_resumed_search_goes_on_where_it_stopped_with_one_number_per_trial(tmp_path: Path) -> None:
    """SIGINT during the search, then --resume: the proposals are those of an uninterrupted sweep
    with the same seed (random sampler, one trial at a time), none repeated; every trial keeps one
    number in the output, results.csv, MLflow and optuna.db; the totals add up both legs."""
    spec = write_spec(tmp_path / "legs.yaml", "legs", num_samples=4, max_concurrent_trials=1, max_epochs=3)
    raw = yaml.safe_load(spec.read_text())
    raw["fixed"]["training"]["steps_per_epoch"] = 6
    raw["sampler"] = "random"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    cut.mkdir()
    whole.mkdir()
    sweep = Sweep([str(spec)], cut)
    sweep.wait_for("trial 1 (")  # the baseline finished, the first sampled trial started
    sweep.wait_for("epoch 1/3: val/transfer/l1", timeout=120)
    sweep.proc.send_signal(signal.SIGINT)
    assert sweep.finish(180) == 130, sweep.output[-3000:]
    resumed = run_cli([str(spec), "--resume"], cut, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    fresh = run_cli([str(spec)], whole, timeout=900)
    assert fresh.returncode == 0, fresh.stdout[-3000:] + fresh.stderr[-3000:]

    def proposals(cwd: Path) -> dict[str, tuple[str, ...]]:
        with open(cwd / "sweeps_out" / "legs" / "results.csv") as fh:
            rows = list(csv.DictReader(fh))
        params = [k for k in rows[0] if k.startswith("losses/")]
        return {r["trial"]: tuple(r[p] for p in params) for r in rows}

    got = proposals(cut)
    assert got == proposals(whole) and len(set(got.values())) == 4
    assert set(got) == {"0", "1", "2", "3"}
    printed = {int(n) for n in re.findall(r"^trial (\d+) \(", sweep.output + resumed.stdout, re.MULTILINE)}
    assert printed == {0, 1, 2, 3}
    _, kids = children(client_for(cut), "legs")
    assert sorted(k.info.run_name.rsplit(" ", 1)[0] for k in kids) == [f"trial {n}" for n in range(4)]
    sweep_dir = cut / "sweeps_out" / "legs"
    study = optuna.load_study(study_name="legs", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.user_attrs["trial"] for t in done) == [0, 1, 2, 3]
    assert any("resumed_from_trial" in t.user_attrs for t in done)  # Optuna's numbers behind trial 1 differ
    end = _end_line(resumed.stdout)
    state = json.loads((sweep_dir / "sweep.json").read_text())
    legs = {s["leg"] for s in state["spans"]}
    search_wall = sum(s["ended"] - s["started"] for s in state["spans"] if s["stage"] == "search")
    assert end.group(1) == "4" and end.group(3) == "2" and legs == {1, 2}
    assert abs(int(end.group(2)) - search_wall) <= 1 and float(end.group(4)) <= 1.0


def test_no_password_at_rest_and_resume_takes_it_from_the_environment(tmp_path: Path) -> None:
    """A sweep tracked on a server through `http://user:password@host`: nothing it writes holds the
    password (sweep directory, Tune state, logs, outbox, the server's store and artifacts); its
    --resume needs the password from the environment and says so in one line without it."""
    secret = "Pw-4f9c2e81d7"
    server_root, cwd = tmp_path / "server", tmp_path / "work"
    server_root.mkdir()
    cwd.mkdir()
    port = _free_port()
    server = _start_server(server_root, port)
    try:
        uri = f"http://alice:{secret}@127.0.0.1:{port}"
        spec = write_spec(tmp_path / "pw.yaml", "pw", num_samples=3, max_concurrent_trials=1, max_epochs=2)
        sweep = Sweep([str(spec)], cwd, MLFLOW_TRACKING_URI=uri)
        sweep.wait_for("trial 1 (")
        sweep.proc.send_signal(signal.SIGINT)
        assert sweep.finish(180) == 130, sweep.output[-3000:]
        refused = run_cli([str(spec), "--resume"], cwd)
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert "needs its password" in refused.stderr and "MLFLOW_TRACKING_PASSWORD" in refused.stderr
        resumed = run_cli([str(spec), "--resume"], cwd, MLFLOW_TRACKING_PASSWORD=secret)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert (cwd / "sweeps_out" / "pw" / "best_config.yaml").is_file()
        _, kids = children(MlflowClient(f"http://127.0.0.1:{port}"), "pw")
        assert len(kids) == 3 and {k.info.status for k in kids} == {"FINISHED"}
    finally:
        _stop_server(server)
    found = subprocess.run(["grep", "-rl", secret, str(cwd), str(server_root)], capture_output=True, text=True)
    assert found.stdout == "", found.stdout  # grep finds the password in no file the sweep or the server wrote
    assert secret not in sweep.output + refused.stdout + refused.stderr + resumed.stdout + resumed.stderr


def test_an_undecided_candidate_gets_a_second_round_that_resumes_without_rerunning_seeds(tmp_path: Path) -> None:
    """lr 1e-9 learns nothing (worse after the first round); lr 0.0010001 is the baseline's 0.001
    within rounding (undecided: it draws 3 more seeds with the baseline). SIGINT in the second
    round, --resume: each (candidate, seed) trains once."""
    spec = write_spec(
        tmp_path / "rounds.yaml",
        "rounds",
        parameters={"optimizer/lr": {"values": [0.001, 1.0e-9, 0.0010001]}},
        num_samples=3,
        confirm={"top_k": 2, "seeds": [1, 2, 3], "max_seeds": 6, "margin": 0},
    )
    sweep = Sweep([str(spec)], tmp_path)
    sweep.wait_for("confirmation round 2 (undecided so far): baseline, trial ", timeout=600)
    sweep.wait_for("seed 4 (", timeout=300)
    sweep.proc.send_signal(signal.SIGINT)
    assert sweep.finish(180) == 130, sweep.output[-3000:]
    out = run_cli([str(spec), "--resume"], tmp_path, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    sweep_dir = tmp_path / "sweeps_out" / "rounds"
    with open(sweep_dir / "confirm.csv") as fh:
        rows = {r["candidate"]: r for r in csv.DictReader(fh)}
    lr = {label: float(r["optimizer/lr"]) for label, r in rows.items()}
    worse = next(label for label, v in lr.items() if v == 1e-9)
    close = next(label for label, v in lr.items() if v == 0.0010001)
    assert rows[worse]["verdict"] == "worse" and rows[worse]["seeds_used"] == "3"
    assert rows[close]["seeds_used"] == "6" and rows["baseline"]["seeds_used"] == "6"
    assert rows[close]["verdict"] in ("undecided", "better", "worse")  # margin 0: never equivalent
    second = [d.name for d in (sweep_dir / "confirm_round2").iterdir() if d.is_dir()]
    assert sorted(n.split("_seed_")[0] for n in second) == sorted(
        ["confirm_baseline"] * 3 + [f"confirm_{close.replace(' ', '_')}"] * 3
    )
    _, kids = children(client_for(tmp_path), "rounds")
    trained = sorted((k.data.tags["candidate"], k.data.tags["seed"]) for k in kids if k.data.tags["stage"] == "confirm")
    expected = [(c, str(s)) for c in ("baseline", close) for s in range(1, 7)] + [(worse, str(s)) for s in (1, 2, 3)]
    assert trained == sorted(expected)  # each once: the first round was not run again
    assert "undecided" in out.stdout or "better than the baseline" in out.stdout or "no candidate" in out.stdout
