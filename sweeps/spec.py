"""Search-space YAML: schema, loading and complete validation before Ray starts.

A sweep file (shape modelled on W&B sweep files) names base VUNet configs, `fixed`
settings and `parameters` (distributions), all keyed by the config's `/`-paths, plus
the objective, trial budget, scheduler and per-trial resources. :func:`load_spec`
reads it, applies command-line overrides and checks everything it can without
training: unknown keys and paths (with the closest suggestion), types and ranges,
every searched bound/value as a real config value for its path, conditions (`when`),
and the objective against the metrics the routine reports. All problems come back
together in one :class:`SpecError`, one line each: ``FILE[:LINE]: KEY: message``.
The Optuna side (define-by-run, baseline point, trial configs) is :mod:`sweeps.space`.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sweeps.space import (
    Distribution,
    check_parameters,
    order_parameters,
    parse_distribution,
    parse_number,
    unknown_keys,
)
from vunet_core import (
    Config,
    ConfigError,
    PathsError,
    apply_overrides,
    binary_text_problem,
    closest_path,
    config_from_tree,
    config_to_tree,
    flatten,
    known_paths,
    merge_yaml_files,
    metric_directions,
    one_line,
    read_yaml_text,
    reported_metrics,
)

__all__ = ["ConfirmSpec", "Distribution", "SchedulerSpec", "SpecError", "SweepSpec", "load_spec"]

TOP_KEYS = (
    "name", "description", "base", "fixed", "parameters", "metric", "num_samples", "max_concurrent_trials",
    "max_epochs", "scheduler", "resources", "seed", "time_budget_s", "max_failures", "baseline", "confirm",
    "sampler",
)  # fmt: skip
# Sweep settings a command line may override (e.g. `resources/gpu 1` on a GPU machine).
SPEC_OVERRIDES = (
    "name", "num_samples", "max_concurrent_trials", "max_epochs", "seed", "time_budget_s", "max_failures",
    "baseline", "metric/name", "metric/mode", "scheduler/type", "scheduler/grace_period",
    "scheduler/reduction_factor", "resources/cpu", "resources/gpu", "confirm", "confirm/top_k",
    "sampler",
)  # fmt: skip
# Config paths the sweep sets for every trial: they may not be fixed, overridden or searched.
# (`training/seed`, the trials' weight/data-order seed, is an ordinary path: the base config's
# unless fixed or searched; the sweep's own `seed` seeds the searcher only.)
RESERVED = {
    "training/num_epochs": "set by max_epochs",
    "training/progress": "always off in sweeps",
}
DEFAULT_CONFIRM_SEEDS = 3
SAMPLERS = ("tpe", "random")  # Optuna's TPE (the default) or random search (a reference)
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


class SpecError(ValueError):
    """Problems of a sweep file, one line each (the CLI prints them and exits 2)."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class SchedulerSpec:
    type: str = "asha"
    grace_period: int = 1
    reduction_factor: float = 2.0


@dataclass(frozen=True)
class ConfirmSpec:
    """The confirmation stage: the baseline and the `top_k` best search trials retrained for
    the full `max_epochs` with each of `seeds` (fresh: not the search trials' seed)."""

    top_k: int = 1
    seeds: tuple[int, ...] = (1, 2, 3)


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
    confirm: ConfirmSpec | None = None
    gpu_auto: bool = False  # `resources: {gpu: auto}`: as many trials per GPU as fit (sweeps/gpu.py)
    gpu_note: str = field(default="", compare=False)  # what `auto` measured, once resolved
    spec_overrides: dict[str, Any] = field(default_factory=dict)
    # The resolved base tree, kept so Ray workers never re-read base files (a cluster node may lack them).
    resolved_tree: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def base_tree(self) -> dict[str, Any]:
        """Full nested config: base files <- fixed <- overrides <- constants <- epochs/progress."""
        return copy.deepcopy(self.resolved_tree)

    def base_config(self) -> Config:
        return config_from_tree(self.base_tree())


def load_spec(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SweepSpec:
    """Read and completely validate a sweep file; raises SpecError listing every problem."""
    src = Path(path)
    text, raw, lines = _read_yaml(src)
    rep = _Report(str(path), lines)
    config_overrides, spec_overrides = _split_overrides(raw, dict(overrides or {}), rep)
    spec = _parse(src, text, raw, config_overrides, spec_overrides, rep)
    if rep.problems or spec is None:
        raise SpecError(rep.problems)
    return spec


# --------------------------------------------------------------------------- reading


class _Report:
    """Collects one line per problem, with the YAML line of the key when known."""

    def __init__(self, file: str, lines: dict[str, int]) -> None:
        self.file, self.lines = file, lines
        self.problems: list[str] = []

    def add(self, key: str, msg: str) -> None:
        parts = re.sub(r"\[\d+\]", "", key).split("/")
        line = next((self.lines[k] for i in range(len(parts), 0, -1) if (k := "/".join(parts[:i])) in self.lines), 0)
        where = f"{self.file}:{line}" if line else self.file
        self.problems.append(f"{where}: {key}: {msg}")


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads `1e-3` as a number (YAML 1.1 does not) and rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _read_yaml(src: Path) -> tuple[str, dict[str, Any], dict[str, int]]:
    if not src.exists():
        raise SpecError([f"{src}: no such sweep file"])
    try:
        text = read_yaml_text(src, "a sweep YAML file (e.g. search_spaces/smoke.yaml)")
    except PathsError as exc:
        raise SpecError([str(exc)]) from None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{src}:{mark.line + 1}" if mark else str(src)
        raise SpecError([f"{where}: malformed YAML: {exc.problem or exc.context}"]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError([f"{src}: {binary_text_problem(exc)}"]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{src}: malformed YAML: {one_line(str(exc))}"]) from None
    if not isinstance(data, dict):
        raise SpecError([f"{src}: expected a mapping of sweep settings (name, parameters, metric, ...)"])
    return text, data, _key_lines(node, "")


def _key_lines(node: Any, prefix: str) -> dict[str, int]:
    """`/`-joined key -> 1-based line, so each problem can point at its line."""
    out: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            out[key] = key_node.start_mark.line + 1
            out.update(_key_lines(value_node, key + "/"))
    return out


def _split_overrides(
    raw: dict[str, Any], overrides: dict[str, Any], rep: _Report
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
            spec_part[key] = value
        elif head in TOP_KEYS:
            rep.add(f"override {key}", f"cannot be set from the command line; settable: {', '.join(SPEC_OVERRIDES)}")
        else:
            config_part[key] = value
    return config_part, spec_part


# --------------------------------------------------------------------------- sweep file


def _parse(
    src: Path, text: str, raw: dict[str, Any], overrides: dict[str, Any], spec_overrides: dict[str, Any], rep: _Report
) -> SweepSpec | None:
    unknown_keys(raw, TOP_KEYS, "", "sweep setting", rep.add)
    fixed = _config_paths(_mapping(raw, "fixed", rep), "fixed/", rep)
    overrides = _config_paths(overrides, "override ", rep)
    params = _parameters(_mapping(raw, "parameters", rep), rep)
    for path in set(params) & set(fixed):
        rep.add(f"fixed/{path}", "is also searched in parameters; a path is either fixed or searched")
    for path in set(params) & set(overrides):
        rep.add(f"override {path}", "is searched in parameters and cannot be overridden; change its range there")
    epochs = _count(raw, "max_epochs", None, 1, rep)
    seed = _count(raw, "seed", 0, 0, rep, high=2**32 - 1) or 0
    full = _full_tree(src, raw, fixed, overrides, params, epochs, rep)
    if full is not None:
        epochs = full["training"]["num_epochs"]
        check_parameters(params, full, raw.get("baseline", True) is not False, rep.add)
    metric, mode = _metric(raw.get("metric"), full, rep)
    s = _scalars(raw, epochs or 1, rep)
    if full is not None and full["training"]["num_threads"] == 0:
        # A trial computes with as many torch threads as CPUs it holds (Ray sets OMP_NUM_THREADS
        # so); written into its config, best_config.yaml reproduces the trial's numerics.
        full["training"]["num_threads"] = max(1, int(s["cpu"]))
    if full is not None and s["gpu"] == 0 and not s["gpu_auto"] and full["training"]["device"] == "cuda":
        rep.add("resources/gpu", "is 0 but training/device is cuda; give each trial a GPU (e.g. 0.5 or 1)")
    confirm = _confirm(raw, full, s, rep)
    if rep.problems or full is None or epochs is None:
        return None
    return SweepSpec(
        name=raw["name"], source_path=src.resolve(), source_text=text,
        base_files=[_resolve(src, b) for b in _base_list(raw.get("base"))], fixed=fixed, overrides=overrides,
        parameters=params, metric=metric, mode=mode, max_epochs=epochs, seed=seed,
        spec_overrides=spec_overrides, resolved_tree=full, confirm=confirm, **s,
    )  # fmt: skip


def _confirm(raw: dict[str, Any], full: dict[str, Any] | None, s: dict[str, Any], rep: _Report) -> ConfirmSpec | None:
    """`confirm`: absent = on with defaults when there is a baseline; false = off; true = defaults;
    or {top_k, seeds}. The seeds must differ from the search trials' `training/seed`."""
    value = raw.get("confirm", s["baseline"])
    if value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        rep.add("confirm", f"got {value!r}, expected false, true or {{top_k: K, seeds: [S, ...]}}")
        return None
    if not s["baseline"]:
        rep.add("confirm", "compares candidates with the baseline; set baseline: true or confirm: false")
        return None
    unknown_keys(value, ("top_k", "seeds"), "confirm/", "confirm key", rep.add)
    search_seed = int(full["training"]["seed"]) if full is not None else 0
    top_k = _count(value, "confirm/top_k", 1, 1, rep, high=max(1, s["num_samples"] - 1)) or 1
    default_seeds = [k for k in range(DEFAULT_CONFIRM_SEEDS + 1) if k != search_seed][:DEFAULT_CONFIRM_SEEDS]
    seeds = value.get("seeds", default_seeds)
    ok = isinstance(seeds, list) and all(parse_number(x, True) is not None and 0 <= x < 2**32 for x in seeds)
    if not ok or len(seeds) < 2 or len(set(seeds)) != len(seeds):
        rep.add("confirm/seeds", f"got {seeds!r}, expected a list of at least 2 distinct integers >= 0")
        return None
    if search_seed in seeds:
        rep.add("confirm/seeds", f"{search_seed} is the search trials' training/seed; confirmation needs fresh seeds")
    return ConfirmSpec(top_k, tuple(int(x) for x in seeds))


def _scalars(raw: dict[str, Any], epochs: int, rep: _Report) -> dict[str, Any]:
    """The remaining sweep settings; problems are reported, defaults stand in for bad values."""
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in (".", ".."):
        rep.add("name", f"got {name!r}; required, letters, digits and _ . - only (it names the sweep directory)")
    if not isinstance(raw.get("description", ""), (str, type(None))):
        rep.add("description", "expected text")
    if not isinstance(raw.get("baseline", True), bool):
        rep.add("baseline", f"got {raw['baseline']!r}, expected true or false")
    if raw.get("sampler", "tpe") not in SAMPLERS:
        rep.add("sampler", f"got {raw['sampler']!r}, expected one of {', '.join(SAMPLERS)}")
    budget = raw.get("time_budget_s")
    if budget is not None and (parse_number(budget, False) is None or budget <= 0):
        rep.add("time_budget_s", f"got {budget!r}, expected seconds > 0 or null")
    res = _mapping(raw, "resources", rep)
    unknown_keys(res, ("cpu", "gpu"), "resources/", "resource", rep.add)
    return {
        "description": str(raw.get("description") or ""),
        "num_samples": _count(raw, "num_samples", 8, 1, rep) or 1,
        "max_concurrent_trials": _count(raw, "max_concurrent_trials", 2, 1, rep) or 1,
        "max_failures": _count(raw, "max_failures", 1, 0, rep) or 0,
        "scheduler": _scheduler(_mapping(raw, "scheduler", rep), epochs, rep),
        "cpu": _resource(res, "cpu", 1.0, rep),
        "gpu": 0.0 if res.get("gpu") == "auto" else _resource(res, "gpu", 0.0, rep),
        "gpu_auto": res.get("gpu") == "auto",
        "time_budget_s": None if budget is None else float(budget),
        "baseline": raw.get("baseline", True) is not False,
        "sampler": str(raw.get("sampler", "tpe")),
    }


def _full_tree(
    src: Path, raw: dict[str, Any], fixed: dict[str, Any], overrides: dict[str, Any],
    params: dict[str, Distribution], epochs: int | None, rep: _Report,
) -> dict[str, Any] | None:  # fmt: skip
    """Resolved trial base: base files <- fixed <- overrides <- constants <- epochs/progress."""
    tree = _base_files_tree(src, raw, rep)
    for stage, prefix, layer in (("base", "", {}), ("fixed", "fixed/", fixed), ("override", "override ", overrides)):
        if tree is None:
            return None
        tree = apply_overrides(tree, layer)
        if (problem := _config_problem(tree)) is not None:
            path, _, rest = problem.partition(": ")
            if re.sub(r"\[\d+\]$", "", path) in layer:  # name the offending entry (and its line) when known
                rep.add(f"{prefix}{path}", rest)
            else:
                rep.add(stage, f"the config is invalid after applying {stage}: {problem}")
            return None
    assert tree is not None
    # Constants act like `fixed` (config grammar) but are recorded as trial parameters.
    consts = {p: d.value for p, d in params.items() if d.kind == "constant"}
    bad = {p: e for p, v in consts.items() if (e := _config_problem(apply_overrides(tree, {p: v}))) is not None}
    for path, problem in bad.items():
        rep.add(f"parameters/{path}/value", f"{consts[path]!r} is not a valid value here: {problem}")
    if bad:
        return None
    epochs = epochs or config_from_tree(tree).training.num_epochs  # default: as long as the base recipe
    tree = apply_overrides(tree, {**consts, "training/num_epochs": epochs})
    tree = apply_overrides(tree, {"training/progress": False})
    if (problem := _config_problem(tree)) is not None:
        rep.add("parameters", f"the constants together make the config invalid: {problem}")
        return None
    return config_to_tree(config_from_tree(tree))


def _base_files_tree(src: Path, raw: dict[str, Any], rep: _Report) -> dict[str, Any] | None:
    entries = _base_list(raw.get("base"))
    if not isinstance(raw.get("base", []), (list, str)):
        rep.add("base", f"got {raw['base']!r}, expected a list of config files")
    ok = True
    for i, entry in enumerate(entries):
        if not isinstance(entry, str):
            rep.add(f"base[{i}]", f"got {entry!r}, expected a config file path")
            ok = False
        elif (p := _resolve(src, entry)).is_dir():
            rep.add(f"base[{i}]", f"{entry}: is a directory (at {p}); expected a config YAML file")
            ok = False
        elif not p.is_file():
            rep.add(f"base[{i}]", f"{entry}: no such file (looked for {p})")
            ok = False
    if not ok:
        return None
    try:
        return merge_yaml_files([_resolve(src, e) for e in entries])
    except PathsError as exc:
        rep.add("base", str(exc))
        return None


def _config_problem(tree: dict[str, Any]) -> str | None:
    try:
        config_from_tree(tree)
    except (ConfigError, PathsError) as exc:
        return str(exc)
    return None


def _metric(raw: Any, full: dict[str, Any] | None, rep: _Report) -> tuple[str, str]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        rep.add("metric", "required: {name: METRIC, mode: min|max}, e.g. {name: val/transfer/l1, mode: min}")
        return "", "min"
    unknown_keys(raw, ("name", "mode"), "metric/", "metric key", rep.add)
    name = raw["name"]
    known = reported_metrics(config_from_tree(full)) if full is not None else [name]
    if name not in known:
        hint = difflib.get_close_matches(name, known, n=1)
        rep.add("metric/name", f"{name} is not reported by training" + (f"; did you mean {hint[0]}?" if hint else ""))
    mode = raw.get("mode", metric_directions().get(name, "min"))
    if mode not in ("min", "max"):
        rep.add("metric/mode", f"got {mode!r}, expected min or max")
    return name, str(mode)


def _scheduler(raw: dict[str, Any], epochs: int, rep: _Report) -> SchedulerSpec:
    unknown_keys(raw, ("type", "grace_period", "reduction_factor"), "scheduler/", "scheduler key", rep.add)
    kind = raw.get("type", "asha")
    if kind not in ("asha", "fifo"):
        rep.add("scheduler/type", f"got {kind!r}, expected asha or fifo")
    grace = _count(raw, "scheduler/grace_period", 1, 1, rep) or 1
    if grace > epochs:
        rep.add("scheduler/grace_period", f"{grace} is more than max_epochs {epochs}")
    factor = parse_number(raw.get("reduction_factor", 2), False)
    if factor is None or factor <= 1:
        rep.add("scheduler/reduction_factor", f"got {raw.get('reduction_factor')!r}, expected a number > 1")
    return SchedulerSpec(str(kind), grace, float(factor or 2))


def _resource(raw: dict[str, Any], key: str, default: float, rep: _Report) -> float:
    value = parse_number(raw.get(key, default), False)
    # Ray accepts fractions up to 1 and whole numbers above.
    if value is None or value < 0 or (key == "cpu" and value == 0) or (value > 1 and not float(value).is_integer()):
        least = "> 0" if key == "cpu" else ">= 0"
        auto = " or auto" if key == "gpu" else ""
        rep.add(
            f"resources/{key}", f"got {raw.get(key)!r}, expected a fraction up to 1 or a whole number ({least}){auto}"
        )
        return default
    return float(value)


# --------------------------------------------------------------------------- parameters


def _parameters(raw: dict[str, Any], rep: _Report) -> dict[str, Distribution]:
    out: dict[str, Distribution] = {}
    for path, spec in raw.items():
        key = f"parameters/{path}"
        if _path_problem(str(path), key, rep):
            continue
        dist = parse_distribution(spec, key, rep.add)
        if dist is not None:
            out[str(path)] = dist
    return order_parameters(out, rep.add)


# --------------------------------------------------------------------------- helpers


def _config_paths(raw: dict[str, Any], where: str, rep: _Report) -> dict[str, Any]:
    """Flat `/`-path -> value of a (possibly nested) mapping; unknown/reserved paths reported."""
    flat = flatten(raw)
    return {p: v for p, v in flat.items() if not _path_problem(p, f"{where}{p}", rep)}


def _path_problem(path: str, key: str, rep: _Report) -> bool:
    if path in RESERVED:
        rep.add(key, f"{RESERVED[path]}; remove it here")
        return True
    if path in _KNOWN:
        return False
    if any(k.startswith(path + "/") for k in _KNOWN):
        rep.add(key, f"{path} is a section, not a setting; name a full path such as {_first_under(path)}")
    else:
        hint = closest_path(path)
        rep.add(key, f"unknown config path {path}" + (f"; did you mean {hint}?" if hint else ""))
    return True


_KNOWN = frozenset(known_paths())


def _first_under(path: str) -> str:
    return next(k for k in known_paths() if k.startswith(path + "/"))


def _mapping(raw: dict[str, Any], key: str, rep: _Report) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        rep.add(key, f"expected a mapping, got {value!r}")
        return {}
    return value


def _count(raw: dict[str, Any], key: str, default: int | None, low: int, rep: _Report, high: int = 0) -> int | None:
    """An integer setting >= low (and <= high if given); `key` may be a `section/name` path."""
    value = raw.get(key.rsplit("/", 1)[-1], default)
    if value is None and default is None:
        return None
    number = parse_number(value, True)
    if number is None or number < low or (high and number > high):
        rep.add(key, f"got {value!r}, expected an integer " + (f"from {low} to {high}" if high else f">= {low}"))
        return default
    return int(number)


def _base_list(raw: Any) -> list[Any]:
    return [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []


def _resolve(src: Path, entry: str) -> Path:
    return (src.parent / entry).resolve()
