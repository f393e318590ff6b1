"""The names of what a sweep writes, in one place: its directory's files, a trial checkpoint's
files, the answer's files and the MLflow artifact paths of a trial's epoch outputs.

A trial checkpoint (written by :mod:`sweeps.epoch_output` every few epochs, slimmed by the
storage after a stage) holds the model state and a small record of the epoch. Each epoch's
sample grid, eval outputs and contact-sheet pairs go to the trial's `epochs/epoch_NNNN/` folder
(same file names), which the driver logs and removes; a checkpoint from before that change
holds them too, and the driver still reads them there.
"""

from __future__ import annotations

from pathlib import Path

# the sweep directory
STATE_FILE = "sweep.json"  # what --resume reuses (sweeps.sweep_dir.SweepState)
LOCK_FILE = ".sweep.lock"  # held by the running driver
STUDY_FILE = "optuna.db"  # the Optuna study
LOG_FILE = "sweep.log"  # the libraries' log records (sweeps.console)
BEST_CONFIG = "best_config.yaml"  # the answer's complete config
BEST_TRIAL = "best_trial.json"  # links the answer to its sweep, trial and MLflow run
ANSWER_FILES = (BEST_CONFIG, BEST_TRIAL)  # written only when a sweep finishes

# a trial checkpoint
# vunet_core.CHECKPOINT_NAME, spelt out so that this module (and sweeps.epoch_output, which the
# driver-scale benchmark's trials import) loads without torch; a test checks they agree.
MODEL_STATE = "last.pt"  # model + optimizer state (vunet_core's checkpoint file)
SAMPLE_GRID = "samples.png"  # the epoch's sample grid
EVAL_DIR = "eval"  # the epoch's eval outputs (vunet_core.load_eval_outputs reads it)
EPOCH_RECORD = "meta.json"  # {"epoch": ..., "step": ...}
CONTACT_FILE = "contact.npz"  # the contact sheets' pairs of the epoch, cut out by the trial
DRIVER_FILES = (EPOCH_RECORD, SAMPLE_GRID, EVAL_DIR, CONTACT_FILE)  # what the driver reads of a checkpoint
# a trial's per-epoch outputs for the driver (sweeps.epoch_output): <trial dir>/epochs/epoch_NNNN/
EPOCHS_DIR = "epochs"
CONTACT_ROWS = 4  # validation pairs on a contact sheet
CONTACT_KINDS = ("appearance", "pose", "target", "transfer", "other_appearance", "other_transfer", "prior")


def epoch_dirname(epoch: int) -> str:
    """A trial's folder of one epoch's outputs, under its `epochs/`."""
    return f"epoch_{epoch:04d}"


def samples_artifact(epoch: int) -> str:
    """MLflow artifact folder of an epoch's sample grid."""
    return f"samples/epoch_{epoch:04d}"


def eval_artifact(epoch: int) -> str:
    """MLflow artifact folder of an epoch's eval outputs."""
    return f"eval/epoch_{epoch:04d}"


def study_url(sweep_dir: Path) -> str:
    """The SQLite URL of the sweep's Optuna study."""
    return f"sqlite:///{(sweep_dir / STUDY_FILE).resolve()}"
