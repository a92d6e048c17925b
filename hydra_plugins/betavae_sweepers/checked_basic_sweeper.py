"""Hydra's basic grid sweeper, checking every job's config before the first job runs.

Without the check, ``-m beta=-1,0.5`` would train beta=0.5 and only then fail on beta=-1.
"""

from __future__ import annotations

from typing import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from vae.config import validate


class CheckedBasicSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        # Hydra's own check composes each job's config; we also check its values.
        for overrides in batch:
            validate(self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides)))
