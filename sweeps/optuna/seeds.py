"""``hydra.sweeper.seeds=N``: each trial is judged over N seeded jobs, launched together.

The trial's objective is the mean (or ``seed_aggregate: median``) of its seeds' values; each seed's
value is kept in the trial's user attrs (``seed_values``). A failed seed fails the trial with its
reason; a pruned seed prunes it. The key that receives the seed is the sweeper's ``seed_key`` (the
job's config names it; nothing here knows the application).

Pruning on the mean: each seed's job reports its value at a step into the trial's user attrs
(``seed_report``, sweeps/optuna/pruning.py); once every seed has reported a step, the mean is
reported to Optuna at that step, and every seed asks the pruner.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from protocol.errors import ConfigError

AGGREGATES = {"mean": statistics.fmean, "median": statistics.median}
ATTR_SEED_VALUES = "seed_values"        # {seed: [value per objective]} of a completed trial
ATTR_SEEDS = "seeds"                    # the seeds a trial ran
ATTR_SEED_OUTPUT_DIRS = "seed_output_dirs"   # each seed's job folder (output_dir: the first's)
SEED_REPORT = "seed_report:{step}:{index}"   # user attr a seed's job writes at a validation step


@dataclass(frozen=True)
class TrialSeeds:
    count: int
    key: Optional[str]
    base: int
    aggregate: str

    @classmethod
    def from_config(cls, count: Any, key: Optional[str], aggregate: str, config: Any, space: Any):
        """From the sweeper's settings; a fixed ``key=N`` in the sweep becomes the base seed (and
        leaves the search space: each job gets its own)."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ConfigError(f"hydra.sweeper.seeds={count} is invalid; it must be an integer ≥ 1 (seeded jobs per trial)")
        if aggregate not in AGGREGATES:
            raise ConfigError(f"hydra.sweeper.seed_aggregate={aggregate} is invalid; it must be one of: "
                              f"{', '.join(AGGREGATES)}")
        if count > 1 and not key:
            raise ConfigError("hydra.sweeper.seeds > 1 needs hydra.sweeper.seed_key: the job's config key for its seed")
        if count > 1 and key in space.distributions:
            raise ConfigError(f"hydra.sweeper.seeds={count} sets {key} per job; do not also search {key} "
                              f"(give a base seed instead, e.g. {key}=10 runs {key}=10..{10 + count - 1})")
        from omegaconf import OmegaConf

        base = OmegaConf.select(config, key, default=0) if key else 0
        if count > 1 and key in space.fixed:
            try:
                base = int(space.fixed.pop(key))
            except ValueError:
                raise ConfigError(f"{key}={space.fixed.get(key)}: the base seed must be an integer") from None
            space.order.remove(key)
        return cls(count, key, int(base or 0), aggregate)

    @property
    def several(self) -> bool:
        return self.count > 1

    def seeds(self) -> list[int]:
        return [self.base + i for i in range(self.count)]

    def jobs(self, overrides: list[str], identity: list[str], trial_key: Optional[str], number: int) -> list[list[str]]:
        """One job per seed: its seed, its own folder (``<trial>-seed<seed>``), and its place among
        the trial's seeds for reporting (``<trial_key>.seed_index``/``seeds``)."""
        if not self.several:
            return [overrides + identity]
        jobs = []
        for index, seed in enumerate(self.seeds()):
            report = [f"++{trial_key}.seed_index={index}", f"++{trial_key}.seeds={self.count}"] if identity else []
            jobs.append(overrides + [f"++{self.key}={seed}", f"hydra.sweep.subdir={number}-seed{seed}"] + identity + report)
        return jobs

    def combine(self, values: Sequence[list[float]]) -> list[float]:
        """The trial's value(s): each objective aggregated over the seeds."""
        return [AGGREGATES[self.aggregate]([v[k] for v in values]) for k in range(len(values[0]))]


def mean_of_reports(attrs: dict, step: int, seeds: int) -> Optional[float]:
    """The mean of the seeds' reports at ``step``, once every seed has reported it."""
    values = [attrs.get(SEED_REPORT.format(step=step, index=i)) for i in range(seeds)]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    return statistics.fmean(values)
