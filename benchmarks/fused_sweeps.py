"""hydra/launcher=fused as a user runs it: whole sweep commands (imports, W&B offline, tests,
figures, report included), measured in one run against the default launcher and a lean reference.

    python -m benchmarks.fused_sweeps              # ~10 min on 2 cores
    python -m benchmarks.fused_sweeps --quick      # tiny budgets: checks the script, numbers mean nothing

Cases:
- used-by: `train.py -m beta=0,0.01,1 latent_size=2,10 hydra/launcher=fused` vs six lean plain
  trainings one after another (benchmarks/reference.py, target ≤ 0.8×) and vs the same
  command with the default launcher (joblib, jobs side by side; target ≥ 1.5× faster); and each
  fused member's test −ELBO against the same job's under the default launcher.
- grid64: 8 β × 8 latent sizes, seed budget (1024 steps), fused vs default launcher (target ≥ 2.5×).
The two launchers' sweeps alternate, ``--repeats`` times each (used-by: 3, grid64: 1), and the
fastest of each is kept, as benchmarks/speed.py does: on a shared machine the minimum is the run
least disturbed by other processes. Nothing here asserts a time; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.reference import lean_training
from vae.config import PROJECT_ROOT
from vae.data.mnist import MNISTDataModule
from vae.data.mnist_files import ensure_mnist

USED_BY = ["beta=0,0.01,1", "latent_size=2,10"]
GRID64 = ["beta=0,0.001,0.01,0.1,0.5,1,2,4", "latent_size=2,3,4,6,8,10,16,32"]


def sweep(args: list[str], workdir: Path, expected: int) -> tuple[float, dict]:
    """Wall time of one sweep command in a fresh process, and {run name: test −ELBO}."""
    shutil.rmtree(workdir, ignore_errors=True)
    started = time.time()
    subprocess.run([sys.executable, str(PROJECT_ROOT / "train.py"), "-m", *args, f"hydra.sweep.dir={workdir}"],
                   cwd=PROJECT_ROOT, check=True, capture_output=True,
                   env={**os.environ, "WANDB_MODE": "offline", "CI": "1"})
    elapsed = time.time() - started
    records = [json.loads(p.read_text()) for p in workdir.glob("*/metrics.json")]
    assert [r["status"] for r in records] == ["completed"] * expected, [r["status"] for r in records]
    return elapsed, {r["run_name"]: r["metrics"]["test/neg_elbo"] for r in records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", default="used-by,grid64")
    parser.add_argument("--repeats", type=int, default=3, help="used-by sweeps per launcher (grid64: 1)")
    opts = parser.parse_args()
    steps = 64 if opts.quick else 1024
    budget = [f"trainer.max_steps={steps}"] + (["trainer.val_check_interval=32"] if opts.quick else [])
    scratch = Path(tempfile.mkdtemp(prefix="fused-sweeps-"))
    lines = [f"load average at start: {os.getloadavg()}"]
    if "used-by" in opts.cases:
        ensure_mnist(PROJECT_ROOT / "data", download=False)
        data = MNISTDataModule(data_dir=str(PROJECT_ROOT / "data"), download=False)
        data.setup()
        train_x = data.split("train").images
        lean_training(train_x, 64)
        plain = min(sum(lean_training(train_x, steps, latent, beta)[0]
                        for beta in (0.0, 0.01, 1.0) for latent in (2, 10)) for _ in range(2))
        fused_times, default_times = [], []
        for _ in range(opts.repeats):
            elapsed, fused_elbo = sweep(USED_BY + budget + ["hydra/launcher=fused"], scratch / "fused6", 6)
            fused_times.append(elapsed)
            elapsed, default_elbo = sweep(USED_BY + budget, scratch / "default6", 6)
            default_times.append(elapsed)
        fused, default = min(fused_times), min(default_times)
        lines.append(f"used-by runs (s): fused {', '.join(f'{t:.1f}' for t in fused_times)}; "
                     f"default {', '.join(f'{t:.1f}' for t in default_times)}; fastest kept")
        lines += [f"used-by fused sweep {fused:.1f} s | six lean plain trainings {plain:.1f} s | ratio "
                  f"{fused / plain:.2f}x (target <= 0.8x)",
                  f"used-by default launcher {default:.1f} s | fused is {default / fused:.2f}x faster (target >= 1.5x)"]
        for name in sorted(fused_elbo):
            diff = (fused_elbo[name] - default_elbo[name]) / default_elbo[name]
            lines.append(f"  {name}: test -ELBO fused {fused_elbo[name]:.2f} vs default {default_elbo[name]:.2f} "
                         f"({100 * diff:+.1f}%)")
    if "grid64" in opts.cases:
        grid = GRID64 + budget + ["report.enabled=false", "logger=csv"]
        fused, _ = sweep(grid + ["hydra/launcher=fused"], scratch / "fused64", 64)
        default, _ = sweep(grid, scratch / "default64", 64)
        lines.append(f"grid64 (csv logger, no report) fused {fused:.1f} s | default launcher {default:.1f} s | "
                     f"fused is {default / fused:.2f}x faster (target >= 2.5x)")
    lines.append(f"load average at end: {os.getloadavg()}")
    print("\n".join(lines))
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
