"""The suite's own machinery: pytest-xdist's groups must hold, or module fixtures meant to be built
once (the Slurm cluster, a report's sweep) are built on every worker."""

import os
import subprocess
import sys

GROUPED = '''
import os
import pytest

pytestmark = pytest.mark.xdist_group("together")


@pytest.mark.parametrize("i", range(4))
def test_worker(i):
    with open(os.environ["WORKERS_LOG"], "a") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
'''


def test_an_xdist_group_runs_in_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    log = tmp_path / "workers.log"
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist",
                             "loadgroup", "-q", "test_grouped.py"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "WORKERS_LOG": str(log)}, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]
    workers = log.read_text().split()
    assert len(workers) == 4 and len(set(workers)) == 1, workers
