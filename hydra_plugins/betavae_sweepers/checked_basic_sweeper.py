"""Hydra's basic grid sweeper, checking every job's config before anything is written.

Without the check, ``-m beta=-1,0.5`` would train beta=0.5 and only then fail on beta=-1,
leaving a half-finished sweep folder behind.
"""

from __future__ import annotations

from typing import Any, List

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from vae.train import preflight


class CheckedBasicSweeper(BasicSweeper):
    def sweep(self, arguments: List[str]) -> Any:
        # The same expansion BasicSweeper.sweep does, done first so nothing runs or is written
        # (BasicSweeper creates the sweep folder before its own per-batch check).
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        loader = self.hydra_context.config_loader
        for batch in self.split_arguments(overrides, self.max_batch_size):
            for job_overrides in batch:
                preflight(loader.load_sweep_config(self.config, list(job_overrides)))
        return super().sweep(arguments)
