"""The Slurm launcher: hydra-submitit-launcher's, plus a resource check before anything is
submitted, a dead job turned into a failed run (never an endless wait), and a job resumed from its
checkpoint when Slurm requeues it or the sweep is rerun.

Signals, one owner each: submitit owns USR2, which Slurm sends ``signal_delay_s`` before the
time limit; it requeues the job while ``max_num_timeout`` allows, else the run fails because of
the limit. SIGTERM (scancel, preemption, ``scontrol requeue``, the limit itself) is Lightning's
graceful stop, with a checkpoint saved there (node.py, checkpoint.py); a requeued job runs
``__call__`` again and resumes from ``checkpoints/last.ckpt``. Lightning's own Slurm auto-requeue
listens to USR1, which nothing asks Slurm to send, so it never acts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig, OmegaConf, open_dict

from sweeps.slurm import lost, node
from sweeps.slurm.resources import check_resources

log = logging.getLogger(__name__)

# This launcher's own keys (conf/hydra/launcher/slurm.yaml), not submitit's.
OWN_KEYS = ("poll_s", "state_check_s", "lost_after_s")


class SlurmLauncherImpl(SlurmLauncher):
    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.own = {key: self.params.pop(key) for key in OWN_KEYS}

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        if not self.params.get("name"):   # the sweep's name: train-<sweep folder>, e.g. train-optuna_nll
            self.params["name"] = f"{config.hydra.job.name}-{Path(str(config.hydra.sweep.dir)).name}"
        # Before the sweeper creates the sweep folder: a refused request leaves nothing behind.
        check_resources(lambda folder: self._executor(folder)._executor._make_submission_file_text("true", "check"),
                        self.params)

    def _executor(self, folder: Path | str):
        """The executor hydra-submitit-launcher's launch() builds (it builds and waits in one method)."""
        import submitit

        executor = submitit.AutoExecutor(cluster="slurm", folder=str(folder),
                                         slurm_max_num_timeout=self.params.get("max_num_timeout", 0))
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{key if key in base else f"slurm_{key}": value
                                      for key, value in self.params.items()
                                      if key not in ("submitit_folder", "max_num_timeout")})
        return executor

    def __call__(self, sweep_overrides: List[str], job_dir_key: str, job_num: int, job_id: str,
                 singleton_state: Dict[type, Singleton]) -> JobReturn:
        import submitit

        Singleton.set_state(singleton_state)
        setup_globals()
        config = self.hydra_context.config_loader.load_sweep_config(self.config, sweep_overrides)
        environment = submitit.JobEnvironment()
        with open_dict(config.hydra.job) as job:
            job.id = environment.job_id
            job.num = job_num
        node.link_logs(node.job_dir(config), environment.paths.folder)
        task = node.prepare(config, self.task_function, environment.job_id, self.params)
        return run_job(hydra_context=self.hydra_context, task_function=task, config=config,
                       job_dir_key=job_dir_key, job_subdir_key="hydra.sweep.subdir")

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit.core.utils as submitit_utils

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        executor = self._executor(self.params["submitit_folder"])
        log.info("Slurm sweep output dir: %s", sweep_dir)
        returns: dict[int, JobReturn] = {}
        todo = []                       # (number, overrides, its config)
        for number, overrides in enumerate(job_overrides, start=initial_job_idx):
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(config.hydra.job):
                config.hydra.job.num = number
            record = node.completed_before(node.job_dir(config), list(overrides))
            if record is not None:      # a rerun of the sweep redoes only what is missing
                log.info("\t#%d : %s (completed before, not submitted)", number, " ".join(filter_overrides(overrides)))
                returns[number] = JobReturn(overrides=list(overrides), working_dir=str(node.job_dir(config)),
                                            status=JobStatus.COMPLETED, _return_value=record.get("metrics"))
                continue
            log.info("\t#%d : %s", number, " ".join(filter_overrides(overrides)))
            todo.append((number, list(overrides), config))
        jobs = []
        if todo:
            state = Singleton.get_state()
            jobs = executor.map_array(self, [o for _, o, _ in todo], ["hydra.sweep.dir"] * len(todo),
                                      [n for n, _, _ in todo], [f"job_id_for_{n}" for n, _, _ in todo],
                                      [state] * len(todo))
            log.info("Submitted Slurm array %s (%d jobs)", jobs[0].job_id.split("_")[0], len(jobs))
        for job, (number, overrides, config) in zip(jobs, todo):
            lost.wait(job, **self.own)
            try:
                returns[number] = job.results()[0]
            except (submitit_utils.UncompletedJobError, submitit_utils.FailedJobError) as exc:
                run_name = config.hydra.job.get("override_dirname") or config.hydra.job.name
                returns[number] = lost.lost_return(job, exc, overrides, node.job_dir(config), run_name,
                                                   self.params.get("timeout_min"))
        return [returns[number] for number in sorted(returns)]
