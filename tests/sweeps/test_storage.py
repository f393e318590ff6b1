"""sweeps.storage: where Tune's state goes, checked before compute, read through a filesystem."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import torch
from ray import tune

from sweeps.spec import SpecError
from sweeps.storage import (
    SLIM_MARK,
    Storage,
    check_storage,
    checkpoint_files,
    claim,
    open_storage,
    slim_checkpoints,
    sweep_storage,
    tree_size,
)
from sweeps.sweep_dir import SweepState, Target
from vunet_core import CHECKPOINT_NAME


def test_a_path_or_file_uri_is_the_local_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for given in ("shared/sweeps", f"file://{tmp_path}/shared/sweeps"):
        storage = open_storage(given)
        assert not storage.remote and storage.path == str(tmp_path / "shared" / "sweeps")
    assert open_storage("shared").child("smoke").path == str(tmp_path / "shared" / "smoke")


def test_s3_takes_its_endpoint_from_the_aws_variables_or_the_query(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:8333")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    storage = open_storage("s3://bucket/sweeps/")
    assert storage.remote and storage.path == "bucket/sweeps"
    assert isinstance(storage.fs, pafs.S3FileSystem)
    assert storage.fs.region == "eu-west-1"
    options = storage.fs.__reduce__()[1][0]
    assert options["endpoint_override"] == "127.0.0.1:8333" and options["scheme"] == "http"
    assert options["access_key"] is None  # credentials stay in each node's environment, never pickled
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    queried = open_storage("s3://bucket/x?endpoint_override=minio:9000&scheme=http")
    assert queried.fs.__reduce__()[1][0]["endpoint_override"] == "minio:9000"
    child = queried.child("smoke")
    assert (
        child.path == "bucket/x/smoke" and child.uri == "s3://bucket/x/smoke?endpoint_override=minio:9000&scheme=http"
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("s3://bucket/x?endpoint=h:1", "unknown option 'endpoint'"),
        ("s3:///x", "expected s3://BUCKET/PREFIX"),
        ("nosuchfs://x/y", "not a location Ray can store to"),
    ],
)
def test_a_uri_no_filesystem_takes_is_one_line(uri: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as err:
        open_storage(uri)
    assert "\n" not in str(err.value)


def test_an_unwritable_or_unreachable_storage_fails_before_compute(tmp_path: Path) -> None:
    occupied = tmp_path / "a_file"
    occupied.write_text("not a folder")  # no folder can be made under a file, whoever runs this
    with pytest.raises(SpecError, match=r"storage .*a_file/sweeps: cannot write there"):
        check_storage(open_storage(str(occupied / "sweeps")))
    nobody = open_storage("s3://bucket/x?endpoint_override=127.0.0.1:9&scheme=http")  # port 9: nothing listens
    started = time.monotonic()
    with pytest.raises(SpecError, match="storage s3://bucket/x.*: cannot write there") as err:
        check_storage(nobody)
    print(f"unreachable endpoint reported after {time.monotonic() - started:.1f} s")
    assert "\n" not in str(err.value)


def test_each_sweep_claims_its_own_folder_and_the_state_file_finds_it_again(tmp_path: Path) -> None:
    base = open_storage(str(tmp_path / "store"))
    first = claim(base, "smoke", tmp_path / "a")
    second = claim(base, "smoke", tmp_path / "b")
    assert [first.path, second.path] == [str(tmp_path / "store" / n) for n in ("smoke", "smoke-2")]
    assert str(tmp_path / "b") in (Path(second.path) / "driver.txt").read_text()
    state = SweepState(tracking_uri="sqlite:////x/mlflow.db", storage=base.uri, storage_name="smoke-2")
    assert Target(tmp_path / "b", state).storage == second
    assert sweep_storage(base.uri, "smoke-2", tmp_path / "b").path == second.path
    assert sweep_storage("", "", tmp_path / "b").path == str(tmp_path / "b")  # no storage: the sweep directory
    assert Target(None, state).storage == base  # a new sweep checks the storage before it claims a folder


def _checkpoint(folder: Path, optimizer: bool = True) -> None:
    folder.mkdir(parents=True)
    payload = {"model": {"w": torch.zeros(64, 64)}, "config_yaml": "", "optimizer": None}
    if optimizer:
        payload["optimizer"] = {"state": {0: {"exp_avg": torch.zeros(64, 64)}}}
    torch.save(payload, folder / CHECKPOINT_NAME)
    (folder / "meta.json").write_text(json.dumps({"epoch": 1, "step": 3}))
    (folder / "samples.png").write_bytes(b"png")
    (folder / "eval").mkdir()
    (folder / "eval" / "index.json").write_text("{}")


def _stage(root: Path) -> None:
    for trial_id, name in (("aa", "trial_0_aa"), ("bb", "trial_1_bb")):
        (root / name).mkdir(parents=True)
        (root / name / "result.json").write_text(json.dumps({"trial_id": trial_id}) + "\n{}\n")
        _checkpoint(root / name / "checkpoint_000000")
        _checkpoint(root / name / "checkpoint_000001")


@pytest.mark.parametrize("remote", [False, True])
def test_slimming_keeps_the_newest_checkpoint_and_weights_only_on_any_filesystem(tmp_path: Path, remote: bool) -> None:
    _stage(tmp_path / "tune")
    fs: pafs.FileSystem = (
        pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem()) if remote else pafs.LocalFileSystem()
    )
    path = "tune" if remote else str(tmp_path / "tune")
    stage = Storage(f"test://{path}", fs, path)
    assert stage.remote is remote
    before = tree_size(stage)
    slimmed, freed = slim_checkpoints(stage, {"aa"})
    assert slimmed == 1 and freed == before - tree_size(stage) > 0
    for name in ("trial_0_aa", "trial_1_bb"):
        assert sorted(p.name for p in (tmp_path / "tune" / name).glob("checkpoint_*")) == ["checkpoint_000001"]
    kept = torch.load(tmp_path / "tune" / "trial_0_aa" / "checkpoint_000001" / CHECKPOINT_NAME, weights_only=True)
    slim = torch.load(tmp_path / "tune" / "trial_1_bb" / "checkpoint_000001" / CHECKPOINT_NAME, weights_only=True)
    assert kept["optimizer"] is not None and slim["optimizer"] is None
    assert (tmp_path / "tune" / "trial_1_bb" / "checkpoint_000001" / SLIM_MARK).is_file()
    assert slim_checkpoints(stage, {"aa"}) == (0, 0)  # done once


def test_a_remote_checkpoint_is_read_without_fetching_its_model_state(tmp_path: Path) -> None:
    _checkpoint(tmp_path / "store" / "checkpoint_000000")
    fs = pafs.SubTreeFileSystem(str(tmp_path / "store"), pafs.LocalFileSystem())
    with checkpoint_files(tune.Checkpoint("checkpoint_000000", filesystem=fs)) as local:
        assert local != tmp_path / "store" / "checkpoint_000000"
        assert sorted(p.name for p in local.iterdir()) == ["eval", "meta.json", "samples.png"]
        assert (local / "eval" / "index.json").read_text() == "{}"
    assert not local.exists()  # the copy is gone afterwards
    on_disk = tmp_path / "store" / "checkpoint_000000"
    with checkpoint_files(tune.Checkpoint(str(on_disk))) as local:
        assert local == on_disk  # a local checkpoint is read in place


def test_storage_in_the_sweep_file_is_checked_and_a_resume_keeps_its_storage(tmp_path: Path) -> None:
    import yaml

    from sweeps.spec import load_spec
    from sweeps.sweep_dir import check_same_storage
    from tests.sweeps.test_sweep_cli import SMOKE

    raw = yaml.safe_load(SMOKE.read_text())
    for value, ok in (("s3://bucket/sweeps", True), (5, False), ("  ", False)):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump({**raw, "storage": value}))
        if ok:
            assert load_spec(tmp_path / "s.yaml").storage == value
        else:
            with pytest.raises(SpecError, match="storage.*expected a path or URI"):
                load_spec(tmp_path / "s.yaml")
    assert load_spec(SMOKE, {"storage": "/shared/sweeps"}).storage == "/shared/sweeps"  # a command-line override
    in_s3 = SweepState(tracking_uri="sqlite:////x/mlflow.db", storage="s3://a/b")
    check_same_storage(in_s3, "s3://a/b")
    check_same_storage(in_s3, None)
    with pytest.raises(SpecError, match="keeps its Tune state in s3://a/b, not s3://c/d"):
        check_same_storage(in_s3, "s3://c/d")
    with pytest.raises(SpecError, match="keeps its Tune state in its sweep directory"):
        check_same_storage(SweepState(tracking_uri="sqlite:////x/mlflow.db"), "s3://c/d")
