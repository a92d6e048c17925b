"""Start the joblib launcher's worker processes while the sweep's configs are still being checked.

A worker spends seconds importing torch, Lightning and W&B before its first job can start, and the
parent spends seconds composing and checking every job's config before it launches any. Hydra's joblib
launcher only creates its workers at launch, so the two happen one after the other. Here the same
workers (joblib reuses one loky executor for the same settings) are created first and prepare in
the background (the job's own preparation, named in the sweeper's config: imports, W&B's service, the data), so both happen at once and the
jobs start on warm workers.

The workers also check the jobs' components (build each job's datamodule, model and Trainer
arguments, vae.preflight.check_components), as the jobs themselves would: a bad dataset, network or
Trainer option is still one line before any job runs, and the parent, which only composes, never
imports torch or Lightning (seconds of CPU that the workers' own imports would compete with).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

def call(target: str, kwargs: dict) -> int:
    """Run ``target`` (a dotted function name) in a worker; returns the worker's pid."""
    module, _, function = target.rpartition(".")
    getattr(importlib.import_module(module), function)(**kwargs)
    return os.getpid()


def joblib_workers(launcher: Any) -> int | None:
    """How many worker processes Hydra's joblib launcher runs jobs in, as joblib counts n_jobs
    (-1: every usable core, by affinity and cgroup quotas; 1: none, the jobs run in the calling
    process); None for any other launcher."""
    # By name, not isinstance: Hydra's plugin discovery imports hydra_plugins modules afresh, so
    # the launcher's class need not be the object an import here would give.
    if type(launcher).__name__ != "JoblibLauncher":
        return None
    from joblib import effective_n_jobs

    return effective_n_jobs(launcher.joblib.get("n_jobs") or 1)


def limit_workers(launcher: Any, jobs: int, gpu_workers: int | None = None) -> None:
    """joblib's n_jobs=-1 (the default: every usable core) starts a worker process per core even
    for fewer jobs; at most one worker per job is started instead (64 cores, 6 jobs: 6 workers).
    Jobs that each take one GPU get ``gpu_workers`` (``gpu_worker_count``) instead of one per core."""
    workers = joblib_workers(launcher)
    if workers is not None and (launcher.joblib.get("n_jobs") or 1) < 0:
        launcher.joblib["n_jobs"] = max(1, min(gpu_workers or workers, jobs))


def gpu_worker_count(cfg: Any) -> int | None:
    """Worker processes for a sweep whose jobs each take one GPU: this machine's GPUs × the config's
    ``jobs_per_gpu`` (protocol/placement.py); None for CPU jobs or a machine without a GPU."""
    from protocol.placement import gpu_workers, wants_one_gpu

    trainer = cfg.get("trainer") if cfg is not None else None
    if not trainer or not wants_one_gpu(trainer):
        return None
    import torch  # only for GPU jobs: a CPU sweep's parent still never imports torch

    gpus = torch.cuda.device_count()
    return gpu_workers(gpus, int(cfg.get("jobs_per_gpu") or 1)) if gpus else None


def joblib_settings(launcher: Any, jobs: int = 1) -> dict | None:
    """The settings Hydra's joblib launcher will pass to joblib.Parallel for a launch of ``jobs``
    jobs, or those a launcher with worker processes of its own says it will use (its
    ``worker_settings(jobs)``: hydra/launcher=fused), or None: a launcher that runs jobs in the
    calling process (basic, joblib with n_jobs=1)."""
    own = getattr(launcher, "worker_settings", None)
    if callable(own):
        return own(jobs)
    workers = joblib_workers(launcher)
    if workers is None or workers <= 1:
        return None
    from hydra_plugins.hydra_joblib_launcher._core import process_joblib_cfg

    settings = dict(launcher.joblib)
    settings["backend"] = "loky"  # as the launcher does
    process_joblib_cfg(settings)
    return settings


class WorkerWarmUp:
    """Warm the launcher's workers in a background thread; ``wait()`` before launching.

    ``checks``: items shared out among the warm-up tasks, each task's share passed to the target
    as ``checks=[...]``; an error the target raises for one (a protocol.errors.UserError) is raised
    again by ``wait()``.
    """

    def __init__(self, launcher: Any, jobs: int, target: str, checks: list | None = None, **kwargs: Any):
        self.settings = joblib_settings(launcher, jobs) if jobs > 1 else None
        self.target, self.kwargs, self.checks = target, kwargs, checks
        self.worker_pids: list[int] = []
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.completed = False   # every task ran to its end (so every check was made)
        if self.settings is None:
            return
        from joblib import effective_n_jobs

        self.tasks = min(jobs, effective_n_jobs(self.settings["n_jobs"]))
        # daemon: if the configs turn out to be wrong, the process exits without waiting for it
        self.thread = threading.Thread(target=self._run, name="warm-up-workers", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from joblib import Parallel, delayed

        from protocol.errors import UserError

        shares = [{} if self.checks is None else {"checks": self.checks[i::self.tasks]} for i in range(self.tasks)]
        try:
            self.worker_pids = Parallel(**self.settings)(delayed(call)(self.target, self.kwargs | share)
                                                         for share in shares)
            self.completed = True
        except UserError as exc:   # a job's mistake, found by a worker's check
            self.error = exc
        except Exception as exc:  # noqa: BLE001 - only an optimisation: the launch reports real errors
            log.debug("warming up the workers failed: %s", exc)

    def wait(self) -> bool:
        """Wait for the warm-up; raise the first mistake a check found. Returns whether the
        workers made every check (False: no workers, or the warm-up failed; check here)."""
        if self.thread is None:
            return False
        self.thread.join()
        if self.error is not None:
            raise self.error.with_traceback(None) from None
        return self.completed and self.checks is not None

    def cancel(self) -> None:
        """Stop the workers now (the sweep will not launch). Without this, Python's exit would
        wait for their imports to finish: seconds before a config error's exit."""
        if self.thread is not None:
            _shut_down_workers(kill=True)


def release_workers() -> None:
    """Let the worker processes go once the last job has returned: they exit (W&B's service and
    Python's teardown: ~2 s on two cores) while the parent writes the report, instead of after it,
    when the interpreter's exit would wait for them. Graceful: each finishes what it is doing.
    Called after a sweep that ended normally; a failed one keeps Python's own exit path, in which
    its partial report is built (sweeps/report/callback.py)."""
    _shut_down_workers(kill=False)


def _shut_down_workers(kill: bool) -> None:
    """Shut joblib's shared loky executor down without waiting; ``kill``: stop its workers now."""
    from joblib.externals.loky import reusable_executor  # the executor joblib shares (no public handle)

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=False, kill_workers=kill)
