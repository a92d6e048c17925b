"""Optuna on a real Slurm cluster: trials as Slurm jobs, pruned from inside the job; and several
Optuna workers submitted as a Slurm array sharing one study on a real PostgreSQL server."""

import json
import shlex
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from conftest import PROJECT_ROOT, PYTHON, TINY, run_cli

# One cluster per session: under pytest-xdist every Slurm test runs in the same worker.
pytestmark = pytest.mark.xdist_group("slurm")


@pytest.mark.slow
def test_optuna_trials_run_as_slurm_jobs_and_are_pruned_there(slurm_cluster, tmp_path):
    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = run_cli("hparams_search=optuna_nll", *TINY, "logger=csv", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                     f"hydra.sweeper.storage={db}", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                     "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=2", "hydra.launcher.state_check_s=2",
                     # A pruner whose verdict is certain: prune any trial reporting a −ELBO above 1 nat.
                     "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=1.0", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = optuna.load_study(study_name="optuna_nll", storage=db).get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    for t in trials:
        out = Path(t.user_attrs["output_dir"])
        (step,) = t.intermediate_values                              # reported from the Slurm job, stopped
        record = json.loads((out / "metrics.json").read_text())
        assert record["status"] == "pruned" and f"pruned at step {step}" in record["error"]
        assert (out / ".submitit").is_symlink()                     # ran as a Slurm job
        assert OmegaConf.load(out / ".hydra" / "config.yaml").torch_threads == 2   # = cpus_per_task


def wait_for_array(job: str, timeout: float = 400) -> dict[str, str]:
    """{task id: final state} once every task of the array has ended (accounting says so)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", job],
                             capture_output=True, text=True, check=True, timeout=60).stdout
        states = dict(line.split("|") for line in out.split())
        if states and not any(s in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING") for s in states.values()) \
                and not subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
            return states
        time.sleep(1)
    raise AssertionError(f"Slurm array {job} still running after {timeout} s")


@pytest.mark.slow
def test_two_optuna_workers_as_slurm_jobs_share_a_postgres_study_and_finish_exactly_n_trials(
        slurm_cluster, fresh_postgres, tmp_path):
    worker = [PYTHON, str(PROJECT_ROOT / "train.py"), "hparams_search=optuna_nll", *TINY, "logger=csv",
              f"hydra.sweeper.storage={fresh_postgres}", "hydra.sweeper.study_name=slurm",
              "hydra.sweeper.n_trials=4", "hydra/launcher=basic", f"hydra.sweep.dir={tmp_path / 'sweep'}",
              "report.enabled=false"]
    # As a user submits them: one array, a worker per task, all starting at the same moment.
    job = subprocess.run(["sbatch", "--parsable", "--array=0-1", "--cpus-per-task=1", "--mem=2G",
                          f"--chdir={PROJECT_ROOT}", f"--output={tmp_path}/worker_%a.log",
                          f"--wrap={shlex.join(worker)}"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    states = wait_for_array(job)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted(tmp_path.glob("worker_*.log")))
    assert states == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}, logs

    trials = optuna.load_study(study_name="slurm", storage=fresh_postgres).get_trials()
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    finished = by_state[TrialState.COMPLETE] + by_state[TrialState.PRUNED]
    assert len(finished) == 4, [(t.number, t.state) for t in trials]
    assert by_state[TrialState.RUNNING] == [] and by_state[TrialState.WAITING] == []
    # Any FAIL is a worker that lost the race for the last trial and stood down (not counted).
    assert all(t.user_attrs.get("surplus") for t in by_state[TrialState.FAIL]), logs
    assert len({t.user_attrs["worker"]["pid"] for t in finished}) == 2     # both workers ran trials
