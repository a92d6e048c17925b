"""The prepared device check (benchmarks/gpu_check.py) refuses to run without a GPU in one line."""

import os
import subprocess
import sys

from vae.config import PROJECT_ROOT


def test_without_a_gpu_the_device_check_prints_one_line_and_exits_2():
    # No device visible to CUDA, whatever the machine has: the check must say so, not trace back.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: benchmarks/gpu_check.py needs a CUDA GPU"), result.stderr
