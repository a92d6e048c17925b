"""Build the sweep report when a multirun ends: a Hydra callback (conf/hydra/default.yaml).

Turn it off with ``report.enabled=false``; choose the heatmap's metric with ``report.metric=...``.

Hydra calls ``on_multirun_end`` only when every job succeeded: a failed job raises out of the
sweeper first. A partial sweep needs its report most, so the callback also registers an exit
hook that builds the report of whatever ran when the sweep stops early (a failed job, Ctrl-C).
Building the report never changes the sweep's outcome: any error in it is one warning line,
and the sweep's own exit code and error stand.
"""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepReport(Callback):
    def __init__(self, enabled: bool = True, metric: str = "test/nll_iwae", wandb: bool = True) -> None:
        self.enabled, self.metric, self.wandb = bool(enabled), metric, bool(wandb)
        self.sweep_dir: Path | None = None
        self.pid: int | None = None
        self.done = False

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if not self.enabled:
            return
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        self.pid, self.done = os.getpid(), False
        self._arm()

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        # Re-register after each job, so the hook runs before the exit hooks of libraries the job
        # imported (atexit runs last-registered first; W&B closes its service in one).
        if self.enabled and self.pid == os.getpid() and not self.done:
            self._arm()

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if self.enabled and not self.done:
            self.build()

    def _arm(self) -> None:
        # The exit-time report imports W&B, which imports concurrent.futures.thread; that module
        # registers a threading exit hook when first imported, which Python refuses once it is
        # shutting down. The sweep's parent no longer imports torch (which imported it early).
        import concurrent.futures.thread  # noqa: F401

        atexit.unregister(self._at_exit)
        atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        # Only in the process that ran the sweep (a launcher's worker processes also hold this object).
        if self.pid != os.getpid() or self.done or self.sweep_dir is None or not self.sweep_dir.is_dir():
            return
        if not any(self.sweep_dir.glob("*/.hydra")):
            return  # no job started (e.g. a config error the sweeper caught first): nothing to compare
        log.info("The sweep stopped early (a job failed, or it was interrupted); reporting the runs it has")
        self.build()
        # The report's table came after the sweep's own error: point back at it.
        log.info("The sweep itself did not finish: its error is above the report")

    def build(self) -> None:
        self.done = True
        atexit.unregister(self._at_exit)
        try:
            from sweeps.report.report import describe, make_report
            from sweeps.report.collect import collect_multirun

            report = make_report(collect_multirun(self.sweep_dir), metric=self.metric, use_wandb=self.wandb)
            for line in describe(report):
                log.info(line)
        except Exception as exc:  # noqa: BLE001 - a report must never turn a sweep's result into a crash
            log.warning("sweep report not built (%s: %s); retry: python -m sweeps.report %s",
                        type(exc).__name__, exc, self.sweep_dir)
