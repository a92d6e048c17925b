"""Check a launcher's Slurm resources before any job is submitted.

Slurm itself is the judge: the exact batch script submitit would submit goes through
``sbatch --test-only`` (validated and scheduled on paper, never queued). A refusal becomes one
line that names the request and what the cluster's partitions offer.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from protocol.errors import ConfigError

SHOWN = ("partition", "cpus_per_task", "mem_gb", "gpus_per_node", "gres", "timeout_min", "nodes", "tasks_per_node")
POSITIVE = ("timeout_min", "cpus_per_task", "mem_gb", "gpus_per_node", "nodes", "tasks_per_node",
            "array_parallelism")


def requested(params: dict[str, Any]) -> str:
    return " ".join(f"{key}={params[key]}" for key in SHOWN if params.get(key) is not None)


def partitions() -> str:
    """``debug* (2 CPUs, 8000 MB, gres none, time limit infinite)``, one entry a partition (* the default)."""
    proc = subprocess.run(["sinfo", "-h", "-o", "%P|%c|%m|%G|%l"], capture_output=True, text=True, timeout=60)
    entries = []
    for line in sorted(set(proc.stdout.split("\n")) - {""}):
        name, cpus, memory, gres, limit = line.split("|")
        entries.append(f"{name} ({cpus} CPUs, {memory} MB, gres {'none' if gres == '(null)' else gres}, "
                       f"time limit {limit.lower()})")
    return "; ".join(entries) or "none"


def check_resources(make_script, params: dict[str, Any]) -> None:
    """``make_script(folder)``: the sbatch script submitit would write, with its logs in ``folder``."""
    for key in POSITIVE:
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"hydra.launcher.{key}={value} is invalid; it must be a whole number of at least 1")
    if shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher=slurm needs Slurm's sbatch, which is not on PATH; run the sweep on the "
                          "cluster's login node, or choose a local launcher (hydra/launcher=joblib)")
    with tempfile.TemporaryDirectory(prefix="slurm-check-") as folder:
        script = Path(folder) / "check.sh"
        script.write_text(make_script(Path(folder)))
        proc = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        errors = [line.removeprefix("sbatch: error: ").strip() for line in proc.stderr.splitlines()
                  if "error" in line]
        reason = errors[-1] if errors else proc.stderr.strip() or f"exit {proc.returncode}"
        raise ConfigError(f"Slurm refuses hydra.launcher's resources ({requested(params)}): {reason}; "
                          f"partitions: {partitions()}")
