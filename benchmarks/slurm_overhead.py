"""Submit-to-first-step overhead of a job on Slurm (hydra/launcher=slurm), from a finished sweep.

    python -m benchmarks.slurm_overhead SWEEP_DIR      # a sweep that ran with logger=wandb

Per job: Slurm's submit time (sacct) to the job's first logged training step (its W&B offline
run's first history row), split at Slurm's start time into queue wait and start-up (srun, Python,
imports, Hydra composition, data, model). Needs SLURM_CONF pointing at the cluster that ran it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path


def slurm_times(job_id: str) -> tuple[float, float]:
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "Submit,Start", "-j", job_id],
                         capture_output=True, text=True, check=True).stdout.split()[0]
    submit, start = (datetime.fromisoformat(t).timestamp() for t in out.split("|"))
    return submit, start


def first_step(run_dir: Path) -> tuple[float, int]:
    wandb = Path(sys.executable).parent / "wandb"
    out = subprocess.run([str(wandb), "leet", "inspect", "--json", str(run_dir)],
                         capture_output=True, text=True, check=True).stdout
    row = next(json.loads(line)["history"]["item"] for line in out.splitlines() if '"history"' in line)
    return row["_timestamp"], int(row["trainer/global_step"])


def main(sweep_dir: Path) -> None:
    print(f"{'job':>4} {'slurm id':>9} {'queued (s)':>11} {'start-up (s)':>13} {'submit→first step (s)':>22}")
    totals = []
    for job in sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        job_id = os.readlink(job / ".submitit").rsplit("/", 1)[-1]
        submit, start = slurm_times(job_id)
        stepped, _ = first_step(sorted((job / "wandb").glob("offline-run-*"))[0])
        totals.append(stepped - submit)
        print(f"{job.name:>4} {job_id:>9} {start - submit:>11.1f} {stepped - start:>13.1f} {stepped - submit:>22.1f}")
    print(f"median submit→first step: {sorted(totals)[len(totals) // 2]:.1f} s over {len(totals)} jobs")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
