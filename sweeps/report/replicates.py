"""Replicates: runs of one configuration with different seeds (params.replicate_of), pooled into a
mean and a 95% interval per metric, and configurations compared by their difference.

The statistics (Student's t interval; paired or Welch differences) are in sweeps/intervals.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from protocol import REPLICATE_OF
from sweeps.intervals import LEVEL, Difference, Interval, difference, mean_interval, t_quantile
from sweeps.report.runs import Run

__all__ = ["LEVEL", "Configuration", "Difference", "Interval", "configurations", "difference",
           "has_replicates", "mean_interval", "t_quantile"]


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
