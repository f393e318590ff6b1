"""Several objectives at once: dominance, non-dominated fronts, a spread order and the hypervolume.

Points are rows of objective values already turned so that **lower is better** in every
column (a `max` objective enters negated, see :meth:`Objective.lower_is_better`). A point
*dominates* another when it is no worse in every objective and better in one. Sorting by
fronts (Deb et al. 2002) gives front 0 = the non-dominated points, front 1 = those only
front 0 dominates, and so on. Inside a front the points are ordered as an epsilon-net
(Salinas et al., as multi-objective ASHA breaks ties; Schmucker et al. 2021): the point
best on the first (primary) objective first, then again and again the point farthest from
those already chosen, distances measured on each objective's ranks so that no objective's
units weigh more than another's. Taking the first k points of that order gives k points
spread along the front, not k points crowded at one end.

The hypervolume of a set of points is the volume they dominate up to a reference point
(exact, for the 1 to 3 objectives a sweep may have). NaN values never dominate and sit in
the last front.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_OBJECTIVES = 3


@dataclass(frozen=True)
class Objective:
    name: str
    mode: str  # "min" or "max"

    @property
    def sign(self) -> float:
        """+1 for min, -1 for max: `sign * value` is lower-is-better."""
        return 1.0 if self.mode == "min" else -1.0


def lower_is_better(objectives: Sequence[Objective], values: Sequence[Sequence[float]]) -> np.ndarray:
    """(n, m) array of `values` with every column turned lower-is-better."""
    signs = np.array([o.sign for o in objectives], dtype=float)
    return np.asarray(values, dtype=float).reshape(-1, len(objectives)) * signs


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether `a` dominates `b` (lower is better; a NaN in `a` never dominates)."""
    if np.isnan(a).any():
        return False
    if np.isnan(b).any():
        return True
    return bool(np.all(a <= b) and np.any(a < b))


def _dominance(points: np.ndarray) -> np.ndarray:
    """(n, n) bool: [i, j] = point i dominates point j (the rule of :func:`dominates`, all pairs at once)."""
    p = np.asarray(points, dtype=float)
    nan = np.isnan(p).any(axis=1)
    no_worse = np.all(p[:, None, :] <= p[None, :, :], axis=-1)
    dom = np.asarray(no_worse & np.any(p[:, None, :] < p[None, :, :], axis=-1), dtype=bool)
    dom[nan, :] = False
    dom[np.ix_(~nan, nan)] = True
    np.fill_diagonal(dom, False)
    return dom


def fronts(points: np.ndarray) -> list[list[int]]:
    """Indices of `points` (n, m) by non-dominated front, front 0 first, each in index order."""
    dom = _dominance(points)
    beaten_by = dom.sum(axis=0)  # how many points dominate each one
    left = np.ones(len(dom), dtype=bool)
    out: list[list[int]] = []
    while left.any():
        current = np.flatnonzero(left & (beaten_by == 0))
        out.append(current.tolist())
        left[current] = False
        beaten_by = beaten_by - dom[current].sum(axis=0)
    return out


def _ranks(points: np.ndarray) -> np.ndarray:
    """Each column's values as ranks scaled to [0, 1] (ties share their mean rank; NaN last)."""
    from scipy.stats import rankdata

    col = np.where(np.isnan(points), np.inf, points)
    return (rankdata(col, method="average", axis=0) - 1) / max(1, len(points) - 1)


def spread_order(points: np.ndarray, members: Sequence[int]) -> list[int]:
    """`members` (indices into `points`) as an epsilon-net: best on the first objective first,
    then each time the one farthest (on ranks over all `points`) from those already taken;
    ties go to the better first objective, then the lower index."""
    left = np.array(list(members), dtype=int)
    if left.size == 0:
        return []
    ranks = _ranks(points)
    primary = np.where(np.isnan(points[:, 0]), np.inf, points[:, 0])
    first = int(left[np.lexsort((left, primary[left]))[0]])
    order = [first]
    left = left[left != first]
    nearest = np.linalg.norm(ranks[left] - ranks[first], axis=1)
    while left.size:
        k = np.lexsort((left, primary[left], -nearest))[0]  # farthest, then better primary, then lower index
        pick = int(left[k])
        order.append(pick)
        left, nearest = np.delete(left, k), np.delete(nearest, k)
        nearest = np.minimum(nearest, np.linalg.norm(ranks[left] - ranks[pick], axis=1))
    return order


def ranking(points: np.ndarray) -> list[int]:
    """All indices, best first: front by front, each front in spread order."""
    return [i for front in fronts(points) for i in spread_order(points, front)]


def front_indices(points: np.ndarray) -> list[int]:
    """The non-dominated points (finite only), in spread order."""
    finite = [i for i in range(len(points)) if np.isfinite(points[i]).all()]
    if not finite:
        return []
    sub = points[finite]
    first = fronts(sub)[0]
    return [finite[i] for i in spread_order(sub, first)]


def hypervolume(points: np.ndarray, reference: Sequence[float] | np.ndarray) -> float:
    """The volume dominated by `points` (lower is better) up to `reference`; points not strictly
    better than the reference in every objective add nothing. Exact for 1 to 3 objectives."""
    ref = np.asarray(reference, dtype=float)
    pts = np.asarray(points, dtype=float).reshape(-1, len(ref))
    pts = pts[np.isfinite(pts).all(axis=1) & (pts < ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    if len(ref) == 1:
        return float(ref[0] - pts[:, 0].min())
    if len(ref) == 2:
        return _hv2(pts, ref)
    if len(ref) == 3:
        return _hv3(pts, ref)
    raise ValueError(f"hypervolume of {len(ref)} objectives (at most {MAX_OBJECTIVES})")


def _hv2(pts: np.ndarray, ref: np.ndarray) -> float:
    """Sweep along the first objective: each point adds the strip up to the best second value so far."""
    volume, best_y = 0.0, float(ref[1])
    for x, y in sorted(map(tuple, pts)):
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(volume)


def _hv3(pts: np.ndarray, ref: np.ndarray) -> float:
    """Slices along the third objective: each slab's area is the 2-D hypervolume of the points below it."""
    order = np.argsort(pts[:, 2], kind="stable")
    pts = pts[order]
    zs = [*pts[:, 2].tolist(), float(ref[2])]
    volume = 0.0
    for k in range(len(pts)):
        depth = zs[k + 1] - zs[k]
        if depth > 0:
            volume += _hv2(pts[: k + 1, :2], ref[:2]) * depth
    return float(volume)


def reference_point(points: np.ndarray) -> np.ndarray:
    """A reference point for comparable hypervolumes: per objective, the worst finite value among
    `points`, moved out by 10 % of the range (or of the value, for no range)."""
    rows = [p for p in np.asarray(points, dtype=float) if np.isfinite(p).all()]
    if not rows:
        return np.full(points.shape[1] if points.ndim == 2 else 1, math.nan)
    arr = np.vstack(rows)
    worst, best = arr.max(axis=0), arr.min(axis=0)
    span = np.where(worst > best, worst - best, np.abs(worst))
    return worst + 0.1 * np.where(span > 0, span, 1.0)
