"""A fused group's member as a Hydra job: the two halves of ``hydra.core.utils.run_job``.

``run_job`` runs a job from start to end in one call: set the job's Hydra config, make its folder,
save ``.hydra/{config,hydra,overrides}.yaml``, call the callbacks' ``on_job_start``, run the task,
build the ``JobReturn``, call ``on_job_end``. The members of a fused group run at the same time
in one loop, so each member's job is opened before the group trains and closed when that member
ends (completed, failed, pruned). The steps are run_job's, with Hydra's own helpers, in its order.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobRuntime, JobStatus, _save_config, env_override
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write


class MemberJob:
    """One job of a launch: ``config`` is its composed sweep config (hydra.job.num set)."""

    def __init__(self, config: DictConfig, hydra_context: HydraContext, task_function: TaskFunction,
                 job_dir_key: str = "hydra.sweep.dir", job_subdir_key: str = "hydra.sweep.subdir"):
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        with self.active():
            output_dir = str(OmegaConf.select(config, job_dir_key))
            subdir = str(OmegaConf.select(config, job_subdir_key))
            with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
                config.hydra.runtime.output_dir = os.path.abspath(os.path.join(output_dir, subdir))
        with self.active():
            self.hydra_cfg = copy.deepcopy(HydraConfig.instance().cfg)   # the hydra node, as run_job saves it
        self.output_dir = Path(config.hydra.runtime.output_dir)
        self.task_cfg = copy.deepcopy(config)
        with read_write(self.task_cfg), open_dict(self.task_cfg):
            del self.task_cfg["hydra"]
        self.ended: JobReturn | None = None

    def active(self):
        """A context in which HydraConfig.get() is this job's (run names, choices, interpolations)."""
        return _HydraConfigAs(self.config)

    def start(self) -> None:
        """run_job up to the task: the folder, .hydra/*.yaml, on_job_start."""
        with self.active():
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if self.config.hydra.output_subdir is not None:
                hydra_output = self.output_dir / str(self.config.hydra.output_subdir)
                _save_config(self.task_cfg, "config.yaml", hydra_output)
                _save_config(self.hydra_cfg, "hydra.yaml", hydra_output)
                _save_config(self.config.hydra.overrides.task, "overrides.yaml", hydra_output)
            with env_override(self.hydra_cfg.hydra.job.env_set):
                self.hydra_context.callbacks.on_job_start(config=self.config, task_function=self.task_function)

    def end(self, result: Any = None, error: BaseException | None = None) -> JobReturn:
        """run_job after the task: the JobReturn (the task's value, or its exception), on_job_end."""
        ret = JobReturn()
        ret.cfg, ret.hydra_cfg = self.task_cfg, copy.deepcopy(self.hydra_cfg)
        ret.overrides = OmegaConf.to_container(self.config.hydra.overrides.task)
        ret.working_dir = os.getcwd()
        if error is None:
            ret.return_value, ret.status = result, JobStatus.COMPLETED
        else:
            ret.return_value, ret.status = error, JobStatus.FAILED
        with self.active():
            ret.task_name = JobRuntime.instance().get("name")
            with env_override(self.hydra_cfg.hydra.job.env_set):
                self.hydra_context.callbacks.on_job_end(config=self.config, job_return=ret)
        self.ended = ret
        return ret


class _HydraConfigAs:
    def __init__(self, config: DictConfig):
        self.config = config

    def __enter__(self):
        self.previous = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(self.config)

    def __exit__(self, *exc):
        HydraConfig.instance().cfg = self.previous
