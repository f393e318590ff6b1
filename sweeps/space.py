"""The `parameters` grammar of a sweep file and its checks against the config.

Each `parameters` entry is a :class:`Distribution` over one config `/`-path: uniform,
log-uniform, integer or integer-log range (optional `step`), categorical (`values`) or
constant (`value`), optionally conditional (`when` a categorical parameter takes given
values). :func:`parse_distribution`, :func:`order_parameters` and
:func:`check_parameters` report problems for :func:`sweeps.spec.load_spec`. How the
search samples them is :mod:`sweeps.search`; this module knows nothing of a sweep spec.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sweeps.sweep_yaml import Problems
from vunet_core import (
    Config,
    ConfigError,
    LossTerm,
    PathsError,
    apply_overrides,
    config_from_tree,
    config_to_tree,
    flatten,
    number_problem,
)

KINDS = ("uniform", "log_uniform", "int_uniform", "int_log_uniform", "categorical", "constant")
DIST_KEYS = ("distribution", "min", "max", "step", "values", "value", "when")
# Integer ranges are checked at both bounds and up to this many evenly spaced grid values in
# between (catches holes such as a non-power-of-2 model/spatial_size; a config build costs ~10 ms).
MAX_CHECKED = 32


@dataclass(frozen=True)
class Distribution:
    """One `parameters` entry; `when` maps categorical paths to the values that activate it."""

    kind: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    values: tuple[Any, ...] = ()
    value: Any = None
    when: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def log(self) -> bool:
        return self.kind in ("log_uniform", "int_log_uniform")

    def active(self, env: Mapping[str, Any]) -> bool:
        """Whether every condition holds for a trial's `/`-path values (sampled, else base)."""
        return all(any(same_value(env.get(p), v) for v in vals) for p, vals in self.when.items())


# --------------------------------------------------------------------------- grammar


def parse_distribution(raw: Any, key: str, problems: Problems) -> Distribution | None:
    """One `parameters` entry -> Distribution; structural problems reported under `key`."""
    if not isinstance(raw, dict):
        problems.add(key, "expected {distribution: uniform, min: A, max: B}, {values: [...]} or {value: X}")
        return None
    if any(k not in DIST_KEYS for k in raw):
        unknown_keys(raw, DIST_KEYS, key + "/", "distribution key", problems)
        return None  # a typo (mx for max) would otherwise also read as a missing key
    kind = raw.get("distribution") or ("categorical" if "values" in raw else "constant" if "value" in raw else None)
    if kind not in KINDS:
        got = f"got {kind!r}" if kind else "missing"
        problems.add(f"{key}/distribution", f"{got}; expected one of {', '.join(KINDS)}" + hint(kind, KINDS))
        return None
    allowed = {"categorical": ("values", "when"), "constant": ("value",)}.get(kind, ("min", "max", "step", "when"))
    for k in DIST_KEYS[1:]:
        if k in raw and k not in allowed:
            problems.add(f"{key}/{k}", f"does not apply to a {kind} distribution (it takes {', '.join(allowed)})")
    when = _when(raw.get("when", {}), key, problems)
    if kind == "constant":
        if "value" not in raw:
            problems.add(key, "a constant needs value: X")
        return Distribution(kind, value=raw.get("value"))
    if kind == "categorical":
        return _categorical(raw.get("values"), when, key, problems)
    return _numeric(kind, raw, when, key, problems)


def _categorical(values: Any, when: dict[str, list[Any]], key: str, problems: Problems) -> Distribution | None:
    # Optuna's CategoricalDistribution holds only these scalar types.
    scalars = (str, int, float, bool, type(None))
    if not isinstance(values, list) or not values or not all(isinstance(v, scalars) for v in values):
        problems.add(
            f"{key}/values", f"got {values!r}, expected a non-empty list of numbers, strings, booleans or null"
        )
        return None
    if bad := [v for v in values if isinstance(v, (int, float)) and number_problem(v)]:
        problems.add(f"{key}/values", f"got {bad[0]!r}, {number_problem(bad[0])}")
        return None
    if any(same_value(a, b) for i, a in enumerate(values) for b in values[i + 1 :]):
        problems.add(f"{key}/values", f"{values!r} lists a value twice")
    return Distribution("categorical", values=tuple(values), when=when)


def _numeric(
    kind: str, raw: dict[str, Any], when: dict[str, list[Any]], key: str, problems: Problems
) -> Distribution | None:
    integer = kind.startswith("int")
    low, high = parse_number(raw.get("min"), integer), parse_number(raw.get("max"), integer)
    step = parse_number(raw["step"], integer) if "step" in raw else None
    if not integer:  # Optuna's float distributions and the config's float fields want floats
        low, high, step = (None if v is None else float(v) for v in (low, high, step))
    found: list[tuple[str, str]] = []
    for k, v in (("min", low), ("max", high)):
        if v is None:
            found.append((f"{key}/{k}", _not_a_bound(raw.get(k), integer)))
    if low is None or high is None:
        pass
    elif not math.isfinite(high - low):
        found.append((key, f"range {low}..{high} is too wide to sample (its width is not a finite number)"))
    elif low >= high:
        found.append((key, f"empty or inverted range: min {low} >= max {high} (for a single value write value: X)"))
    elif kind.endswith("log_uniform") and low <= 0:
        found.append((f"{key}/min", f"{kind} needs min > 0, got {low}"))
    elif "step" in raw and (problem := _step_problem(kind, low, high, step, raw["step"])):
        found.append((f"{key}/step", problem))
    for k, msg in found:
        problems.add(k, msg)
    return None if found else Distribution(kind, low=low, high=high, step=step, when=when)


def _not_a_bound(given: Any, integer: bool) -> str:
    if isinstance(given, (int, float)) and not isinstance(given, bool) and (problem := number_problem(given)):
        return f"got {given!r}, {problem}"
    return f"got {given!r}, expected {'an integer' if integer else 'a number'}"


def _step_problem(kind: str, low: float, high: float, step: float | None, given: Any) -> str | None:
    if kind == "log_uniform" or (kind == "int_log_uniform" and step != 1):
        return f"{kind} takes no step (Optuna cannot combine log sampling with a step)"
    if step is None or step <= 0:
        return f"got {given!r}, expected a positive {'integer' if kind.startswith('int') else 'number'}"
    if step > high - low:
        return f"step {step} is larger than the range {low}..{high}"
    if not math.isclose(n := (high - low) / step, round(n), abs_tol=1e-9):
        # Optuna would silently lower max; say so instead.
        return f"max {high} is not min + a multiple of step {step}; use max {low + int(n) * step:g}"
    return None


def _when(raw: Any, key: str, problems: Problems) -> dict[str, list[Any]]:
    if not isinstance(raw, dict):
        problems.add(f"{key}/when", "expected {categorical/path: value or [values]}")
        return {}
    return {str(p): list(v) if isinstance(v, list) else [v] for p, v in raw.items()}


def order_parameters(params: dict[str, Distribution], problems: Problems) -> dict[str, Distribution]:
    """Check `when` and order parameters so each follows the categoricals it depends on."""
    for path, dist in params.items():
        for parent, vals in dist.when.items():
            key, other = f"parameters/{path}/when/{parent}", params.get(parent)
            if other is None or other.kind != "categorical":
                problems.add(key, f"{parent} is not a categorical parameter of this sweep (a condition needs one)")
            elif bad := [v for v in vals if not any(same_value(v, c) for c in other.values)]:
                problems.add(key, f"{parent} cannot take {bad!r}; its values are {list(other.values)!r}")
    ordered: dict[str, Distribution] = {}
    visiting: set[str] = set()

    def visit(path: str) -> None:
        if path in ordered or path not in params:
            return
        if path in visiting:
            problems.add(f"parameters/{path}/when", "conditions form a cycle")
            return
        visiting.add(path)
        for parent in params[path].when:
            visit(parent)
        ordered[path] = params[path]

    for path in params:
        visit(path)
    return ordered


# --------------------------------------------------------------------------- checks against the config


def check_parameters(params: dict[str, Distribution], base_cfg: Config, baseline: bool, problems: Problems) -> None:
    """Every searched bound/value must be a valid config value for its path (no holes that kill trials)."""
    full = config_to_tree(base_cfg)
    base = flatten(full)
    for path, dist in params.items():
        key = f"parameters/{path}"
        if dist.kind == "constant":
            continue  # applied (and checked) as part of the base tree
        if problem := _kind_problem(path, dist):
            problems.add(key, problem)
            continue
        # A conditional parameter is only sampled with its parents at an activating value.
        context = {p: v[0] for p, v in dist.when.items() if p in params and v[0] in params[p].values}
        for value in _candidates(dist):
            try:
                config_from_tree(apply_overrides(full, {**context, path: value}))
            except (ConfigError, PathsError) as exc:
                problems.add(key, f"{value!r} is not a valid value here: {exc}")
                break
        if baseline and dist.active(base):
            _check_baseline(dist, base[path], key, problems)
        term_path, _, leaf = path.rpartition("/")
        term = _loss_term(base_cfg, term_path)
        if term is not None and term.ramped and leaf == "weight":
            # A sampled weight would replace the base's ramp by a constant in every trial: the ramp
            # silently gone is far more often a mistake than the intent, so it must be said.
            problems.add(
                key,
                f"would replace the ramp of {term_path} in the base config by a constant weight in every trial; "
                f"search its *_ramp_* keys, or set {term_path}/start_ramp_it etc. to null in fixed to search a constant",
            )


def _loss_term(cfg: Config, path: str) -> LossTerm | None:
    section, _, name = path.partition("/")
    term = getattr(cfg.losses, name, None) if section == "losses" else None
    return term if isinstance(term, LossTerm) else None


def _kind_problem(path: str, dist: Distribution) -> str | None:
    leaf = leaf_type(path)
    words = {int: "integers", float: "numbers", str: "text", bool: "true/false", list: "a list"}
    if dist.kind in ("uniform", "log_uniform") and leaf is not float:
        fix = "int_uniform or int_log_uniform" if leaf is int else "values: [...]"
        return f"{dist.kind} samples numbers but {path} takes {words[leaf]}; use {fix}"
    if dist.kind.startswith("int") and leaf is not int and not is_schedule_point(path):
        # Optuna would round a non-integral base value in the baseline trial.
        return f"{dist.kind} samples integers but {path} takes {words[leaf]}; use uniform with a step, or values"
    if dist.kind == "categorical" and leaf is list:
        return f"{path} takes a list, which Optuna cannot search; use value: [...] or fixed"
    return None


def _candidates(dist: Distribution) -> list[Any]:
    if dist.kind == "categorical":
        return list(dist.values)
    assert dist.low is not None and dist.high is not None
    if not dist.kind.startswith("int"):
        return [dist.low, dist.high]
    grid = range(int(dist.low), int(dist.high) + 1, int(dist.step or 1))
    every = math.ceil(len(grid) / MAX_CHECKED)
    return [grid[0], grid[-1], *grid[every:-1:every]]  # bounds first: their messages are the clearest


def _check_baseline(dist: Distribution, value: Any, key: str, problems: Problems) -> None:
    """The base value is enqueued as the first trial; Optuna must represent it. Out-of-range
    numbers are fine (Optuna warns and TPE copes), null, non-positive log values and unknown
    categories are not."""
    fix = "set it in a base file, or set baseline: false"
    if dist.kind == "categorical" and not any(same_value(value, v) for v in dist.values):
        problems.add(key, f"the base value {value!r} (baseline trial) is not among values; add it, {fix}")
    elif dist.kind != "categorical" and (value is None or (dist.log and value <= 0)):
        problems.add(key, f"the base value {value!r} (baseline trial) cannot be a {dist.kind} value; {fix}")


# --------------------------------------------------------------------------- small helpers (also used by spec.py)


def is_schedule_point(path: str) -> bool:
    """A step-schedule point: a fraction or (training/schedule_units steps) an integer step."""
    return path.rsplit("/", 1)[-1] in ("start_ramp_it", "end_ramp_it", "lr_decay_begin", "lr_decay_end")


def leaf_type(path: str) -> type:
    """The type a known config leaf takes: int, float, str, bool or list (Optional unwrapped)."""
    cls: Any = Config
    for part in path.split("/"):
        cls = typing.get_type_hints(cls)[part]
    if isinstance(cls, types.UnionType):
        cls = next(a for a in typing.get_args(cls) if a is not type(None))
    return list if typing.get_origin(cls) is list else typing.cast(type, cls)


def parse_number(value: Any, integer: bool) -> Any:
    """A finite int/float within 64 bits (bools rejected); with `integer`, integral floats become ints; else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or number_problem(value) is not None:
        return None
    if integer:
        return int(value) if float(value).is_integer() and number_problem(int(value)) is None else None
    return value


def same_value(a: Any, b: Any) -> bool:
    """Equality that keeps true != 1 (YAML values of different kinds are different choices)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def unknown_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], prefix: str, what: str, problems: Problems) -> None:
    for key in raw:
        if key not in allowed:
            problems.add(f"{prefix}{key}", f"unknown {what}" + hint(key, allowed))


def hint(word: Any, options: tuple[str, ...]) -> str:
    match = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""
