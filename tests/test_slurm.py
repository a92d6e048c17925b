"""hydra/launcher=slurm on a real Slurm cluster (tests/slurm_cluster.py): the used-by grid sweep,
a rerun that redoes only what is missing, and resources checked before anything is submitted."""

import json
import subprocess
import time
from pathlib import Path

import pytest

from conftest import run_cli
from test_multirun_wandb import inspect

# One cluster per session: under pytest-xdist every Slurm test runs in the same worker.
pytestmark = pytest.mark.xdist_group("slurm")

SLURM = ["hydra/launcher=slurm", "hydra.launcher.state_check_s=2"]


def accounted_jobs() -> list[str]:
    out = subprocess.run(["sacct", "-a", "-X", "-n", "-P", "-o", "JobID,JobName", "-S", "now-1days"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return out.split()


def job_folders(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


@pytest.mark.parametrize("bad, says", [
    ("hydra.launcher.partition=nope", "invalid partition specified: nope"),
    ("hydra.launcher.cpus_per_task=64", "Requested node configuration is not available"),
    ("hydra.launcher.gpus_per_node=1", "Invalid generic resource (gres) specification"),
    ("hydra.launcher.timeout_min=0", "hydra.launcher.timeout_min=0 is invalid"),
])
def test_a_resource_the_cluster_refuses_is_one_line_before_anything_is_submitted(slurm_cluster, tmp_path, bad, says):
    before = accounted_jobs()
    sweep_dir = tmp_path / "sweep"
    result = run_cli("-m", "beta=0,1", "debug=smoke", *SLURM, bad, f"hydra.sweep.dir={sweep_dir}", timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr
    if "is invalid" not in says:       # the cluster's offer is named with the refusal
        assert f"partitions: {slurm_cluster.partition}* (4 CPUs, 8000 MB, gres none" in lines[0]
    assert not sweep_dir.exists() and accounted_jobs() == before


@pytest.mark.slow
def test_used_by_sweep_runs_as_a_slurm_array_and_a_rerun_redoes_only_what_is_missing(slurm_cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    command = ["-m", "beta=0,0.01,1", "latent_size=2,10", "debug=smoke", "logger=wandb", *SLURM,
               f"hydra.sweep.dir={sweep_dir}"]
    result = run_cli(*command, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = job_folders(sweep_dir)
    assert [p.name for p in jobs] == [str(i) for i in range(6)]
    array = {str(p.joinpath(".submitit").readlink()).split("/")[-1].split("_")[0] for p in jobs}
    assert len(array) == 1, array                                   # one array, one task per job
    for job in jobs:
        record = json.loads((job / "metrics.json").read_text())
        assert record["status"] == "completed" and record["metrics"]["steps"] == 30
        logs = job / ".submitit"                                    # Slurm's logs beside the job
        assert logs.is_symlink() and list(logs.glob("*_log.out")) and list(logs.glob("*_log.err"))
        (run_dir,) = (job / "wandb").glob("offline-run-*")
        summary = inspect(run_dir, "--summary")
        assert summary["state"] == "finished" and summary["name"] == record["run_name"]
        assert summary["summary"]["test/nll_iwae"] == pytest.approx(record["metrics"]["test/nll_iwae"])
    assert (sweep_dir / "report.html").is_file() and "6 runs: 6 completed" in result.stdout + result.stderr
    names = dict(line.split("|") for line in accounted_jobs())
    assert names[f"{array.pop()}_0"] == "train-sweep"               # the Slurm job is named after the sweep

    # A lost job folder: the rerun submits that job alone and leaves the others as they were.
    kept = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in jobs if p.name != "4"}
    subprocess.run(["rm", "-rf", str(sweep_dir / "4")], check=True)
    result = run_cli(*command, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert log.count("completed before, not submitted") == 5, log[-3000:]
    assert "(1 jobs)" in log
    assert json.loads((sweep_dir / "4" / "metrics.json").read_text())["status"] == "completed"
    assert {p.name: (p / "metrics.json").stat().st_mtime_ns for p in job_folders(sweep_dir) if p.name != "4"} == kept


def test_a_requeued_job_is_still_on_its_way_in_the_controllers_record(slurm_cluster, tmp_path):
    """The sweep's wait reads a job's end from the controller (sweeps/slurm/lost.py): a requeued
    job must never look ended there, a cancelled one must, and a purged id reads as ""."""
    from sweeps.slurm.lost import ENDED, controller_state

    def sbatch(*args: str) -> str:
        return subprocess.run(["sbatch", "--parsable", "--requeue", "-c", "1", "--mem=100", "-o", str(tmp_path / "%j.out"),
                               *args, "--wrap", "sleep 60"], capture_output=True, text=True, check=True,
                              timeout=60).stdout.strip()

    def settle(job: str, want) -> list[str]:
        seen = []
        for _ in range(300):
            seen.append(controller_state(job))
            if want(seen[-1]):
                return seen
            time.sleep(0.1)
        raise AssertionError(f"job {job}: {seen[-5:]}")

    job = sbatch()
    settle(job, lambda s: s == "RUNNING")
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
    states = settle(job, lambda s: s == "PENDING")
    assert not any(s in ENDED for s in states), states          # COMPLETING, then PENDING: never final
    subprocess.run(["scancel", job], check=True, timeout=60)
    assert settle(job, lambda s: s in ENDED)[-1] == "CANCELLED"
    assert controller_state("999999") == ""
