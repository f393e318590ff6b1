"""vunet_core: a faithful PyTorch Variational U-Net (Esser et al., CVPR 2018).

Plain PyTorch: configuration, model, losses, data, per-epoch training and
evaluation. Never imports ray, optuna or mlflow; the `sweeps` package uses only
what is exported here.
"""

from vunet_core.checkpoint import ARCHITECTURE_KEYS, CHECKPOINT_NAME, check_same_architecture, drop_optimizer_state
from vunet_core.config import (
    Config,
    ConfigError,
    LossTerm,
    closest_path,
    config_from_tree,
    config_to_tree,
    flat_config,
    known_paths,
    number_problem,
    render_config,
    resolve_config,
)
from vunet_core.data import prepare_data
from vunet_core.evaluation import EvalOutputs, load_eval_outputs
from vunet_core.metrics import TRANSFER_L1, metric_directions, reported_metrics, transfer, val_loss
from vunet_core.paths import (
    PathsError,
    apply_overrides,
    binary_text_problem,
    check_writable_dir,
    flatten,
    get_path,
    merge_yaml_files,
    one_line,
    parse_overrides,
    read_yaml_text,
    set_path,
    unflatten,
)
from vunet_core.schedules import describe_schedules, in_steps, schedule_mapping, total_steps
from vunet_core.training import DivergedError, EpochResult, check_inputs, probe_step, steps_per_epoch, train_epochs

__all__ = [
    "ARCHITECTURE_KEYS",
    "CHECKPOINT_NAME",
    "check_same_architecture",
    "drop_optimizer_state",
    "DivergedError",
    "EpochResult",
    "train_epochs",
    "check_inputs",
    "probe_step",
    "steps_per_epoch",
    "prepare_data",
    "get_path",
    "set_path",
    "Config",
    "LossTerm",
    "ConfigError",
    "PathsError",
    "config_from_tree",
    "config_to_tree",
    "flat_config",
    "flatten",
    "known_paths",
    "number_problem",
    "parse_overrides",
    "render_config",
    "resolve_config",
    "unflatten",
    "apply_overrides",
    "binary_text_problem",
    "check_writable_dir",
    "one_line",
    "read_yaml_text",
    "closest_path",
    "merge_yaml_files",
    "metric_directions",
    "reported_metrics",
    "TRANSFER_L1",
    "transfer",
    "val_loss",
    "describe_schedules",
    "EvalOutputs",
    "load_eval_outputs",
    "in_steps",
    "schedule_mapping",
    "total_steps",
]
