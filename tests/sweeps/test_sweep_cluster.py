"""The same sweep file runs on an existing multi-node Ray cluster via --address."""

from __future__ import annotations

import csv
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sweeps.test_sweep_cli import SMOKE, children, client_for, run_cli, sweep_env

pytestmark = pytest.mark.slow


CLUSTER_SCRIPT = """
import sys
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
print(cluster.address, flush=True)
sys.stdin.read()  # until the test closes stdin
cluster.shutdown()
"""


@pytest.fixture
def two_node_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A head and a worker node in a child process (Ray reads its auth mode once per process)."""
    # Joining a second node needs token authentication on these machines.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CLUSTER_SCRIPT],
        env=sweep_env(**auth),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        address = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert address, "cluster did not start"
        yield address, auth
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_smoke_sweep_on_two_node_cluster(two_node_cluster: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    address, auth = two_node_cluster
    out = run_cli([str(SMOKE), "confirm", "false", "--address", address], tmp_path, **auth)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = (tmp_path / "sweeps_out" / "smoke" / "sweep.log").read_text()  # Ray's own lines go there
    assert f"Connecting to existing Ray cluster at address: {address}" in log
    with open(tmp_path / "sweeps_out" / "smoke" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(r["state"] == "completed" for r in rows)
    _, kids = children(client_for(tmp_path), "smoke")
    assert len(kids) == 2
