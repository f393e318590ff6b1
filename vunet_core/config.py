"""Typed configuration of a VUNet training: defaults, validation, tree <-> dataclass.

Defaults live here once, in frozen dataclasses (one per concern). Every field has a
type, a default and a one-line doc (``metadata["doc"]``); range and choice limits sit
beside the field (``metadata["min"]``, ``"max"``, ``"choices"``), and each dataclass checks
them and its own rules when it is built (``__post_init__``), so a config object that exists is
valid. YAML files and command-line overrides hold only
deviations; :func:`config_from_tree` turns a nested dict into a :class:`Config` and
reports unknown paths (with the closest known path) and bad values as
:class:`ConfigError` naming the ``/``-path.

The embedded defaults are the CPU recipe the default sweep runs: the original
(CompVis/vunet) architecture, optimizer and schedules at 64 px with the DeepFashion
factors (box 2, bottleneck 2, spec §3.3), on generated people. The original
objective is ``5 * perceptual + w_KL * KL``; its VGG19 weights cannot ship with the
project, so by default the perceptual weight is 0 and ``color_L1`` carries the
reference's pixel tap instead (5.0 * 127.5 = 637.5 on [-1, 1] images, spec §6.2).
Set ``losses/perceptual/weight 5``, ``losses/perceptual/vgg_weights FILE`` and
``losses/color_L1/weight 0`` for the full original objective (``configs/gpu_128.yaml``).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vunet_core.paths import RAMP_KEYS, flatten, merge_trees, unflatten

LOSS_TERMS = ("color_L1", "color_L2", "color_gradient", "KL", "perceptual")
NUM_VGG_TAPS = 6


class ConfigError(ValueError):
    """A user-fixable configuration problem; the message names the path."""


class FieldError(ConfigError):
    """A config dataclass rejected its own values: `field` is the `/`-path inside that dataclass
    ("" for the dataclass as a whole); :func:`config_from_tree` prefixes the section's path."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}" if field else message)

    def under(self, section: str) -> FieldError:
        """The same problem, named from the enclosing section (`losses/KL` + `weight`)."""
        return FieldError("/".join(p for p in (section, self.field) if p), self.message)


def _check_fields(obj: Any) -> None:
    """Each leaf field of one config dataclass against its `min`/`max`/`choices` metadata (nested
    dataclasses checked themselves when they were built)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        meta = f.metadata
        if dataclasses.is_dataclass(value):
            continue
        if "choices" in meta and value not in meta["choices"]:
            raise FieldError(f.name, f"got {value!r}, expected one of {', '.join(meta['choices'])}")
        if value is None or isinstance(value, (str, list, bool)):
            continue
        if "min" in meta and value < meta["min"]:
            raise FieldError(f.name, f"got {value!r}, expected >= {meta['min']}")
        if "max" in meta and value > meta["max"]:
            raise FieldError(f.name, f"got {value!r}, expected <= {meta['max']}")


def _f(default: Any, doc: str, **limits: Any) -> Any:
    """A dataclass field with a doc line and optional min/max/choices limits."""
    meta = {"doc": doc, **limits}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _schedule(default: float | None, doc: str) -> Any:
    """A point of a step schedule: a fraction of the run's steps or a step (`training/schedule_units`)."""
    return _f(
        default,
        f"{doc}: fraction of the run's steps, or a step with training/schedule_units steps",
        min=0,
        schedule=True,
    )


@dataclass(frozen=True)
class ModelConfig:
    spatial_size: int = _f(64, "image side S in pixels (power of 2, >= 16)", min=16)
    box_factor: int = _f(2, "crop side is S / 2**box_factor (64 px: 2 = DeepFashion, 1 = Market)", min=0)
    bottleneck_factor: int = _f(2, "encoders end at side 2**bottleneck_factor (spec §3)", min=0)
    base_channels: int = _f(32, "width of the first scale (original: 32)", min=1)
    max_channels: int = _f(128, "width cap, also the latent channels (original: 128)", min=1)
    drop_prob: float = _f(0.1, "dropout inside residual blocks during training", min=0.0, max=0.99)
    appearance_input: str = _f(
        "crops", "what F_phi sees: the 8 part crops or the whole image", choices=("crops", "image")
    )
    posterior_feedback: str = _f("sample", "what feeds the next posterior scale (spec §4)", choices=("sample", "mean"))
    temperature: float = _f(1.0, "prior sampling temperature in sample mode", min=0.0)

    def __post_init__(self) -> None:
        _check_fields(self)
        if self.spatial_size & (self.spatial_size - 1):
            raise FieldError("spatial_size", f"got {self.spatial_size}, expected a power of 2 (16, 32, 64, 128, 256)")
        num_scales = num_scales_of(self)
        if num_scales - self.box_factor < 2:  # spec §3: n_F >= 2
            raise FieldError(
                "box_factor",
                f"got {self.box_factor}, the appearance encoder needs >= 2 scales "
                f"(1 + log2(spatial_size) - bottleneck_factor - box_factor = {num_scales - self.box_factor})",
            )


@dataclass(frozen=True)
class SyntheticConfig:
    num_identities: int = _f(48, "number of generated people", min=2)
    poses_per_identity: int = _f(12, "images per person, each in another pose", min=2)
    val_identities: int = _f(8, "people held out for validation (never seen in training)", min=1)
    seed: int = _f(0, "generator seed; same seed, same bytes")
    background: str = _f(
        "scene",
        "scene (each person's own wall and floor colours) or studio (one plain light background for all)",
        choices=("scene", "studio"),
    )
    clothes: str = _f(
        "varied",
        "varied (patterned shirts, any saturation) or plain (one strong colour per garment)",
        choices=("varied", "plain"),
    )

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class DataConfig:
    root: str = _f("", "dataset directory (index.json or index.p); empty = generated people under cache_dir")
    cache_dir: str = _f(".vunet_cache", "where generated data and preprocessed tensors are kept")
    allow_pickle: bool = _f(False, "allow reading the original index.p (a pickle runs code when loaded)")
    non_square: str = _f(
        "pad", "non-square images: pad to a square (replicate border) or stretch", choices=("pad", "stretch")
    )
    person_id_from: str = _f(
        "index",
        "person ids: from the index (else the parent folder), the parent folder, or the file-name prefix before '_'",
        choices=("index", "parent_folder", "filename_prefix"),
    )
    train_pairing: str = _f(
        "same_image",
        "training appearance: the same image (original) or another image of the same person",
        choices=("same_image", "same_person"),
    )
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig, metadata={"doc": "generated people"})

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class LossTerm:
    weight: float = _f(0.0, "constant weight, used when no ramp is set", min=0.0)
    start_ramp_it: float | None = _schedule(None, "where the ramp starts (all four ramp keys set = ramped)")
    end_ramp_it: float | None = _schedule(None, "where the ramp ends; <= start_ramp_it is a step at start_ramp_it")
    start_ramp_val: float | None = _f(None, "weight before start_ramp_it", min=0.0)
    end_ramp_val: float | None = _f(None, "weight after end_ramp_it", min=0.0)
    ramp_shape: str = _f("linear", "interpolation inside the ramp", choices=("linear", "log"))

    # A term's ramp rules live here: all four ramp keys or none; `log` needs weights > 0; a
    # `ramped` term ignores `weight`. A layer setting only `weight` makes the term constant
    # (vunet_core.paths.merge_trees / apply_overrides clear the ramp below it).
    def __post_init__(self) -> None:
        _check_fields(self)
        set_keys = [k for k in RAMP_KEYS if getattr(self, k) is not None]
        if set_keys and len(set_keys) != len(RAMP_KEYS):
            missing = [k for k in RAMP_KEYS if k not in set_keys]
            raise FieldError("", f"a ramp needs all of {', '.join(RAMP_KEYS)}; missing {', '.join(missing)}")
        if self.ramp_shape == "log" and self.ramped and min(self.start_ramp_val or 0, self.end_ramp_val or 0) <= 0:
            raise FieldError("ramp_shape", "log needs start_ramp_val and end_ramp_val > 0")

    @property
    def ramped(self) -> bool:
        return self.start_ramp_it is not None


@dataclass(frozen=True)
class PerceptualTerm(LossTerm):
    vgg_weights: str = _f("", "VGG19 state dict file (torchvision layout, Caffe ILSVRC weights); never downloaded")
    feature_weights: list[float] = _f([1.0] * NUM_VGG_TAPS, "weights of input, relu1_2 ... relu5_2")
    gram_weights: list[float] = _f([0.0] * NUM_VGG_TAPS, "Gram-matrix weights per tap (0 = off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("feature_weights", "gram_weights"):
            values = getattr(self, key)
            if len(values) != NUM_VGG_TAPS or min(values) < 0:
                raise FieldError(key, f"got {values}, expected {NUM_VGG_TAPS} numbers >= 0")


@dataclass(frozen=True)
class LossesConfig:
    color_L1: LossTerm = field(default_factory=lambda: LossTerm(weight=637.5), metadata={"doc": "mean |x_hat - x|"})
    color_L2: LossTerm = field(default_factory=LossTerm, metadata={"doc": "mean (x_hat - x)^2"})
    color_gradient: LossTerm = field(default_factory=LossTerm, metadata={"doc": "image-gradient magnitude L1"})
    KL: LossTerm = field(
        default_factory=lambda: LossTerm(
            weight=1.0, start_ramp_it=0.5, end_ramp_it=0.75, start_ramp_val=1e-6, end_ramp_val=1.0
        ),
        metadata={"doc": "KL(q || p) of the unit-variance latents"},
    )
    perceptual: PerceptualTerm = field(default_factory=PerceptualTerm, metadata={"doc": "VGG19 feature loss"})


@dataclass(frozen=True)
class OptimizerConfig:
    lr: float = _f(1e-3, "Adam learning rate before the decay", min=0.0)
    lr_decay_begin: float = _schedule(0.01, "where the linear LR decay starts")
    lr_decay_end: float = _schedule(1.0, "where the LR reaches lr_end")
    lr_end: float = _f(0.0, "LR after lr_decay_end", min=0.0)
    beta1: float = _f(0.5, "Adam beta1", min=0.0, max=0.999999)
    beta2: float = _f(0.9, "Adam beta2", min=0.0, max=0.999999)
    eps: float = _f(1e-8, "Adam epsilon", min=0.0)
    grad_clip_norm: float = _f(0.0, "clip the gradient norm to this value (0 = off, as the original)", min=0.0)

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class TrainingConfig:
    name: str = _f("vunet", "run name, part of the run directory")
    num_epochs: int = _f(5, "epochs to train", min=1)
    steps_per_epoch: int = _f(0, "optimizer steps per epoch (0 = one pass over the train split)", min=0)
    batch_size: int = _f(8, "training batch size", min=1)
    val_batch_size: int = _f(16, "validation batch size", min=1)
    init_batches: int = _f(4, "batches for data-dependent init (init_batches * batch_size images)", min=1)
    seed: int = _f(0, "seed of weights, sampling and data order")
    device: str = _f("auto", "auto (CUDA when available), cpu or cuda", choices=("auto", "cpu", "cuda"))
    precision: str = _f(
        "auto",
        "training step arithmetic: fp32; bf16 (autocast: convolutions and matmuls in bf16, weights, "
        "optimizer and losses in fp32); auto = bf16 on a CPU with native bf16 (AVX512-BF16 or AMX), else fp32",
        choices=("auto", "fp32", "bf16"),
    )
    channels_last: bool = _f(False, "channels_last memory format")
    num_threads: int = _f(0, "torch CPU threads (0 = torch default)", min=0)
    schedule_units: str = _f(
        "fraction",
        "LR decay and loss ramp points: fractions of the run's steps (scale with the run) or absolute steps",
        choices=("fraction", "steps"),
    )
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class EvalConfig:
    every_n_epochs: int = _f(1, "write eval outputs every N epochs (0 = last epoch only)", min=0)
    max_examples: int = _f(0, "limit eval outputs to the first N validation pairs (0 = all)", min=0)
    num_grid_examples: int = _f(6, "rows of the per-epoch sample grid", min=1)

    def __post_init__(self) -> None:
        _check_fields(self)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"doc": "architecture"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"doc": "dataset and pairing"})
    losses: LossesConfig = field(default_factory=LossesConfig, metadata={"doc": "loss terms and weights"})
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig, metadata={"doc": "Adam and LR schedule"})
    training: TrainingConfig = field(default_factory=TrainingConfig, metadata={"doc": "training loop"})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"doc": "evaluation outputs"})

    def __post_init__(self) -> None:
        """A Config that exists is valid: each section checked itself when built; what spans
        sections (schedule points against training/schedule_units, then the LR decay's order) is
        checked here."""
        for path, value in schedule_points(self).items():
            _check_schedule_point(path, value, self.training.schedule_units)
        if self.optimizer.lr_decay_end < self.optimizer.lr_decay_begin:  # compared once both are in one unit
            raise ConfigError("optimizer/lr_decay_end: must be >= optimizer/lr_decay_begin")


# --------------------------------------------------------------------------- tree <-> dataclass


def config_to_tree(cfg: Any) -> dict[str, Any]:
    """Nested plain dict (YAML-ready) of a config dataclass."""
    return dataclasses.asdict(cfg)


def known_paths(cls: type = Config, prefix: str = "") -> list[str]:
    """Every leaf `/`-path of a config class, in declaration order."""
    out: list[str] = []
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        sub = _dataclass_type(cls, f)
        out.extend(known_paths(sub, path + "/") if sub else [path])
    return out


@functools.cache
def _default(cls: type) -> Any:
    """The default instance of a config class, built once (frozen; read through config_to_tree)."""
    return cls()


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Resolved field types of a config class (cached: resolving them is slow)."""
    return typing.get_type_hints(cls)


def _dataclass_type(cls: type, f: dataclasses.Field[Any]) -> type | None:
    hint = _hints(cls)[f.name]
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def closest_path(path: str) -> str | None:
    """The known path most similar to `path`, if any is reasonably close."""
    candidates = known_paths()
    match = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
    if match:
        return match[0]
    leaf = path.rsplit("/", 1)[-1]
    by_leaf = difflib.get_close_matches(leaf, [c.rsplit("/", 1)[-1] for c in candidates], n=1, cutoff=0.8)
    return next((c for c in candidates if by_leaf and c.endswith("/" + by_leaf[0])), None)


def unknown_path_error(path: str) -> ConfigError:
    hint = closest_path(path)
    suffix = f"; did you mean {hint}?" if hint else ""
    return ConfigError(f"unknown config path {path}{suffix}")


def config_from_tree(tree: dict[str, Any] | None) -> Config:
    """Build and validate a Config from a (partial) nested dict over the defaults."""
    cfg: Config = _build(Config, tree or {}, "")
    return cfg


def _build(cls: type, tree: Any, prefix: str) -> Any:
    if not isinstance(tree, dict):
        raise ConfigError(f"{prefix.rstrip('/') or 'config'}: expected a mapping, got {tree!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in tree.items():
        if key not in fields:
            sub_paths = list(flatten(value)) if isinstance(value, dict) and value else []
            raise unknown_path_error(f"{prefix}{key}" + (f"/{sub_paths[0]}" if sub_paths else ""))
    default = _default(cls)
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = f"{prefix}{name}"
        sub = _dataclass_type(cls, f)
        if name not in tree:
            continue
        if sub is not None:
            base = config_to_tree(getattr(default, name))
            if not isinstance(tree[name], dict):
                raise ConfigError(f"{path}: expected a mapping, got {tree[name]!r}")
            kwargs[name] = _build(sub, merge_trees(base, tree[name]), path + "/")
        else:
            kwargs[name] = _coerce(path, tree[name], _hints(cls)[name], f)
    try:
        return cls(**kwargs)
    except FieldError as exc:  # name the field from the top of the config
        raise exc.under(prefix.rstrip("/")) from None


def _coerce(path: str, value: Any, hint: Any, f: dataclasses.Field[Any]) -> Any:
    """Check a leaf value against its type hint; ints are accepted for floats."""
    optional = isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{path}: got null, expected {_type_name(hint)}")
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    if f.metadata.get("schedule"):  # a step stays an int (480, not 480.0) in rendered configs
        number = _coerce_scalar(path, value, float, hint)
        return value if isinstance(value, int) else number
    if typing.get_origin(base) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: got {value!r}, expected a list of numbers")
        return [_coerce_scalar(f"{path}[{i}]", v, float) for i, v in enumerate(value)]
    return _coerce_scalar(path, value, base, hint)


def _coerce_scalar(path: str, value: Any, base: type, hint: Any = None) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[base]
    if not ok:
        raise ConfigError(f"{path}: got {value!r}, expected {_type_name(hint or base)}")
    if base in (int, float) and (problem := number_problem(value)):
        raise ConfigError(f"{path}: got {value!r}, {problem}")
    return float(value) if base is float else value


INT64_LIMIT = 2**63


def number_problem(value: float) -> str | None:
    """Why a number cannot be a setting (not finite, or an integer beyond signed 64 bits), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "expected a finite number (not .nan or .inf; YAML reads 1e999 as .inf)"
    if isinstance(value, int) and not -INT64_LIMIT <= value < INT64_LIMIT:
        return "expected a number that fits in 64 bits (integers within +-2**63)"
    return None


def _type_name(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if isinstance(hint, types.UnionType):
        parts = [names.get(a, str(a)) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(parts) + " or null"
    return names.get(hint, str(hint))


# --------------------------------------------------------------------------- validation


def num_scales_of(m: ModelConfig) -> int:
    """Scales of the pose encoder and decoder: 1 + log2(S) - bottleneck_factor (spec §3)."""
    return 1 + m.spatial_size.bit_length() - 1 - m.bottleneck_factor


def schedule_points(cfg: Config) -> dict[str, float]:
    """`/`-path -> value of every schedule point in use (LR decay, each ramped term's window)."""
    points: dict[str, float] = {
        "optimizer/lr_decay_begin": cfg.optimizer.lr_decay_begin,
        "optimizer/lr_decay_end": cfg.optimizer.lr_decay_end,
    }
    for name in LOSS_TERMS:
        term = getattr(cfg.losses, name)
        if term.start_ramp_it is not None and term.end_ramp_it is not None:
            points[f"losses/{name}/start_ramp_it"] = term.start_ramp_it
            points[f"losses/{name}/end_ramp_it"] = term.end_ramp_it
    return points


def _check_schedule_point(path: str, value: float, units: str) -> None:
    if units == "fraction" and not 0 <= value <= 1:
        raise ConfigError(
            f"{path}: got {value!r}, expected a fraction of the run's steps in [0, 1] "
            "(training/schedule_units is fraction; set it to steps for absolute steps)"
        )
    if units == "steps" and value != int(value):
        raise ConfigError(f"{path}: got {value!r}, expected a whole number of steps (training/schedule_units is steps)")


def flat_config(cfg: Config) -> dict[str, Any]:
    """`/`-path -> value of every leaf (for MLflow params and search-space checks)."""
    return flatten(config_to_tree(cfg))


def replace_paths(cfg: Config, values: dict[str, Any]) -> Config:
    """A new validated Config with `/`-path values set (the input is not changed)."""
    from vunet_core.paths import merge_trees

    return config_from_tree(merge_trees(config_to_tree(cfg), unflatten(values)))


def resolve_config(files: Iterable[str | Path] = (), overrides: Mapping[str, Any] | None = None) -> Config:
    """Defaults <- stacked YAML files (later wins) <- `/`-path overrides; validated.

    Raises ConfigError (bad path/value) or PathsError (bad file/override grammar).
    """
    from vunet_core.paths import apply_overrides, merge_yaml_files

    tree = apply_overrides(merge_yaml_files(files), dict(overrides or {}))
    return config_from_tree(tree)


def render_config(cfg: Config) -> str:
    """The fully resolved config as YAML (printed before training, saved with runs)."""
    from vunet_core.paths import to_yaml

    return to_yaml(config_to_tree(cfg))
