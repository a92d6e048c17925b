"""What a Slurm job does on its node before Hydra runs the task: threads, resume, logs, stopping."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf, open_dict

from protocol import COMPLETED, METRICS_FILE

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def job_dir(config: DictConfig) -> Path:
    return Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)


def link_logs(folder: Path, logs: Path) -> None:
    """``<job>/.submitit`` -> this job's submitit logs (stdout, stderr, pickles) in the sweep's .submitit/."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / ".submitit"
    if not link.is_symlink() and not link.exists():
        link.symlink_to(os.path.relpath(logs, folder), target_is_directory=True)


def completed_before(folder: Path, overrides: list[str]) -> dict | None:
    """The record of a run this job already finished with the same overrides (a rerun of the sweep)."""
    try:
        record = json.loads((folder / METRICS_FILE).read_text())
        ran_with = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "overrides.yaml"))
    except (OSError, ValueError):
        return None
    return record if record.get("status") == COMPLETED and list(ran_with) == list(overrides) else None


def stopped_by(exc: BaseException | None) -> str | None:
    """Which of Slurm's signals ended the run, if any: ``SIGTERMException`` (Lightning's, at
    SIGTERM), ``UncompletedJobError`` (submitit's, at USR2 before the time limit, no requeue left)
    or ``SystemExit`` (submitit's, after requeueing the job), possibly followed by another error
    while the run wound down. By name: the parent never imports Lightning."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if type(exc).__name__ in ("SIGTERMException", "UncompletedJobError", "SystemExit"):
            return type(exc).__name__
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def prepare(config: DictConfig, task: Callable[[DictConfig], Any], job_id: str, params: dict) -> Callable:
    """Set the job's config for this node and return the task to run.

    - torch threads follow the CPUs Slurm gave the job (``SLURM_CPUS_PER_TASK``);
    - a run with a checkpoint (a requeued job, or a rerun after a kill) resumes from it
      (``ckpt_path=last``). Set in the config, not as an override: the run keeps its name;
    - submitit's signal before the time limit, with no requeue left, ends the run: recorded as
      failed because of the time limit, not as submitit's internal error.
    """
    from sweeps.slurm.lost import SlurmJobLost, record_lost, time_limit

    folder = job_dir(config)
    run_name = str(config.hydra.job.get("override_dirname") or config.hydra.job.name)
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    with open_dict(config):
        if cpus and "torch_threads" in config:
            config.torch_threads = int(cpus)
        if (folder / LAST_CHECKPOINT).is_file() and config.get("ckpt_path", "absent") is None:
            config.ckpt_path = "last"
        if OmegaConf.select(config, "callbacks.checkpoint") is not None:
            config.callbacks.slurm_stop = {"_target_": "sweeps.slurm.checkpoint.CheckpointOnStop",
                                           "dirpath": "${callbacks.checkpoint.dirpath}"}
    # Slurm's SIGTERM (scancel, preemption, requeue, time limit; SIGKILL follows after KillWait):
    # during fit, Lightning's handler stops the run at the next step, where CheckpointOnStop saves.
    # The job then exits without a result, so that the sweep waits for the requeued job, or learns
    # from sacct why it ended. The signal also reaches W&B's service, which exits at once, so the
    # run may fail on W&B's "Connection lost" before Lightning stops it: hence this flag (Lightning
    # calls it too, from its own handler). The W&B history of the stopped segment can be cut short;
    # the checkpoint and metrics.json are whole.
    sigterm = []
    signal.signal(signal.SIGTERM, lambda signum, frame: sigterm.append(signum))

    def stop() -> None:
        why = f"Slurm job {job_id} was stopped by SIGTERM (cancelled, preempted, requeued or past its time limit)"
        record_lost(folder, run_name, why)
        logging.getLogger(__name__).warning("%s; exiting without a result", why)
        logging.shutdown()
        os._exit(128 + signal.SIGTERM)

    def run(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except BaseException as exc:
            signal_error = stopped_by(exc)
            if signal_error == "UncompletedJobError":
                limit = time_limit(job_id) or f"{params.get('timeout_min')} min"
                why = (f"Slurm job {job_id} reached its time limit ({limit}; hydra.launcher.timeout_min) and was "
                       f"not requeued (hydra.launcher.max_num_timeout={params.get('max_num_timeout', 0)})")
                record_lost(folder, run_name, why)
                raise SlurmJobLost(why) from exc
            if sigterm or signal_error is not None:
                stop()
            raise
    return run
