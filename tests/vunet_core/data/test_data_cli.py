"""The `vunet-data` command: synth, convert, prepare, preview, and one-line errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from vunet_core.data.cli import main
from vunet_core.data.joints import JOINT_ORDER, J

SMALL = [
    "data/synthetic/num_identities",
    "3",
    "data/synthetic/poses_per_identity",
    "2",
    "data/synthetic/val_identities",
    "1",
]


def test_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["synth", "--out", str(tmp_path / "s"), "--size", "32", "--identities", "3", "--poses", "2",
            "--val-identities", "1", "--seed", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "wrote 6 images of 3 people" in capsys.readouterr().out
    assert (tmp_path / "s" / "index.json").is_file() and len(list((tmp_path / "s").glob("p*/*.png"))) == 6


def test_convert(pickle_dataset: Callable[..., Path], standing: np.ndarray) -> None:
    root = pickle_dataset([("a/0.png", True, standing), ("b/0.png", False, standing)])
    assert main(["convert", str(root / "index.p"), "--allow-pickle"]) == 0
    assert (root / "index.json").is_file()


def test_convert_needs_allow_pickle(pickle_dataset: Callable[..., Path], standing: np.ndarray, tmp_path: Path) -> None:
    root = pickle_dataset([("a/0.png", True, standing), ("b/0.png", False, standing)])
    marker = tmp_path / "pwned"
    with (root / "index.p").open("wb") as f:  # a pickle that runs code when loaded
        pickle.dump(_Evil(str(marker)), f)
    proc = subprocess.run(
        [sys.executable, "-m", "vunet_core.data.cli", "convert", str(root / "index.p")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: {root / 'index.p'}: a pickle runs code when loaded; pass --allow-pickle if the file is trusted"
    ]
    assert not marker.exists() and not (root / "index.json").exists()


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.marker).write_text, ("ran",))


def test_prepare_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "--no-progress", "--data/cache_dir", str(tmp_path), *SMALL]) == 0
    assert "train: 4 images; val: 2 transfer pairs" in capsys.readouterr().out
    out = tmp_path / "grid.png"
    assert (
        main(["preview", "--out", str(out), "--people", "1", "--poses", "2", "data/cache_dir", str(tmp_path), *SMALL])
        == 0
    )
    with Image.open(out) as im:
        assert im.size == (2 * (2 * 2 * 64) + 2 * 4, 2 * 2 * 64)  # zoom 2 x (2 cells of 2S + gap) by 2S


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prepare", "data/root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data/root:") and err.count("\n") == 1
    assert main(["prepare", "data/synthetic/num_identitees", "3"]) == 2
    assert "did you mean data/synthetic/num_identities" in capsys.readouterr().err


def test_unknown_options_and_non_yaml_config_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = ["data/cache_dir", str(tmp_path / "cache")]
    (tmp_path / "cfg.json").write_text("{}")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00bin")
    for argv, message in (
        (["prepare", "--dry-runx", *cache], "error: unknown option --dry-runx; see --help"),
        (["prepare", *cache, "--dry-runx"], "error: unknown option --dry-runx; see --help"),
        (["preview", "--out", str(tmp_path / "p.png"), "--peeple", "2", *cache], "error: unknown option --peeple;"),
        (["prepare", "-b", str(tmp_path / "cfg.json"), *cache], "cfg.json: config files must be YAML (.yaml or .yml)"),
        (["prepare", "-b", str(tmp_path / "bin.yaml"), *cache], "bin.yaml: not UTF-8 text YAML"),
        (["prepare", *cache, "data/synthetic/seed", ".nan"], "data/synthetic/seed: got nan, expected an integer"),
        (["prepare", *cache, "data/synthetic/seed", "99999999999999999999999"], "expected a number that fits in 64"),
    ):
        assert main(argv) == 2, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (argv, lines)
    assert not (tmp_path / "cache").exists()


def test_prepare_takes_overrides_after_config_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "small.yaml"
    base.write_text("data:\n  synthetic: {num_identities: 3, poses_per_identity: 2}\n")
    argv = ["prepare", "--no-progress", "-b", str(base), "data/synthetic/val_identities", "1"]
    assert main([*argv, "data/cache_dir", str(tmp_path)]) == 0
    assert "train: 4 images; val: 2 transfer pairs" in capsys.readouterr().out


def test_prepare_reports_dropped_images_and_names_corrupt_ones(
    tmp_path: Path, standing: np.ndarray, image_writer: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    no_hip = standing.copy()
    no_hip[J["lhip"]] = -1.0
    rows = [("a/0.png", True, standing), ("a/1.png", True, no_hip), ("b/0.png", False, standing)]
    rows += [("b/1.png", False, no_hip), ("c/0.png", True, standing)]
    images = [{"path": p, "person": None, "train": t, "joints": j.tolist()} for p, t, j in rows]
    root = tmp_path / "ds"
    for p, _, _ in rows:
        image_writer(root / p)
    doc = {"format": "vunet-index", "version": 1, "joint_order": list(JOINT_ORDER), "images": images}
    (root / "index.json").write_text(json.dumps(doc))
    argv = ["prepare", "--no-progress", "data/root", str(root), "data/cache_dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    dropped = [line for line in out if "dropped" in line]
    assert dropped == [
        f"{root / 'index.json'}: 5 images; 2 dropped: missing hip/shoulder joints "
        "(one of lshoulder, rshoulder, lhip, rhip absent, spec §9.3)"
    ]
    assert "train: 2 images; val: 1 transfer pairs" in out[-1]
    (root / "index.json").write_text(json.dumps({**doc, "images": images[:1] + images[2:3]}))  # a new index
    (root / "a/0.png").write_bytes(b"not an image")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {root / 'a/0.png'}: cannot read image (not an image file); replace it or drop it from the index"
    ]


def test_console_module_exit_code(tmp_path: Path) -> None:
    argv = ["synth", "--out", str(tmp_path / "x"), "--identities", "2", "--val-identities", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "vunet_core.data.cli", *argv], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "val_identities" in proc.stderr and not (tmp_path / "x").exists()
