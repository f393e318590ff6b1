"""Search-space YAML: schema, loading and complete validation before Ray starts.

A sweep file (shape modelled on W&B sweep files) names base VUNet configs, `fixed`
settings and `parameters` (distributions), all keyed by the config's `/`-paths, plus
the objective, trial budget, scheduler and per-trial resources. :func:`load_spec`
reads it, applies command-line overrides and checks everything it can without
training: unknown keys and paths (with the closest suggestion), types and ranges,
every searched bound/value as a real config value for its path, conditions (`when`),
and the objective against the metrics the routine reports. All problems come back
together in one :class:`SpecError`, one line each: ``FILE[:LINE]: KEY: message``.
Reading the YAML is :mod:`sweeps.sweep_yaml`, the non-config settings :mod:`sweeps.settings`,
the `parameters` grammar :mod:`sweeps.space`; the Optuna side (define-by-run, baseline point,
trial configs) is :mod:`sweeps.search`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.pareto import Objective
from sweeps.selection import SelectRule, default_rule, parse_rule
from sweeps.settings import (
    ConfirmSpec,
    Margin,
    SchedulerSpec,
    confirm_settings,
    count,
    mapping,
    objectives,
    sweep_settings,
)
from sweeps.space import Distribution, check_parameters, order_parameters, parse_distribution, unknown_keys
from sweeps.sweep_yaml import Problems, SpecError, read_sweep_yaml
from vunet_core import (
    Config,
    ConfigError,
    PathsError,
    apply_overrides,
    closest_path,
    config_from_tree,
    config_to_tree,
    flatten,
    known_paths,
    merge_yaml_files,
)

__all__ = ["ConfirmSpec", "Distribution", "Margin", "SchedulerSpec", "SpecError", "SweepSpec", "load_spec"]

TOP_KEYS = (
    "name", "description", "base", "fixed", "parameters", "metric", "num_samples", "max_concurrent_trials",
    "max_epochs", "scheduler", "resources", "seed", "time_budget_s", "max_failures", "baseline", "confirm",
    "sampler", "storage", "select",
)  # fmt: skip
# Sweep settings a command line may override (e.g. `resources/gpu 1` on a GPU machine).
SPEC_OVERRIDES = (
    "name", "num_samples", "max_concurrent_trials", "max_epochs", "seed", "time_budget_s", "max_failures",
    "baseline", "metric/name", "metric/mode", "scheduler/type", "scheduler/grace_period",
    "scheduler/reduction_factor", "resources/cpu", "resources/gpu", "confirm", "confirm/top_k",
    "confirm/max_seeds", "confirm/margin", "sampler", "storage",
)  # fmt: skip
# Config paths the sweep sets for every trial: they may not be fixed, overridden or searched.
# (`training/seed`, the trials' weight/data-order seed, is an ordinary path: the base config's
# unless fixed or searched; the sweep's own `seed` seeds the searcher only.)
RESERVED = {
    "training/num_epochs": "set by max_epochs",
    "training/progress": "always off in sweeps",
}


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file. `fixed`/`overrides` are flat `/`-path dicts; `parameters` are
    ordered so each comes after the categoricals its `when` depends on; `spec_overrides`
    are the command-line overrides of sweep settings (e.g. resources/gpu)."""

    name: str
    description: str
    source_path: Path
    source_text: str = field(repr=False)
    base_files: list[Path]
    fixed: dict[str, Any]
    overrides: dict[str, Any]
    parameters: dict[str, Distribution]  # ordered so that `when` parents come first
    metric: str
    mode: str
    num_samples: int
    max_concurrent_trials: int
    max_epochs: int
    scheduler: SchedulerSpec
    cpu: float
    gpu: float  # per trial; with gpu_auto, 0 until sweeps.gpu.resolve_gpu measures it
    seed: int
    time_budget_s: float | None
    max_failures: int
    baseline: bool
    sampler: str = "tpe"
    storage: str | None = None  # Tune state and checkpoints (sweeps/storage.py); None: the sweep directory
    confirm: ConfirmSpec | None = None
    objectives: tuple[Objective, ...] = ()  # every objective, the primary (`metric`, `mode`) first
    select: SelectRule | None = None  # the stated rule; see `rule`
    gpu_auto: bool = False  # `resources: {gpu: auto}`: as many trials per GPU as fit (sweeps/gpu.py)
    gpu_note: str = field(default="", compare=False)  # what `auto` measured, once resolved
    spec_overrides: dict[str, Any] = field(default_factory=dict)
    # The resolved base tree, kept so Ray workers never re-read base files (a cluster node may lack them).
    resolved_tree: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def multi(self) -> bool:
        """Whether the sweep has several objectives (a front, not a best trial)."""
        return len(self.objectives) > 1

    @property
    def rule(self) -> SelectRule:
        """How the answer is picked from the confirmed points: `select`, or the default rule."""
        return self.select or default_rule(self.objectives or (Objective(self.metric, self.mode),))

    def base_tree(self) -> dict[str, Any]:
        """Full nested config: base files <- fixed <- overrides <- constants <- epochs/progress."""
        return copy.deepcopy(self.resolved_tree)

    def base_config(self) -> Config:
        return config_from_tree(self.base_tree())


def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SweepSpec:
    """Read and completely validate a sweep file; raises SpecError listing every problem."""
    src = Path(path)
    text, raw, lines = read_sweep_yaml(src)
    problems = Problems(str(path), lines)
    config_overrides, spec_overrides = _split_overrides(raw, dict(overrides or {}), problems)
    spec = _parse(src, text, raw, config_overrides, spec_overrides, problems)
    if problems.problems or spec is None:
        raise SpecError(problems.problems)
    return spec


# --------------------------------------------------------------------------- command-line overrides


def _split_overrides(
    raw: dict[str, Any], overrides: dict[str, Any], problems: Problems
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Command-line overrides: sweep settings (e.g. resources/gpu) go into `raw`, the rest are config paths."""
    config_part: dict[str, Any] = {}
    spec_part: dict[str, Any] = {}
    for key, value in overrides.items():
        head, _, leaf = key.partition("/")
        if key in SPEC_OVERRIDES:
            if leaf and raw.get(head) is None:
                raw[head] = {}
            section = raw[head] if leaf else raw
            if isinstance(section, dict):  # else the section's own problem is reported when parsed
                section[leaf or head] = value
            elif isinstance(section, list):
                problems.add(f"override {key}", f"{head} is a list in the sweep file; change it there")
            spec_part[key] = value
        elif head in TOP_KEYS:
            problems.add(
                f"override {key}", f"cannot be set from the command line; settable: {', '.join(SPEC_OVERRIDES)}"
            )
        else:
            config_part[key] = value
    return config_part, spec_part


# --------------------------------------------------------------------------- sweep file


def _parse(
    src: Path,
    text: str,
    raw: dict[str, Any],
    overrides: dict[str, Any],
    spec_overrides: dict[str, Any],
    problems: Problems,
) -> SweepSpec | None:
    unknown_keys(raw, TOP_KEYS, "", "sweep setting", problems)
    fixed = _config_paths(mapping(raw, "fixed", problems), "fixed/", problems)
    overrides = _config_paths(overrides, "override ", problems)
    params = _parameters(mapping(raw, "parameters", problems), problems)
    for path in set(params) & set(fixed):
        problems.add(f"fixed/{path}", "is also searched in parameters; a path is either fixed or searched")
    for path in set(params) & set(overrides):
        problems.add(f"override {path}", "is searched in parameters and cannot be overridden; change its range there")
    epochs = count(raw, "max_epochs", None, 1, problems)
    seed = count(raw, "seed", 0, 0, problems, high=2**32 - 1) or 0
    consts = {p: d.value for p, d in params.items() if d.kind == "constant"}
    base = _full_config(src, raw, _Layers(fixed, overrides, consts), epochs, problems)  # the one Config of the base
    full = config_to_tree(base) if base is not None else None
    if base is not None:
        epochs = base.training.num_epochs
        check_parameters(params, base, raw.get("baseline", True) is not False, problems)
    goals = objectives(raw.get("metric"), base, problems)
    select = parse_rule(raw.get("select"), goals, problems)
    s = sweep_settings(raw, epochs or 1, problems)
    if full is not None and full["training"]["num_threads"] == 0:
        # A trial computes with as many torch threads as CPUs it holds (Ray sets OMP_NUM_THREADS
        # so); written into its config, best_config.yaml reproduces the trial's numerics.
        full["training"]["num_threads"] = max(1, int(s["cpu"]))
    if full is not None and s["gpu"] == 0 and not s["gpu_auto"] and full["training"]["device"] == "cuda":
        problems.add("resources/gpu", "is 0 but training/device is cuda; give each trial a GPU (e.g. 0.5 or 1)")
    confirm = confirm_settings(raw, full, s, problems)
    if problems.problems or full is None or epochs is None:
        return None
    return SweepSpec(
        name=raw["name"], source_path=src.resolve(), source_text=text,
        base_files=[_resolve(src, b) for b in _base_list(raw.get("base"))], fixed=fixed, overrides=overrides,
        parameters=params, metric=goals[0].name, mode=goals[0].mode, objectives=goals, select=select, max_epochs=epochs, seed=seed,
        spec_overrides=spec_overrides, resolved_tree=full, confirm=confirm, **s,
    )  # fmt: skip


@dataclass(frozen=True)
class _Layers:
    """What a sweep file and its command line set on top of its base files, in the order applied."""

    fixed: dict[str, Any]
    overrides: dict[str, Any]
    consts: dict[str, Any]  # constants act like `fixed` (config grammar) but are recorded as trial parameters


def _full_config(
    src: Path, raw: dict[str, Any], layers: _Layers, epochs: int | None, problems: Problems
) -> Config | None:
    """Resolved trial base: base files <- fixed <- overrides <- constants <- epochs/progress.
    Built once; only when that fails are the layers rebuilt one by one to name the one at fault."""
    tree = _base_files_tree(src, raw, problems)
    if tree is None:
        return None
    sweep_set: dict[str, Any] = {"training/progress": False}
    if epochs is not None:  # else as long as the base recipe
        sweep_set["training/num_epochs"] = epochs
    try:
        layered = tree
        for layer in (layers.fixed, layers.overrides, layers.consts, sweep_set):  # a weight alone clears a ramp below
            layered = apply_overrides(layered, layer)
        return config_from_tree(layered)
    except (ConfigError, PathsError) as exc:
        _name_the_layer(tree, layers, str(exc), problems)
        return None


def _name_the_layer(tree: dict[str, Any], layers: _Layers, problem: str, problems: Problems) -> None:
    """Report a config problem at the entry (and line) that causes it, when one does alone."""
    consts = layers.consts
    steps: tuple[tuple[str, str, dict[str, Any]], ...] = (
        ("base", "", {}),
        ("fixed", "fixed/", layers.fixed),
        ("override", "override ", layers.overrides),
    )
    for stage, prefix, layer in steps:
        tree = apply_overrides(tree, layer)
        if (found := _config_problem(tree)) is not None:
            path, _, rest = found.partition(": ")
            if re.sub(r"\[\d+\]$", "", path) in layer:
                problems.add(f"{prefix}{path}", rest)
            else:
                problems.add(stage, f"the config is invalid after applying {stage}: {found}")
            return
    bad = {p: e for p, v in consts.items() if (e := _config_problem(apply_overrides(tree, {p: v}))) is not None}
    for path, found in bad.items():
        problems.add(f"parameters/{path}/value", f"{consts[path]!r} is not a valid value here: {found}")
    if not bad:
        problems.add("parameters", f"the constants together make the config invalid: {problem}")


def _base_files_tree(src: Path, raw: dict[str, Any], problems: Problems) -> dict[str, Any] | None:
    entries = _base_list(raw.get("base"))
    if not isinstance(raw.get("base", []), (list, str)):
        problems.add("base", f"got {raw['base']!r}, expected a list of config files")
    ok = True
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            problems.add(f"base[{i}]", f"got {entry!r}, expected a config file path")
            ok = False
        elif (p := _resolve(src, entry)).is_dir():
            problems.add(f"base[{i}]", f"{entry}: is a directory (at {p}); expected a config YAML file")
            ok = False
        elif not p.is_file():
            problems.add(f"base[{i}]", f"{entry}: no such file (looked for {p})")
            ok = False
    if not ok:
        return None
    try:
        return merge_yaml_files([_resolve(src, e) for e in entries])
    except PathsError as exc:
        problems.add("base", str(exc))
        return None


def _config_problem(tree: dict[str, Any]) -> str | None:
    try:
        config_from_tree(tree)
    except (ConfigError, PathsError) as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- parameters


def _parameters(raw: dict[str, Any], problems: Problems) -> dict[str, Distribution]:
    out: dict[str, Distribution] = {}
    for path, spec in raw.items():
        key = f"parameters/{path}"
        if _path_problem(str(path), key, problems):
            continue
        dist = parse_distribution(spec, key, problems)
        if dist is not None:
            out[str(path)] = dist
    return order_parameters(out, problems)


# --------------------------------------------------------------------------- helpers


def _config_paths(raw: dict[str, Any], where: str, problems: Problems) -> dict[str, Any]:
    """Flat `/`-path -> value of a (possibly nested) mapping; unknown/reserved paths reported."""
    flat = flatten(raw)
    return {p: v for p, v in flat.items() if not _path_problem(p, f"{where}{p}", problems)}


def _path_problem(path: str, key: str, problems: Problems) -> bool:
    if path in RESERVED:
        problems.add(key, f"{RESERVED[path]}; remove it here")
        return True
    if path in _KNOWN:
        return False
    if any(k.startswith(path + "/") for k in _KNOWN):
        problems.add(key, f"{path} is a section, not a setting; name a full path such as {_first_under(path)}")
    else:
        hint = closest_path(path)
        problems.add(key, f"unknown config path {path}" + (f"; did you mean {hint}?" if hint else ""))
    return True


_KNOWN = frozenset(known_paths())


def _first_under(path: str) -> str:
    return next(k for k in known_paths() if k.startswith(path + "/"))


def _base_list(raw: Any) -> list[Any]:
    return [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []


def _resolve(src: Path, entry: str) -> Path:
    return (src.parent / entry).resolve()
