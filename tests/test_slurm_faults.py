"""Faults on a real Slurm cluster: a job cancelled (scancel), a job past its time limit, a job
requeued (what Slurm does to a preempted job with PreemptMode=REQUEUE), all in one sweep."""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import PROJECT_ROOT, PYTHON, user_env
from test_multirun_wandb import inspect

# One cluster per session: under pytest-xdist every Slurm test runs in the same worker.
pytestmark = pytest.mark.xdist_group("slurm")

# Four jobs told apart by their step budgets: done quickly, cancelled, timed out, requeued.
STEPS = {"done": 31, "cancelled": 100001, "timed_out": 100002, "requeued": 1500}


def slurm(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def wait_until(check, what: str, timeout: float = 180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def job_id(folder: Path) -> str | None:
    link = folder / ".submitit"
    return os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else None


def global_step(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]


@pytest.mark.slow
def test_cancelled_timed_out_and_requeued_jobs_end_as_failed_runs_or_resume(slurm_cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.Popen(
        [PYTHON, str(PROJECT_ROOT / "train.py"), "-m", f"trainer.max_steps={','.join(map(str, STEPS.values()))}",
         "debug=smoke", "trainer.val_check_interval=200", "logger=wandb", "hydra/launcher=slurm",
         "hydra.launcher.timeout_min=5", "hydra.launcher.signal_delay_s=15", "hydra.launcher.state_check_s=2",
         f"hydra.sweep.dir={sweep_dir}"],
        cwd=PROJECT_ROOT, env=user_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        done, cancelled, timed_out, requeued = (sweep_dir / str(i) for i in range(4))
        # A one-minute limit for one job (an admin's scontrol update; timeout_min is per sweep).
        slurm("scontrol", "update", f"JobId={wait_until(lambda: job_id(timed_out), 'job 2')}", "TimeLimit=1")

        checkpoint = requeued / "checkpoints" / "last.ckpt"
        wait_until(checkpoint.is_file, "job 3's first checkpoint")
        slurm("scontrol", "requeue", job_id(requeued))
        wait_until(lambda: slurm("squeue", "-h", "-j", job_id(requeued), "-o", "%T") == "PENDING", "requeued job")
        stopped_at = global_step(checkpoint)                       # saved when Slurm stopped it
        # Slurm holds a requeued job back for two minutes; release it sooner, but not within the
        # second of the requeue: slurmd then still counts the job's credential as revoked and kills
        # the new start ("Job credential revoked"), which made this test flaky.
        slurm("scontrol", "update", f"JobId={job_id(requeued)}", "StartTime=now+3")

        wait_until((cancelled / "checkpoints" / "last.ckpt").is_file, "job 1's first checkpoint")
        slurm("scancel", job_id(cancelled))
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)

    # The sweep ends (no endless wait), failing with the first dead job's reason in one line.
    assert proc.returncode == 2, err[-3000:]
    assert f"error: Slurm job {job_id(cancelled)} was cancelled" in err
    records = {name: json.loads((sweep_dir / str(i) / "metrics.json").read_text()) for i, name in enumerate(STEPS)}
    assert records["done"]["status"] == "completed"
    assert records["cancelled"]["status"] == "failed"
    assert records["cancelled"]["error"].startswith(f"Slurm job {job_id(cancelled)} was cancelled")
    assert records["timed_out"]["status"] == "failed"
    # Whichever comes first: submitit's USR2 before the limit (the job records it) or the limit
    # itself (Slurm's TIMEOUT, read from accounting).
    assert records["timed_out"]["error"].startswith(f"Slurm job {job_id(timed_out)} reached its time limit (")
    assert "1:00" in records["timed_out"]["error"]
    # The requeued job resumed from the step Slurm stopped it at, and finished.
    assert records["requeued"]["status"] == "completed", records["requeued"]
    assert records["requeued"]["metrics"]["steps"] == 1500
    assert 0 < stopped_at < 1500
    first, resumed = sorted((requeued / "wandb").glob("offline-run-*"))
    assert first.name.rsplit("-", 1)[1] == resumed.name.rsplit("-", 1)[1]     # one W&B run, continued
    steps = [r["history"]["item"]["trainer/global_step"] for r in inspect(resumed) if r["type"] == "history"]
    # A step is logged under its 0-based index: the resumed run's first step is step `stopped_at`.
    assert stopped_at <= min(steps) < stopped_at + 5, (stopped_at, min(steps))
    # The report lists every run with its state and reason.
    with open(sweep_dir / "report" / "runs.csv") as f:
        rows = {row["job"]: row for row in csv.DictReader(f)}
    assert [rows[str(i)]["state"] for i in range(4)] == ["completed", "failed", "failed", "completed"]
    assert "was cancelled" in rows["1"]["error"] and "reached its time limit" in rows["2"]["error"]
