"""The sweep settings that are not config paths: name, budget, objective, scheduler, resources, confirm.

Each function reads its section of the raw sweep file, reports every problem on the
:class:`~sweeps.sweep_yaml.Problems` collector and returns a usable default in place of a
bad value, so that one pass reports all problems at once.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from sweeps.pareto import MAX_OBJECTIVES, Objective
from sweeps.space import parse_number, unknown_keys
from sweeps.sweep_yaml import Problems
from vunet_core import Config, metric_directions, reported_metrics

DEFAULT_CONFIRM_SEEDS = 3
DEFAULT_MARGIN = "1%"  # the smallest difference that matters, when the sweep file names none
MAX_CONFIRM_SEEDS = 64
SAMPLERS = ("tpe", "random", "nsga2")  # Optuna's TPE (the default), random search (a reference) or NSGA-II
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class SchedulerSpec:
    type: str = "asha"
    grace_period: int = 1
    reduction_factor: float = 2.0


@dataclass(frozen=True)
class Margin:
    """The smallest difference in the objective that matters: in its units, or (`relative`) a
    fraction of the baseline's confirmed mean (`margin: 1%`)."""

    value: float = 0.01
    relative: bool = True

    def absolute(self, baseline_mean: float) -> float:
        return self.value * abs(baseline_mean) if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


@dataclass(frozen=True)
class ConfirmSpec:
    """The confirmation stage: the baseline and the `top_k` best search trials retrained for
    the full `max_epochs` with each of `seeds` (fresh: not the search trials' seed); candidates
    still undecided then get as many fresh seeds again, round by round, up to `max_seeds`."""

    top_k: int = 1
    seeds: tuple[int, ...] = (1, 2, 3)
    max_seeds: int = 6
    margin: Margin = Margin()

    @property
    def rounds(self) -> int:
        """Rounds of seeds (looks at the data) at most: the first, then one per extra batch."""
        return 1 + -(-(self.max_seeds - len(self.seeds)) // len(self.seeds))

    def round_seeds(self, round_no: int, avoid: int) -> tuple[int, ...]:
        """The seeds of round `round_no` (1-based): the given ones, then fresh ones counting up
        from the largest given seed (never `avoid`, the search trials' seed), `max_seeds` in all."""
        if round_no == 1:
            return self.seeds
        fresh = (k for k in itertools.count(max(self.seeds) + 1) if k != avoid)
        extra = list(itertools.islice(fresh, self.max_seeds - len(self.seeds)))
        n = len(self.seeds)
        return tuple(extra[(round_no - 2) * n : (round_no - 1) * n])


def sweep_settings(raw: dict[str, Any], epochs: int, problems: Problems) -> dict[str, Any]:
    """The remaining sweep settings; problems are reported, defaults stand in for bad values."""
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or name in (".", ".."):
        problems.add("name", f"got {name!r}; required, letters, digits and _ . - only (it names the sweep directory)")
    if not isinstance(raw.get("description", ""), (str, type(None))):
        problems.add("description", "expected text")
    if not isinstance(raw.get("baseline", True), bool):
        problems.add("baseline", f"got {raw['baseline']!r}, expected true or false")
    if raw.get("sampler", "tpe") not in SAMPLERS:
        problems.add("sampler", f"got {raw['sampler']!r}, expected one of {', '.join(SAMPLERS)}")
    budget = raw.get("time_budget_s")
    if budget is not None and (parse_number(budget, False) is None or budget <= 0):
        problems.add("time_budget_s", f"got {budget!r}, expected seconds > 0 or null")
    storage = raw.get("storage")
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        problems.add("storage", f"got {storage!r}; expected a path or URI (e.g. s3://bucket/sweeps), or null")
    res = mapping(raw, "resources", problems)
    unknown_keys(res, ("cpu", "gpu"), "resources/", "resource", problems)
    return {
        "description": str(raw.get("description") or ""),
        "num_samples": count(raw, "num_samples", 8, 1, problems) or 1,
        "max_concurrent_trials": count(raw, "max_concurrent_trials", 2, 1, problems) or 1,
        "max_failures": count(raw, "max_failures", 1, 0, problems) or 0,
        "scheduler": _scheduler(mapping(raw, "scheduler", problems), epochs, problems),
        "cpu": _resource(res, "cpu", 1.0, problems),
        "gpu": 0.0 if res.get("gpu") == "auto" else _resource(res, "gpu", 0.0, problems),
        "gpu_auto": res.get("gpu") == "auto",
        "time_budget_s": None if budget is None else float(budget),
        "baseline": raw.get("baseline", True) is not False,
        "sampler": str(raw.get("sampler", "tpe")),
        "storage": storage.strip() if isinstance(storage, str) and storage.strip() else None,
    }


def confirm_settings(
    raw: dict[str, Any], full: dict[str, Any] | None, s: dict[str, Any], problems: Problems
) -> ConfirmSpec | None:
    """`confirm`: absent = on with defaults when there is a baseline; false = off; true = defaults;
    or {top_k, seeds}. The seeds must differ from the search trials' `training/seed`."""
    value = raw.get("confirm", s["baseline"])
    if value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        problems.add("confirm", f"got {value!r}, expected false, true or {{top_k: K, seeds: [S, ...]}}")
        return None
    if not s["baseline"]:
        problems.add("confirm", "compares candidates with the baseline; set baseline: true or confirm: false")
        return None
    unknown_keys(value, ("top_k", "seeds", "max_seeds", "margin"), "confirm/", "confirm key", problems)
    search_seed = int(full["training"]["seed"]) if full is not None else 0
    top_k = count(value, "confirm/top_k", 1, 1, problems, high=max(1, s["num_samples"] - 1)) or 1
    default_seeds = [k for k in range(DEFAULT_CONFIRM_SEEDS + 1) if k != search_seed][:DEFAULT_CONFIRM_SEEDS]
    seeds = value.get("seeds", default_seeds)
    ok = isinstance(seeds, list) and all(parse_number(x, True) is not None and 0 <= x < 2**32 for x in seeds)
    if not ok or len(seeds) < 2 or len(set(seeds)) != len(seeds):
        problems.add("confirm/seeds", f"got {seeds!r}, expected a list of at least 2 distinct integers >= 0")
        return None
    if search_seed in seeds:
        problems.add(
            "confirm/seeds", f"{search_seed} is the search trials' training/seed; confirmation needs fresh seeds"
        )
    max_seeds = count(value, "confirm/max_seeds", 2 * len(seeds), 1, problems, high=MAX_CONFIRM_SEEDS) or len(seeds)
    if max_seeds < len(seeds):
        problems.add("confirm/max_seeds", f"got {max_seeds}, expected at least the {len(seeds)} confirm/seeds")
        max_seeds = len(seeds)
    return ConfirmSpec(top_k, tuple(int(x) for x in seeds), max_seeds, _margin(value, problems))


def _margin(value: dict[str, Any], problems: Problems) -> Margin:
    """`confirm/margin`: a number in the objective's units, or a percentage of the baseline's mean."""
    raw = value.get("margin", DEFAULT_MARGIN)
    relative = isinstance(raw, str) and raw.strip().endswith("%")
    number: Any = parse_number(raw, False)
    if relative:
        try:
            number = float(raw.strip()[:-1])
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or number < 0:
        problems.add(
            "confirm/margin",
            f"got {raw!r}, expected a number >= 0 in the objective's units or a percentage of the baseline (1%)",
        )
        return Margin()
    return Margin(float(number) / 100 if relative else float(number), relative)


def objectives(raw: Any, base: Config | None, problems: Problems) -> tuple[Objective, ...]:
    """`metric`: one {name, mode} mapping, or a list of 1 to MAX_OBJECTIVES of them (the first is
    the primary objective). Every name must be a metric training reports, each once."""
    if isinstance(raw, list) and raw:
        found = [_objective(item, f"metric[{i}]", base, problems) for i, item in enumerate(raw)]
        if len(raw) > MAX_OBJECTIVES:
            problems.add("metric", f"names {len(raw)} objectives; at most {MAX_OBJECTIVES} are supported")
        names = [o.name for o in found]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.add("metric", f"{name} is named {names.count(name)} times; each objective once")
        return tuple(found)
    return (_objective(raw, "metric", base, problems),)


def _objective(raw: Any, key: str, base: Config | None, problems: Problems) -> Objective:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        problems.add(
            key,
            "required: {name: METRIC, mode: min|max} or a list of them, e.g. {name: val/transfer/l1, mode: min}",
        )
        return Objective("", "min")
    unknown_keys(raw, ("name", "mode"), f"{key}/", "metric key", problems)
    name = raw["name"]
    known = reported_metrics(base) if base is not None else [name]
    if name not in known:
        hint = difflib.get_close_matches(name, known, n=1)
        problems.add(
            f"{key}/name", f"{name} is not reported by training" + (f"; did you mean {hint[0]}?" if hint else "")
        )
    mode = raw.get("mode", metric_directions().get(name, "min"))
    if mode not in ("min", "max"):
        problems.add(f"{key}/mode", f"got {mode!r}, expected min or max")
        mode = "min"
    return Objective(name, str(mode))


def _scheduler(raw: dict[str, Any], epochs: int, problems: Problems) -> SchedulerSpec:
    unknown_keys(raw, ("type", "grace_period", "reduction_factor"), "scheduler/", "scheduler key", problems)
    kind = raw.get("type", "asha")
    if kind not in ("asha", "fifo"):
        problems.add("scheduler/type", f"got {kind!r}, expected asha or fifo")
    grace = count(raw, "scheduler/grace_period", 1, 1, problems) or 1
    if grace > epochs:
        problems.add("scheduler/grace_period", f"{grace} is more than max_epochs {epochs}")
    factor = parse_number(raw.get("reduction_factor", 2), False)
    if factor is None or factor <= 1:
        problems.add("scheduler/reduction_factor", f"got {raw.get('reduction_factor')!r}, expected a number > 1")
    return SchedulerSpec(str(kind), grace, float(factor or 2))


def _resource(raw: dict[str, Any], key: str, default: float, problems: Problems) -> float:
    value = parse_number(raw.get(key, default), False)
    # Ray accepts fractions up to 1 and whole numbers above.
    if value is None or value < 0 or (key == "cpu" and value == 0) or (value > 1 and not float(value).is_integer()):
        least = "> 0" if key == "cpu" else ">= 0"
        auto = " or auto" if key == "gpu" else ""
        problems.add(
            f"resources/{key}", f"got {raw.get(key)!r}, expected a fraction up to 1 or a whole number ({least}){auto}"
        )
        return default
    return float(value)


def mapping(raw: dict[str, Any], key: str, problems: Problems) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(key, f"expected a mapping, got {value!r}")
        return {}
    return value


def count(
    raw: dict[str, Any], key: str, default: int | None, low: int, problems: Problems, high: int = 0
) -> int | None:
    """An integer setting >= low (and <= high if given); `key` may be a `section/name` path."""
    value = raw.get(key.rsplit("/", 1)[-1], default)
    if value is None and default is None:
        return None
    number = parse_number(value, True)
    if number is None or number < low or (high and number > high):
        problems.add(key, f"got {value!r}, expected an integer " + (f"from {low} to {high}" if high else f">= {low}"))
        return default
    return int(number)
