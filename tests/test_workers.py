"""The joblib launcher's workers are started and warmed while the sweep's configs are checked."""

from __future__ import annotations

import os
import time
from dataclasses import asdict

import pytest
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from hydra_plugins.hydra_joblib_launcher.config import JobLibLauncherConf
from joblib import Parallel, delayed

from sweeps.workers.launcher_workers import WorkerWarmUp, joblib_settings, limit_workers


def make_joblib_launcher(n_jobs: int) -> JoblibLauncher:
    """Hydra's joblib launcher as its config group builds it (its defaults, this n_jobs)."""
    settings = {k: v for k, v in asdict(JobLibLauncherConf(n_jobs=n_jobs)).items() if k != "_target_"}
    return JoblibLauncher(**settings)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a killed child not yet reaped is a zombie
        return stat.read().split()[2] != "Z"


def test_jobs_run_in_the_workers_the_warm_up_started():
    launcher = make_joblib_launcher(n_jobs=2)
    warm_up = WorkerWarmUp(launcher, jobs=6, target="slow_import.noop")
    warm_up.wait()
    assert len(set(warm_up.worker_pids)) == 2 and os.getpid() not in warm_up.worker_pids
    # what Hydra's joblib launcher then runs: the same settings reuse the same processes
    job_pids = Parallel(**joblib_settings(launcher))(delayed(os.getpid)() for _ in range(6))
    assert set(job_pids) <= set(warm_up.worker_pids)  # no new, cold process


def test_the_fused_launchers_workers_are_warmed_the_same_way_and_reused():
    from hydra_plugins.betavae_launchers.fused_launcher import FusedLauncher

    launcher = FusedLauncher(workers=2)
    warm_up = WorkerWarmUp(launcher, jobs=6, target="slow_import.noop")
    warm_up.wait()
    assert len(set(warm_up.worker_pids)) == 2 and os.getpid() not in warm_up.worker_pids
    # what the launcher then runs its groups with (sweeps/fused/fused_launcher.py: _run_in_workers)
    job_pids = Parallel(**launcher.worker_settings(6))(delayed(os.getpid)() for _ in range(6))
    assert set(job_pids) <= set(warm_up.worker_pids)
    assert FusedLauncher(workers=1).worker_settings(6) is None          # groups in this process
    assert FusedLauncher(workers=8).worker_settings(3)["n_jobs"] == 3    # at most one per job


@pytest.mark.parametrize("launcher, jobs", [(BasicLauncher(), 6),          # jobs run in this process
                                            (make_joblib_launcher(n_jobs=1), 6),  # joblib runs them here too
                                            (make_joblib_launcher(n_jobs=2), 1)])  # one job: no worker to wait for
def test_no_warm_up_without_worker_processes_to_share(launcher, jobs):
    warm_up = WorkerWarmUp(launcher, jobs=jobs, target="slow_import.noop")
    assert warm_up.thread is None
    warm_up.wait()  # and waiting is a no-op
    warm_up.cancel()


def test_cancel_stops_the_workers_when_the_sweep_will_not_launch():
    warm_up = WorkerWarmUp(make_joblib_launcher(n_jobs=2), jobs=6, target="slow_import.noop")
    warm_up.wait()
    pids = warm_up.worker_pids
    assert all(alive(pid) for pid in pids)
    warm_up.cancel()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in pids)


def test_the_workers_share_out_the_checks_and_every_one_is_made():
    warm_up = WorkerWarmUp(make_joblib_launcher(n_jobs=2), jobs=6, target="slow_import.check",
                           checks=[f"job{i}" for i in range(6)])
    assert warm_up.wait() is True      # made by the workers: the parent need not check
    assert warm_up.tasks == 2


def test_a_mistake_a_worker_finds_is_raised_by_wait_as_the_same_error():
    from vae.errors import ConfigError

    warm_up = WorkerWarmUp(make_joblib_launcher(n_jobs=2), jobs=6, target="slow_import.check",
                           checks=["job0", "job1", "job2", "bad", "job4", "job5"])
    with pytest.raises(ConfigError, match="^job 'bad' is wrong; fix it$"):
        warm_up.wait()
    warm_up.cancel()


def test_without_workers_wait_says_the_checks_are_still_to_make():
    assert WorkerWarmUp(BasicLauncher(), jobs=6, target="slow_import.check", checks=["bad"]).wait() is False


def test_a_warmed_worker_has_the_data_loaded(tmp_path, monkeypatch, data_dir):
    """vae.warm_up.prepare_worker, run here in-process: it fills the split cache the jobs read from."""
    import vae.data.base
    from vae.warm_up import prepare_worker

    monkeypatch.setattr(vae.data.base, "_SPLITS_CACHE", {})
    data = {"_target_": "vae.data.mnist.MNISTDataModule", "data_dir": str(data_dir), "batch_size": 64,
            "val_size": 10000, "split_seed": 0}
    prepare_worker(data=data, wandb_mode=None)
    assert len(vae.data.base._SPLITS_CACHE) == 1
    (splits,) = vae.data.base._SPLITS_CACHE.values()
    assert splits["train"].images.shape == (50000, 1, 28, 28)
    # a data folder without MNIST: nothing loaded, nothing downloaded, no error
    prepare_worker(data={**data, "data_dir": str(tmp_path)}, wandb_mode=None)
    assert len(vae.data.base._SPLITS_CACHE) == 1 and not any(tmp_path.iterdir())


@pytest.mark.parametrize("n_jobs, cores, jobs, workers", [(-1, 64, 6, 6),    # every core, but one per job
                                                          (-1, 2, 6, 2),     # this machine
                                                          (-2, 64, 100, 63),  # joblib's "all but one"
                                                          (3, 64, 6, 3)])    # an explicit count stands
def test_no_more_worker_processes_than_jobs(monkeypatch, n_jobs, cores, jobs, workers):
    import joblib._parallel_backends

    monkeypatch.setattr(joblib._parallel_backends, "cpu_count", lambda *a, **k: cores)  # what n_jobs<0 counts
    launcher = make_joblib_launcher(n_jobs=n_jobs)
    limit_workers(launcher, jobs=jobs)
    assert launcher.joblib["n_jobs"] == workers
