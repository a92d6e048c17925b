"""Hydra's basic grid sweeper, checking every job's config before anything is written.

Without the check, ``-m beta=-1,0.5`` would train beta=0.5 and only then fail on beta=-1,
leaving a half-finished sweep folder behind. The parent checks the values (no torch needed);
the launcher's worker processes (if it has any) start, prepare for the jobs and check their
components (datamodule, model, Trainer arguments: sweeps/workers/launcher_workers.py); without workers the
parent checks those too.
"""

from __future__ import annotations

from typing import Any, List, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from sweeps.workers.launcher_workers import WorkerWarmUp, gpu_worker_count, limit_workers, release_workers
from vae.preflight import check_components, check_values
from sweeps.workers.warm_up import components, worker_preparation


class CheckedBasicSweeper(BasicSweeper):
    checked_jobs: frozenset = frozenset()  # the jobs sweep() composed and checked

    def sweep(self, arguments: List[str]) -> Any:
        # The same expansion BasicSweeper.sweep does, done first so nothing runs or is written
        # (BasicSweeper creates the sweep folder before its own per-batch check).
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        loader = self.hydra_context.config_loader
        jobs = [list(job) for batch in self.split_arguments(overrides, self.max_batch_size) for job in batch]
        configs = [loader.load_sweep_config(self.config, job) for job in jobs]
        for cfg in configs:
            check_values(cfg)
        # The usual mistakes are caught by now; the workers import, then build each job's parts.
        limit_workers(self.launcher, jobs=len(jobs), gpu_workers=gpu_worker_count(configs[0]))
        warm_up = WorkerWarmUp(self.launcher, jobs=len(jobs), checks=[components(cfg) for cfg in configs],
                               **worker_preparation(configs[0]))
        try:
            if not warm_up.wait():
                for cfg in configs:
                    check_components(cfg)
        except BaseException:
            warm_up.cancel()
            raise
        self.checked_jobs = frozenset(tuple(job) for job in jobs)
        returns = super().sweep(arguments)
        release_workers()   # after a sweep that ended normally (see its docstring)
        return returns

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        # Hydra composes each job again here; the jobs checked above need not be (~0.2 s a job).
        if not all(tuple(job) in self.checked_jobs for job in batch):
            super().validate_batch_is_legal(batch)
