"""The same sweep file runs on an existing multi-node Ray cluster via --address."""

from __future__ import annotations

import csv
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sweeps.test_sweep_cli import SMOKE, children, client_for, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def two_node_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, str]]]:
    # Joining a second node needs token authentication on these machines.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    for key, value in auth.items():
        monkeypatch.setenv(key, value)
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster.address, auth
    finally:
        cluster.shutdown()


def test_smoke_sweep_on_two_node_cluster(two_node_cluster: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    address, auth = two_node_cluster
    out = run_cli([str(SMOKE), "--address", address], tmp_path, **auth)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"Connecting to existing Ray cluster at address: {address}" in out.stdout + out.stderr
    with open(tmp_path / "sweeps_out" / "smoke" / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(r["state"] == "completed" for r in rows)
    _, kids = children(client_for(tmp_path), "smoke")
    assert len(kids) == 2
