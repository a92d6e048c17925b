"""Hydra's basic grid sweeper, checking every job's config before anything is written.

Without the check, ``-m beta=-1,0.5`` would train beta=0.5 and only then fail on beta=-1,
leaving a half-finished sweep folder behind. The parent checks the values (no torch needed);
the launcher's worker processes (if it has any) start, prepare for the jobs and check their
components (sweeps/workers/launcher_workers.py); without workers the parent checks those too.

What "checking" means is the job's business: the sweeper's config names the functions
(``check_values``, ``check_components``, ``warm_up``), so the sweeper imports no application code.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_method

from sweeps.grid.replicates import expand_replicates
from sweeps.workers.launcher_workers import WorkerWarmUp, gpu_worker_count, limit_workers, release_workers


class CheckedBasicSweeperImpl(BasicSweeper):
    """``check_values(cfg)``: every job's config, in this process, before any job runs.
    ``check_components(cfg)``: each job's config as ``warm_up.components`` gives it, in the
    launcher's workers (or here without them). ``warm_up``: a module with ``components(cfg)``,
    ``worker_preparation(cfg)`` (keyword arguments for) and ``prepare_worker(...)``. Each is a
    dotted name; errors they raise are the job's to word (protocol.errors.UserError).
    ``replicates_key``: the job's key for replicates per configuration (sweeps/grid/replicates.py)."""

    checked_jobs: frozenset = frozenset()  # the jobs sweep() composed and checked

    def __init__(self, max_batch_size: Optional[int], params: Optional[dict] = None,
                 check_values: Optional[str] = None, check_components: Optional[str] = None,
                 warm_up: Optional[str] = None, replicates_key: Optional[str] = None,
                 seed_key: str = "seed") -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.check_values = get_method(check_values) if check_values else None
        self.check_components = get_method(check_components) if check_components else None
        self.warm_up = warm_up
        self.replicates_key, self.seed_key = replicates_key, seed_key

    def sweep(self, arguments: List[str]) -> Any:
        # The same expansion BasicSweeper.sweep does, done first so nothing runs or is written
        # (BasicSweeper creates the sweep folder before its own per-batch check).
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        arguments = expand_replicates(list(arguments), parser.parse_overrides(list(arguments)), self.config,
                                      self.replicates_key, self.seed_key)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        loader = self.hydra_context.config_loader
        jobs = [list(job) for batch in self.split_arguments(overrides, self.max_batch_size) for job in batch]
        configs = [loader.load_sweep_config(self.config, job) for job in jobs]
        if self.check_values is not None:
            for cfg in configs:
                self.check_values(cfg)
        # The usual mistakes are caught by now; the workers import, then build each job's parts.
        limit_workers(self.launcher, jobs=len(jobs), gpu_workers=gpu_worker_count(configs[0]))
        warm_up = self._start_warm_up(configs)
        try:
            if not (warm_up is not None and warm_up.wait()) and self.check_components is not None:
                for cfg in configs:
                    self.check_components(cfg)
        except BaseException:
            if warm_up is not None:
                warm_up.cancel()
            raise
        self.checked_jobs = frozenset(tuple(job) for job in jobs)
        returns = super().sweep(arguments)
        release_workers()   # after a sweep that ended normally (see its docstring)
        return returns

    def _start_warm_up(self, configs: list) -> Optional[WorkerWarmUp]:
        if self.warm_up is None:
            return None
        components, preparation = (get_method(f"{self.warm_up}.{name}") for name in ("components", "worker_preparation"))
        checks = [components(cfg) for cfg in configs] if self.check_components is not None else None
        return WorkerWarmUp(self.launcher, jobs=len(configs), target=f"{self.warm_up}.prepare_worker",
                            checks=checks, **preparation(configs[0]))

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        # Hydra composes each job again here; the jobs checked above need not be (~0.2 s a job).
        if not all(tuple(job) in self.checked_jobs for job in batch):
            super().validate_batch_is_legal(batch)
