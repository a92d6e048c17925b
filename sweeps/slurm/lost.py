"""Waiting for Slurm jobs, and turning a job that died into a failed run with its reason.

submitit learns a job's end from its result file, or from ``sacct``. A job killed hard
(``scancel``, SIGKILL, the node lost, the time limit reached) writes no result: its sacct state is
all there is. submitit then raises from ``results()``; here that becomes a failed run whose
``metrics.json`` says why, and the sweep goes on. Without accounting (``sacct`` unanswered) and
with the job gone from the queue, the job is declared lost after ``lost_after_s`` instead of
waiting forever.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus

from protocol.atomic import atomic_write_json
from protocol.errors import UserError
from protocol import COMPLETED, FAILED, METRICS_FILE, PRUNED

log = logging.getLogger(__name__)

REASONS = {
    "CANCELLED": "was cancelled (scancel, or its process killed)",
    "OUT_OF_MEMORY": "ran out of memory (raise hydra.launcher.mem_gb)",
    "NODE_FAIL": "lost its node",
    "PREEMPTED": "was preempted and not requeued",
    "BOOT_FAIL": "never started (its node failed to boot)",
    "DEADLINE": "passed its deadline",
}


class SlurmJobLost(UserError):
    """A Slurm job that ended without a result; its run is recorded as failed."""


# Final states in the controller's record; any other (PENDING, RUNNING, COMPLETING, REQUEUED,
# SUSPENDED, ...) means the job is still on its way, a requeued one included.
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
         "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT")


def controller_state(job_id: str) -> str | None:
    """The job's state in the controller's own record (``squeue --states=all``, which keeps an
    ended job for MinJobAge); "" once the controller has purged it; None when squeue gives no
    answer (a busy controller times out), which says nothing either way."""
    try:
        proc = subprocess.run(["squeue", "--states=all", "-h", "-j", job_id, "-o", "%T"],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        return "" if "Invalid job id" in proc.stderr else None
    lines = proc.stdout.split()
    return lines[0].upper() if lines else ""


ENDED_CONFIRM_S = 20.0


def wait(job, poll_s: float, state_check_s: float, lost_after_s: float) -> None:
    """Until the job has a result, or has ended in Slurm for good.

    Not submitit's own wait: it asks sacct ever more rarely (up to every 10 min), so a dead job
    would hold the sweep for minutes; and sacct shows a requeued job's killed attempt (FAILED or
    REQUEUED) as if it were the job's end. The controller's record decides: while it holds the job,
    only a final state there ends the wait; once it has purged the job, accounting (sacct) does, and
    without accounting the job is declared lost after ``lost_after_s``. Either way the end must
    stand for ENDED_CONFIRM_S before it counts, so that a result file written as the job ends
    (seen late on a shared file system) is still picked up.
    """
    last_check = gone_since = ended_since = None
    while not job.paths.result_pickle.exists():
        now = time.time()
        if last_check is None or now - last_check >= state_check_s:
            last_check = now
            state = controller_state(job.job_id)
            if state == "":                         # purged by the controller: ask accounting
                state = job.watcher.get_state(job.job_id, mode="force").upper()
                if state == "UNKNOWN":              # no accounting answer either
                    gone_since = gone_since or now
                    if now - gone_since >= lost_after_s:
                        log.warning("Slurm job %s is neither queued nor in accounting after %.0f s: "
                                    "taken for lost", job.job_id, now - gone_since)
                        return
                    state = None
            if state:
                ended = state.split()[0] in ENDED
                ended_since = (ended_since or now) if ended else None
                if ended_since is not None and now - ended_since >= ENDED_CONFIRM_S:
                    log.info("Slurm job %s ended (%s) without a result", job.job_id, state)
                    return
        time.sleep(poll_s)


def time_limit(job_id: str) -> str | None:
    """The job's time limit as accounting holds it, e.g. ``00:01:00`` (an admin may have changed it)."""
    proc = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "Timelimit", "-j", job_id],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else None


def reason(job, exc: BaseException, timeout_min: int | None) -> str:
    state = job.state.upper().split(" ")[0]      # e.g. "CANCELLED by 0"
    what = REASONS.get(state)
    if state == "TIMEOUT":
        what = f"reached its time limit ({time_limit(job.job_id) or f'{timeout_min} min'}; hydra.launcher.timeout_min)"
    if what is None:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        what = f"ended without a result (Slurm state {state}): {lines[-1] if lines else type(exc).__name__}"
    return f"Slurm job {job.job_id} {what}"


def record_lost(folder: Path, run_name: str, why: str) -> None:
    """metrics.json says failed, with the reason Slurm gives. Only a completed or pruned run's own
    record stands: anything else the job wrote as it was stopped (SIGTERMException, or W&B's
    "Connection lost" when Slurm's signal also reached its service) says less."""
    path = folder / METRICS_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {"run_name": run_name}
    if record.get("status") in (COMPLETED, PRUNED):
        return
    folder.mkdir(parents=True, exist_ok=True)
    record.update(status=FAILED, error=why)
    atomic_write_json(path, record)


def lost_return(job, exc: BaseException, overrides: list[str], folder: Path, run_name: str,
                timeout_min: int | None) -> JobReturn:
    why = reason(job, exc, timeout_min)
    record_lost(folder, run_name, why)
    log.error("%s; its run %s is recorded as failed in %s", why, run_name, folder / METRICS_FILE)
    return JobReturn(overrides=list(overrides), working_dir=str(folder), task_name=None,
                     status=JobStatus.FAILED, _return_value=SlurmJobLost(
                         f"{why}; recorded in {folder / METRICS_FILE}. Rerun the same command with "
                         f"hydra.sweep.dir={folder.parent} to redo only what is missing"))
