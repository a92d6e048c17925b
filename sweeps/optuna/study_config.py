"""The Optuna sweeper's settings turned into what a study needs: directions, objective keys, the
sampler, how many trials run at once, and a check that every job's config composes."""

from __future__ import annotations

import logging
from typing import Any, MutableSequence, Optional

import optuna
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from omegaconf import ListConfig, OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from protocol.errors import ConfigError
from sweeps.optuna.search_space import SearchSpace
from sweeps.workers.launcher_workers import joblib_workers

log = logging.getLogger(__name__)


class StudyConfig:
    """Part of OptunaSweeperImpl (optuna_sweeper.py), which holds the state these methods share."""

    # --- configuration ---------------------------------------------------------------------
    def _directions(self) -> list[str]:
        raw = self.direction
        items = list(raw) if isinstance(raw, (MutableSequence, ListConfig, tuple)) else [raw]
        names = []
        for item in items:
            name = getattr(item, "name", str(item)).split(".")[-1].lower()
            if name not in ("minimize", "maximize"):
                raise ConfigError(f"hydra.sweeper.direction={item} is invalid; it must be minimize or "
                                  "maximize, or a list of them (one per objective)")
            names.append(name)
        return names

    def _objective_keys(self, directions: list[str]) -> Optional[list[str]]:
        objective = self.objective
        if objective is None:
            # The lightning-hydra-template convention, which our train.yaml follows.
            objective = OmegaConf.select(self.config, "optimized_metric", default=None)
        if objective is None:
            return None
        keys = [str(k) for k in objective] if isinstance(objective, (ListConfig, list, tuple)) else [str(objective)]
        if len(keys) != len(directions):
            raise ConfigError(f"hydra.sweeper.objective names {len(keys)} metric(s) {keys} but "
                              f"hydra.sweeper.direction has {len(directions)}; give one direction per metric")
        return keys

    def _build_sampler(self, space: SearchSpace) -> Any:
        sampler = self.sampler
        if callable(sampler) and getattr(sampler, "func", None) is optuna.samplers.GridSampler:
            grid = {}
            for name, dist in space.distributions.items():
                if isinstance(dist, CategoricalDistribution):
                    grid[name] = list(dist.choices)
                elif isinstance(dist, IntDistribution) and not dist.log:
                    grid[name] = list(range(dist.low, dist.high + 1, dist.step))
                elif isinstance(dist, FloatDistribution) and dist.step is not None:
                    n = int(round((dist.high - dist.low) / dist.step))
                    grid[name] = [dist.low + i * dist.step for i in range(n + 1)]
                else:
                    raise ConfigError(f"hydra/sweeper/sampler=grid needs finite params; {name} is a "
                                      "continuous interval (give it choice(...) or range(...))")
            return sampler(grid)
        return sampler

    def _check_jobs_compose(self, space: SearchSpace, grid: Optional[list[dict]]) -> None:
        """Compose (and validate, with ``validate_with``) the jobs at the search space's edges
        before any trial runs: a wrong key or an out-of-range bound is one error, not n failures."""
        probes: list[dict[str, Any]] = []
        if grid is not None:
            probes = grid[:16]
        else:
            for bound in ("low", "high"):
                point = {}
                for name, dist in space.distributions.items():
                    if isinstance(dist, CategoricalDistribution):
                        point[name] = dist.choices[0 if bound == "low" else -1]
                    else:
                        point[name] = getattr(dist, bound)
                probes.append(point)
        loader = self.hydra_context.config_loader
        for point in probes:
            cfg = loader.load_sweep_config(self.config, space.overrides(point))
            if self.validate_with is not None:
                self.validate_with(cfg)

    def _slots(self) -> int:
        if isinstance(self.launcher, BasicLauncher):
            if self.n_jobs > 1:
                log.info("hydra.sweeper.n_jobs=%d: the basic launcher runs one job at a time in this "
                         "process; use hydra/launcher=joblib to run trials side by side", self.n_jobs)
            return 1
        workers = joblib_workers(self.launcher)
        if workers is not None:
            # joblib runs a 1-worker Parallel in the calling thread, i.e. inside this process,
            # where two Hydra jobs at once would share Hydra's global state: never more slots
            # than joblib has worker processes.
            if workers < self.n_jobs:
                log.info("hydra.sweeper.n_jobs=%d but hydra.launcher.n_jobs allows %d worker process(es): "
                         "running %d trial(s) at a time", self.n_jobs, workers, workers)
            return min(self.n_jobs, workers)
        return self.n_jobs
