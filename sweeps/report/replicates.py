"""Replicates: runs of one configuration with different seeds (params.replicate_of), pooled into a
mean and a 95% interval per metric, and configurations compared by their difference.

The interval is Student's t: mean ± t(0.975, n−1) · s/√n (scipy's t quantile; scipy comes with
scikit-learn). Two configurations are compared on the seeds they share, paired (the difference
per seed, then its t interval), which cancels what a seed does to both; without two shared seeds,
Welch's unpaired interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from protocol import REPLICATE_OF
from sweeps.report.runs import Run

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


@dataclass
class Configuration:
    """One configuration's runs (its replicates)."""
    key: str
    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def done(self) -> list[Run]:
        return [r for r in self.runs if r.state == "completed"]

    @property
    def params(self) -> dict:
        return self.runs[0].params

    @property
    def beta(self) -> float | None:
        return self.runs[0].beta

    @property
    def latent_size(self) -> int | None:
        return self.runs[0].latent_size

    def by_seed(self, metric: str) -> dict[int, float]:
        return {int(r.params.get("seed", k)): v for k, r in enumerate(self.done) if (v := r.metric(metric)) is not None}

    def interval(self, metric: str) -> Interval:
        return mean_interval([v for r in self.done if (v := r.metric(metric)) is not None])


def configuration_label(run: Run) -> str:
    """The run's label without its seed: ``beta=4,seed=2`` -> ``beta=4``."""
    parts = [p for p in run.label.split(",") if not p.lstrip("+~").startswith(("seed=", "seeds="))]
    if parts:
        return ",".join(parts)
    return f"beta={run.beta:g}" if run.beta is not None else run.name


def configurations(runs: Sequence[Run]) -> list[Configuration]:
    """Runs grouped by the configuration they replicate, in the order each first appears. A run
    without a replicate_of (older runs) is its own configuration."""
    found: dict[str, Configuration] = {}
    for k, run in enumerate(runs):
        key = str(run.params.get(REPLICATE_OF) or f"run {run.job or k}")
        found.setdefault(key, Configuration(key, configuration_label(run))).runs.append(run)
    return list(found.values())


def has_replicates(runs: Sequence[Run]) -> bool:
    """Some configuration has two or more completed seeds: the report then shows means and intervals."""
    return any(len(c.done) >= 2 for c in configurations(runs))
