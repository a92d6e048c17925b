"""Means and 95% intervals of a few values (a configuration's seeds), and the difference of two
such samples: used by the report (sweeps/report/replicates.py) and the Optuna sweeper's trials over
several seeds (sweeps/optuna/results.py).

The interval is Student's t: mean ± t(0.975, n−1) · s/√n (scipy's t quantile; scipy comes with
scikit-learn). A difference is paired where at least two seeds are shared (the difference per
seed, then its t interval: what a seed does to both cancels), else Welch's unpaired interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float          # nan with fewer than two values: one seed says nothing about the spread
    high: float
    n: int

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2

    def text(self, digits: int = 3) -> str:
        if self.n < 2:
            return f"{self.mean:.{digits}g}"
        return f"{self.mean:.{digits}g} [{self.low:.{digits}g}, {self.high:.{digits}g}]"


def t_quantile(df: float, level: float = LEVEL) -> float:
    from scipy.stats import t   # ~0.3 s: only a report with replicates pays it

    return float(t.ppf(0.5 + level / 2, df))


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean of ``values`` and its t interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if x.size < 2:
        return Interval(mean, math.nan, math.nan, int(x.size))
    half = t_quantile(x.size - 1, level) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return Interval(mean, mean - half, mean + half, int(x.size))


@dataclass(frozen=True)
class Difference:
    interval: Interval   # of a − b
    paired: bool         # per shared seed, or Welch's unpaired interval
    seeds: int           # shared seeds (paired) or the smaller sample (unpaired)


def difference(a: dict[int, float], b: dict[int, float], level: float = LEVEL) -> Difference:
    """a − b for two configurations' values by seed: paired where at least two seeds are shared."""
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        return Difference(mean_interval([a[s] - b[s] for s in shared], level), True, len(shared))
    x, y = np.asarray(list(a.values()), float), np.asarray(list(b.values()), float)
    mean = float(x.mean() - y.mean()) if x.size and y.size else math.nan
    if x.size < 2 or y.size < 2:
        return Difference(Interval(mean, math.nan, math.nan, min(x.size, y.size)), False, min(x.size, y.size))
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(vx + vy)
    # Welch–Satterthwaite degrees of freedom (a zero spread on both sides: any df gives half 0)
    df = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1)) if se > 0 else 1.0
    half = t_quantile(df, level) * se
    return Difference(Interval(mean, mean - half, mean + half, min(x.size, y.size)), False, min(x.size, y.size))
