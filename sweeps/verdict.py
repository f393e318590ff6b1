"""The rule that turns per-seed values into a verdict: better, worse, equivalent or undecided.

A candidate's final objective per seed is compared with the baseline's: the difference of the
means gets a Welch confidence interval (unequal variances, Welch-Satterthwaite degrees of
freedom), and the interval alone decides:

- **equivalent**: it lies wholly inside [-margin, +margin] (two one-sided tests at the
  margin): whatever the difference is, it is smaller than the smallest one that matters;
- **better** / **worse**: otherwise, it lies wholly on the improving / the other side of 0;
- **undecided**: none of these; with seeds left to draw the candidate gets another round.

Confirmation looks at a candidate after each round of seeds, up to `rounds` times. Each look
uses the level `1 - (1 - LEVEL) / rounds` (Bonferroni over the looks), so the chance that any
look of a candidate gives a wrong decision stays below 1 - LEVEL = 5 %, whatever the looks'
dependence; it costs some power against a sequential test tuned to the design, and needs no
assumption about how the rounds are spaced.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95  # over all looks at one candidate
BETTER, WORSE, EQUIVALENT, UNDECIDED = "better", "worse", "equivalent", "undecided"


@dataclass(frozen=True)
class Verdict:
    delta: float  # candidate mean - baseline mean
    ci: tuple[float, float]  # of delta, at `level`
    level: float
    word: str  # BETTER, WORSE, EQUIVALENT or UNDECIDED

    @property
    def decided(self) -> bool:
        return self.word != UNDECIDED


def look_level(rounds: int) -> float:
    """The confidence level of each of `rounds` looks (Bonferroni)."""
    return 1 - (1 - LEVEL) / max(1, rounds)


def judge(values: list[float], baseline: list[float], mode: str, margin: float, level: float = LEVEL) -> Verdict:
    """The verdict on a candidate's per-seed `values` against the baseline's, `mode` min or max,
    `margin` the smallest difference that matters (in the objective's units)."""
    if len(values) < 2 or len(baseline) < 2:
        return Verdict(math.nan, (math.nan, math.nan), level, UNDECIDED)
    delta = statistics.fmean(values) - statistics.fmean(baseline)
    if statistics.stdev(values) == 0 and statistics.stdev(baseline) == 0:
        low = high = delta  # no spread at all (e.g. a deterministic objective): the difference is exact
    else:
        ci = stats.ttest_ind(values, baseline, equal_var=False).confidence_interval(level)
        low, high = float(ci.low), float(ci.high)
    gain_low, gain_high = (-high, -low) if mode == "min" else (low, high)  # > 0 = improvement
    if -margin <= low and high <= margin and (margin > 0 or low == high):  # an exact 0 is equivalent too
        word = EQUIVALENT
    elif gain_low > 0:
        word = BETTER
    elif gain_high < 0:
        word = WORSE
    else:
        word = UNDECIDED
    return Verdict(delta, (low, high), level, word)
