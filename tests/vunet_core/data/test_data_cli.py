"""The `vunet-data` command: synth, convert, prepare, preview, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vunet_core.data.cli import main

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
    assert main(["convert", str(root / "index.p")]) == 0
    assert (root / "index.json").is_file()


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


def test_console_module_exit_code(tmp_path: Path) -> None:
    argv = ["synth", "--out", str(tmp_path / "x"), "--identities", "2", "--val-identities", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "vunet_core.data.cli", *argv], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "val_identities" in proc.stderr and not (tmp_path / "x").exists()
