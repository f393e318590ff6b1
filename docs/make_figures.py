"""Copy the images a finished sweep wrote to the names the README shows.

    python docs/make_figures.py sweeps_out/kl_ramp            # writes into docs/
    python docs/make_figures.py sweeps_out/kl_ramp --out /tmp/figs

Takes, from the sweep directory SWEEP_DIR:

- ``contact_sheets/epoch_NNNN.png`` of the last epoch -> ``contact_sheet_kl_ramp.png``
- ``confirm.png`` (the confirmation plot) -> ``confirm_kl_ramp.png``
- ``pareto.png`` (the front, with the confirmed means), when the sweep has several
  objectives -> ``pareto_kl_ramp.png``
- the sample grid of the answer's trial (``best_trial.json``'s ``trial_id``) at its last
  epoch -> ``kl_ramp_best_samples.png``, scaled 2x (nearest neighbour) so the 32 px tiles
  can be seen. The grid is taken from the trial's MLflow run (``samples/epoch_NNNN``), or in
  sweeps from before trials wrote per-epoch outputs, from
  ``tune/trial_<n>_<id>/checkpoint_NNNNNN/samples.png`` or ``samples/epoch_NNNN.png``.

Nothing is drawn here: the pictures are the sweep's own files, so regenerating them from
the current default job is the only way to update the README's run images. UI screenshots
are made by hand. A missing file is one error line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from PIL import Image

CONTACT_SHEET = "contact_sheet_kl_ramp.png"
CONFIRM_PLOT = "confirm_kl_ramp.png"
BEST_SAMPLES = "kl_ramp_best_samples.png"
PARETO_PLOT = "pareto_kl_ramp.png"
SAMPLES_SCALE = 2
DESCRIPTION = "Copy the images a finished sweep wrote to the names the README shows."


class MissingFile(Exception):
    """The sweep directory lacks a file this script needs."""


def epoch_of(grid: Path) -> int:
    """The epoch a sample grid shows: from its name, or its checkpoint's meta.json."""
    if grid.stem.startswith("epoch_"):
        return int(grid.stem.removeprefix("epoch_"))
    meta = grid.parent / "meta.json"
    if meta.is_file():
        return int(json.loads(meta.read_text())["epoch"])
    return int(grid.parent.name.removeprefix("checkpoint_")) + 1  # Tune numbers checkpoints from 0


def last_contact_sheet(sweep: Path) -> Path:
    sheets = sorted((sweep / "contact_sheets").glob("epoch_*.png"))
    if not sheets:
        raise MissingFile(f"{sweep / 'contact_sheets'} holds no epoch_NNNN.png")
    return sheets[-1]


def best_trial_id(sweep: Path) -> str:
    path = sweep / "best_trial.json"
    if not path.is_file():
        raise MissingFile(f"{path} is missing (the sweep has not finished?)")
    return str(json.loads(path.read_text())["trial_id"])


def best_samples(sweep: Path) -> tuple[Path, int]:
    """The answer's sample grid at its last epoch, and that epoch: from the trial's directory
    (older sweeps kept grids there), else from its MLflow run (`best_trial.json` names it)."""
    trial_id = best_trial_id(sweep)
    grids = [
        grid
        for trial in sweep.glob(f"tune/*{trial_id}*")
        for pattern in ("checkpoint_*/samples.png", "samples/epoch_*.png")
        for grid in trial.glob(pattern)
    ]
    if grids:
        grid = max(grids, key=epoch_of)
        return grid, epoch_of(grid)
    return _samples_from_mlflow(sweep)


def _samples_from_mlflow(sweep: Path) -> tuple[Path, int]:
    import mlflow

    record = json.loads((sweep / "best_trial.json").read_text())
    epoch = int(record["epochs"])
    try:
        folder = mlflow.artifacts.download_artifacts(
            run_id=record["run_id"], artifact_path=f"samples/epoch_{epoch:04d}", tracking_uri=record["tracking_uri"]
        )
    except Exception as exc:  # noqa: BLE001 - any store problem is the same missing file to this script
        raise MissingFile(f"no sample grid of trial {record['trial_id']} in MLflow ({exc})") from exc
    grids = sorted(Path(folder).glob("*.png"))
    if not grids:
        raise MissingFile(f"no sample grid of trial {record['trial_id']} at epoch {epoch} in MLflow")
    return grids[0], epoch


def required(path: Path) -> Path:
    if not path.is_file():
        raise MissingFile(f"{path} is missing")
    return path


def make_figures(sweep: Path, out: Path) -> list[str]:
    """Write the README's run images into out; one line per image written."""
    sheet = last_contact_sheet(sweep)
    confirm = required(sweep / "confirm.png")
    grid, epoch = best_samples(sweep)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sheet, out / CONTACT_SHEET)
    shutil.copyfile(confirm, out / CONFIRM_PLOT)
    with Image.open(grid) as image:
        size = (image.width * SAMPLES_SCALE, image.height * SAMPLES_SCALE)
        image.resize(size, Image.Resampling.NEAREST).save(out / BEST_SAMPLES)
    lines = [
        f"{out / CONTACT_SHEET} <- {sheet}",
        f"{out / CONFIRM_PLOT} <- {confirm}",
        f"{out / BEST_SAMPLES} <- {grid} (epoch {epoch}, scaled {SAMPLES_SCALE}x)",
    ]
    if (sweep / "pareto.png").is_file():
        shutil.copyfile(sweep / "pareto.png", out / PARETO_PLOT)
        lines.append(f"{out / PARETO_PLOT} <- {sweep / 'pareto.png'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("sweep_dir", type=Path, help="a finished sweep's directory, e.g. sweeps_out/kl_ramp")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="where to write (default: docs/)")
    args = parser.parse_args(argv)
    try:
        lines = make_figures(args.sweep_dir, args.out)
    except MissingFile as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
