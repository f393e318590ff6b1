"""The rule that picks the sweep's answer from the confirmed points: `select:` in the sweep file.

A multi-objective sweep confirms several points of its front against the baseline; which
one becomes `best_config.yaml` is a choice between objectives, so the user states it::

    select: {minimize: val/transfer/l1, subject_to: {val/loss/KL: {max_ratio_to_baseline: 2.0}}}

`minimize`/`maximize` names the objective to optimise (it must be one of the sweep's, in its
direction); `subject_to` bounds others by their confirmed means, as a ratio to the
baseline's confirmed mean (`max_ratio_to_baseline`, `min_ratio_to_baseline`) or in the
metric's units (`max`, `min`). Without `select`, the default rule: the primary objective,
among the points not confirmed worse than the baseline on any other objective.

Either way a point qualifies only when it is confirmed **better** than the baseline on the
optimised objective (as a single-objective sweep's winner must be); among those that qualify
the best confirmed mean wins, and when none qualifies the answer is the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sweeps.pareto import Objective
from sweeps.space import parse_number, unknown_keys
from sweeps.sweep_yaml import Problems
from sweeps.verdict import BETTER, WORSE

BOUND_KEYS = ("max_ratio_to_baseline", "min_ratio_to_baseline", "max", "min")


@dataclass(frozen=True)
class Bound:
    """Limits on one objective's confirmed mean (None: no limit on that side)."""

    metric: str
    max_ratio: float | None = None
    min_ratio: float | None = None
    max: float | None = None
    min: float | None = None

    def holds(self, mean: float, baseline_mean: float) -> bool:
        if not math.isfinite(mean):
            return False
        limits = [
            (self.max_ratio, lambda r: mean <= r * baseline_mean),
            (self.min_ratio, lambda r: mean >= r * baseline_mean),
            (self.max, lambda v: mean <= v),
            (self.min, lambda v: mean >= v),
        ]
        return all(check(limit) for limit, check in limits if limit is not None)

    def __str__(self) -> str:
        parts = [
            f"<= {self.max_ratio:g}x the baseline's" if self.max_ratio is not None else "",
            f">= {self.min_ratio:g}x the baseline's" if self.min_ratio is not None else "",
            f"<= {self.max:g}" if self.max is not None else "",
            f">= {self.min:g}" if self.min is not None else "",
        ]
        return f"{self.metric} " + " and ".join(p for p in parts if p)


@dataclass(frozen=True)
class SelectRule:
    """Optimise `objective` among the points that satisfy every bound and are not confirmed
    worse on any of `not_worse`."""

    objective: Objective
    bounds: tuple[Bound, ...] = ()
    not_worse: tuple[str, ...] = ()
    stated: bool = True  # False: the default rule

    def __str__(self) -> str:
        verb = "minimize" if self.objective.mode == "min" else "maximize"
        text = f"{verb} {self.objective.name} (confirmed better than the baseline)"
        conditions = [str(b) for b in self.bounds]
        conditions += [f"not confirmed worse than the baseline on {name}" for name in self.not_worse]
        if conditions:
            text += " subject to " + "; ".join(conditions)
        return text + ("" if self.stated else " (the default rule)")


def default_rule(objectives: Sequence[Objective]) -> SelectRule:
    """The primary objective, among points not confirmed worse on any other."""
    return SelectRule(objectives[0], (), tuple(o.name for o in objectives[1:]), stated=False)


@dataclass
class Confirmed:
    """One confirmed point as the rule sees it: per objective, its mean and verdict against the baseline."""

    label: str
    means: dict[str, float]
    verdicts: dict[str, str] = field(default_factory=dict)


def choose(rule: SelectRule, points: Sequence[Confirmed], baseline: Confirmed) -> Confirmed:
    """The qualifying point with the best mean on the rule's objective, else the baseline."""
    name = rule.objective.name

    def qualifies(p: Confirmed) -> bool:
        return (
            p.verdicts.get(name) == BETTER
            and all(p.verdicts.get(n) != WORSE for n in rule.not_worse)
            and all(
                b.holds(p.means.get(b.metric, math.nan), baseline.means.get(b.metric, math.nan)) for b in rule.bounds
            )
        )

    ok = [p for p in points if qualifies(p)]
    return min(ok, key=lambda p: rule.objective.sign * p.means[name], default=baseline)


# --------------------------------------------------------------------------- the sweep file's `select`


def parse_rule(raw: Any, objectives: Sequence[Objective], problems: Problems) -> SelectRule | None:
    """`select` (None when absent); problems reported: a single-objective sweep, a name that is
    not an objective, a direction against the objective's, an unknown or impossible bound."""
    if raw is None:
        return None
    if len(objectives) < 2:
        problems.add("select", "chooses between objectives; this sweep has one (give `metric` a list, or drop select)")
        return None
    if not isinstance(raw, dict):
        problems.add("select", f"got {raw!r}, expected {{minimize: METRIC, subject_to: {{METRIC: {{max: X}}}}}}")
        return None
    unknown_keys(raw, ("minimize", "maximize", "subject_to"), "select/", "select key", problems)
    by_name = {o.name: o for o in objectives}
    target = _target(raw, by_name, problems)
    bounds = tuple(_bounds(raw.get("subject_to") or {}, by_name, problems))
    return SelectRule(target, bounds) if target is not None else None


def _target(raw: dict[str, Any], by_name: dict[str, Objective], problems: Problems) -> Objective | None:
    verbs = [v for v in ("minimize", "maximize") if v in raw]
    if len(verbs) != 1:
        problems.add("select", "needs exactly one of minimize: METRIC or maximize: METRIC")
        return None
    verb, name = verbs[0], raw[verbs[0]]
    if name not in by_name:
        problems.add(f"select/{verb}", f"{name!r} is not an objective of this sweep ({', '.join(by_name)})")
        return None
    if by_name[name].mode != ("min" if verb == "minimize" else "max"):
        problems.add(f"select/{verb}", f"{name} is a {by_name[name].mode} objective in `metric`; {verb} contradicts it")
        return None
    return by_name[name]


def _bounds(raw: Any, by_name: dict[str, Objective], problems: Problems) -> list[Bound]:
    if not isinstance(raw, dict):
        problems.add("select/subject_to", f"got {raw!r}, expected {{METRIC: {{max_ratio_to_baseline: R}}}}")
        return []
    out = []
    for name, limits in raw.items():
        key = f"select/subject_to/{name}"
        if name not in by_name:
            problems.add(key, f"{name!r} is not an objective of this sweep ({', '.join(by_name)})")
            continue
        if not isinstance(limits, dict) or not limits:
            problems.add(key, f"got {limits!r}, expected one or more of {', '.join(BOUND_KEYS)}")
            continue
        unknown_keys(limits, BOUND_KEYS, f"{key}/", "bound", problems)
        values = {k: _number(limits, k, key, problems) for k in BOUND_KEYS}
        bound = Bound(
            name, values["max_ratio_to_baseline"], values["min_ratio_to_baseline"], values["max"], values["min"]
        )
        if _possible(bound, key, problems):
            out.append(bound)
    return out


def _number(limits: dict[str, Any], k: str, key: str, problems: Problems) -> float | None:
    if k not in limits:
        return None
    value = parse_number(limits[k], False)
    if value is None or not math.isfinite(value) or (k.endswith("ratio_to_baseline") and value <= 0):
        least = " > 0" if k.endswith("ratio_to_baseline") else ""
        problems.add(f"{key}/{k}", f"got {limits[k]!r}, expected a finite number{least}")
        return None
    return float(value)


def _possible(b: Bound, key: str, problems: Problems) -> bool:
    """Whether some value can satisfy the bound (no min above its max)."""
    for low, high, what in ((b.min_ratio, b.max_ratio, "ratio_to_baseline"), (b.min, b.max, "")):
        if low is not None and high is not None and low > high:
            name = f"min_{what}" if what else "min"
            problems.add(f"{key}/{name}", f"{low:g} is above the max {high:g}; no point can satisfy it")
            return False
    return True
