"""Typed configuration of a VUNet training: defaults, validation, tree <-> dataclass.

Defaults live once, in frozen dataclasses, one per section and one module per section
(:mod:`.model`, :mod:`.data` with the generated people's :class:`SyntheticConfig`, :mod:`.losses`,
:mod:`.optimizer`, :mod:`.training`, :mod:`.evaluation` for ``eval``; :mod:`.root` holds
:class:`Config` and the rules spanning sections). Every field has a type, a default and a one-line
doc (``metadata["doc"]``); range and choice limits sit beside the field (``metadata["min"]``,
``"max"``, ``"choices"``, helpers in :mod:`.fields`), and each dataclass checks them and its own
rules when it is built (``__post_init__``), so a config object that exists is valid. YAML files
and command-line overrides hold only deviations; :func:`config_from_tree` (:mod:`.tree`,
:mod:`.values`) turns a nested dict into a :class:`Config` and reports unknown paths (with the
closest known path) and bad values as :class:`ConfigError` naming the ``/``-path. Every name is
imported from here.
"""

# The embedded defaults are the CPU recipe the default sweep runs: the original (CompVis/vunet)
# architecture, optimizer and schedules at 64 px with the DeepFashion factors (box 2, bottleneck 2,
# spec §3.3), on generated people. The original objective is `5 * perceptual + w_KL * KL`; its VGG19
# weights cannot ship with the project, so by default the perceptual weight is 0 and `color_L1`
# carries the reference's pixel tap instead (5.0 * 127.5 = 637.5 on [-1, 1] images, spec §6.2). Set
# `losses/perceptual/weight 5`, `losses/perceptual/vgg_weights FILE` and `losses/color_L1/weight 0`
# for the full original objective (`configs/gpu_128.yaml`).

from vunet_core.config.data import DataConfig, SyntheticConfig
from vunet_core.config.evaluation import EvalConfig
from vunet_core.config.fields import ConfigError, FieldError
from vunet_core.config.losses import LOSS_TERMS, NUM_VGG_TAPS, LossesConfig, LossTerm, PerceptualTerm
from vunet_core.config.model import ModelConfig, num_scales_of
from vunet_core.config.optimizer import OptimizerConfig
from vunet_core.config.root import Config, schedule_points
from vunet_core.config.training import TrainingConfig
from vunet_core.config.tree import (
    closest_path,
    config_from_tree,
    config_to_tree,
    flat_config,
    known_paths,
    render_config,
    replace_paths,
    resolve_config,
    unknown_path_error,
)
from vunet_core.config.values import INT64_LIMIT, number_problem

__all__ = [
    "INT64_LIMIT",
    "LOSS_TERMS",
    "NUM_VGG_TAPS",
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "FieldError",
    "LossTerm",
    "LossesConfig",
    "ModelConfig",
    "OptimizerConfig",
    "PerceptualTerm",
    "SyntheticConfig",
    "TrainingConfig",
    "closest_path",
    "config_from_tree",
    "config_to_tree",
    "flat_config",
    "known_paths",
    "num_scales_of",
    "number_problem",
    "render_config",
    "replace_paths",
    "resolve_config",
    "schedule_points",
    "unknown_path_error",
]
