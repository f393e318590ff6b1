"""The names of what a sweep writes, in one place: its directory's files, a trial checkpoint's
files, the answer's files and the MLflow artifact paths of a trial's epoch outputs.

A trial checkpoint (written by :mod:`sweeps.trainable`, read by the trial events, the contact
sheets and the storage's slimming) holds the model state, the epoch's sample grid, its eval
outputs and a small record of the epoch; the driver only ever reads the last three.
"""

from __future__ import annotations

from pathlib import Path

from vunet_core import CHECKPOINT_NAME

# the sweep directory
STATE_FILE = "sweep.json"  # what --resume reuses (sweeps.sweep_dir.SweepState)
LOCK_FILE = ".sweep.lock"  # held by the running driver
STUDY_FILE = "optuna.db"  # the Optuna study
LOG_FILE = "sweep.log"  # the libraries' log records (sweeps.console)
BEST_CONFIG = "best_config.yaml"  # the answer's complete config
BEST_TRIAL = "best_trial.json"  # links the answer to its sweep, trial and MLflow run
ANSWER_FILES = (BEST_CONFIG, BEST_TRIAL)  # written only when a sweep finishes

# a trial checkpoint
MODEL_STATE = CHECKPOINT_NAME  # model + optimizer state (vunet_core's checkpoint file)
SAMPLE_GRID = "samples.png"  # the epoch's sample grid
EVAL_DIR = "eval"  # the epoch's eval outputs (vunet_core.load_eval_outputs reads it)
EPOCH_RECORD = "meta.json"  # {"epoch": ..., "step": ...}
DRIVER_FILES = (EPOCH_RECORD, SAMPLE_GRID, EVAL_DIR)  # what the driver reads of a checkpoint


def samples_artifact(epoch: int) -> str:
    """MLflow artifact folder of an epoch's sample grid."""
    return f"samples/epoch_{epoch:04d}"


def eval_artifact(epoch: int) -> str:
    """MLflow artifact folder of an epoch's eval outputs."""
    return f"eval/epoch_{epoch:04d}"


def study_url(sweep_dir: Path) -> str:
    """The SQLite URL of the sweep's Optuna study."""
    return f"sqlite:///{(sweep_dir / STUDY_FILE).resolve()}"
