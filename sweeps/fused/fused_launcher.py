"""``hydra/launcher=fused``: the jobs of a launch that can share one stacked model train as one.

``launch`` composes every job's config (as Hydra's basic launcher does), sorts the jobs into groups
by ``fusion_key`` (what members of a stack must share), trains each group of two or more as one
model (sweeps/fused/fused_training.py; each member still a full job: sweeps/fused/fused_run.py) and runs
every other job as the basic launcher would, with ``run_job`` and the task function. The returns
come back in the order of the jobs.

Worker processes: with ``workers`` > 1 (default: one per usable core, at most one per group) each
group and each job on its own runs in a joblib worker process (as Hydra's joblib launcher runs
jobs), and the fusible jobs are shared out into at least that many groups. Why processes and not
one stack on every core: a parallel region waits for its slowest thread at every operation, so
when another process (W&B's service, a figure) takes a core, threads slow down many times over,
and one process also draws, evaluates and logs its members on one core while the others idle
(BENCHMARKS.md, "Fused sweeps"). Processes side by side keep every core busy with all of it. A sweeper that asks for results as each member
ends (``launch_numbered`` with ``on_return``: the Optuna sweeper) trains its group in this process.

What members may differ in: β, latent size, seed, learning rate, loss.reduction, gradient clipping,
their sweeper's trial (the engine is exact for these: sweeps/fused/stacked_vae.py). Everything else
in the config must be equal (data, networks, steps, batch size, intervals, evaluation, callbacks'
settings, logger), and the model must be BetaVAE with MLP networks and Adam.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

FUSIBLE_MODEL = "vae.models.beta_vae.BetaVAE"
FUSIBLE_NETWORKS = ("vae.models.networks.MLPEncoder", "vae.models.networks.MLPDecoder")
FUSIBLE_CALLBACKS = ("lightning.pytorch.callbacks.ModelCheckpoint", "vae.callbacks.ImageLogger",
                     "vae.metrics.callback.DisentanglementMetrics")
# Per member: these may differ within a group. Also left out of the key: where a job writes.
MEMBER_KEYS = ("beta", "latent_size", "seed", "seeds", "loss", "ckpt_path", "hydra", "paths", "optuna", "progress_bar",
               "torch_threads", "report", "optimized_metric", "task_name")
MEMBER_MODEL_KEYS = ("beta", "latent_size", "reduction", "gradient_clip_val")
WRITE_KEYS = ("dirpath", "output_dir")


def fusion_key(cfg: DictConfig, output_dir: Path) -> tuple[Optional[str], Optional[str]]:
    """(key, None) for a job (its folder: ``output_dir``) that can be fused with every other job
    of the same key, or (None, why not) for one that runs on its own."""
    model = cfg.get("model") or {}
    if model.get("_target_") != FUSIBLE_MODEL:
        return None, f"model {model.get('_target_')} is not {FUSIBLE_MODEL}"
    networks = (OmegaConf.select(cfg, "model.encoder._target_"), OmegaConf.select(cfg, "model.decoder._target_"))
    if networks != FUSIBLE_NETWORKS:
        return None, f"networks {networks[0]}/{networks[1]} are not the MLP ones"
    optimizer = OmegaConf.to_container(model.get("optimizer") or {}, resolve=True)
    if optimizer.get("_target_") != "torch.optim.Adam" or set(optimizer) - {"_target_", "_partial_", "lr"}:
        return None, "the optimiser is not torch.optim.Adam with an lr only"
    trainer = cfg.trainer
    if not isinstance(trainer.get("val_check_interval"), int):
        return None, "trainer.val_check_interval is not a number of steps"
    if trainer.get("devices") not in (1, "1", [0], "auto") or trainer.get("strategy") not in (None, "auto"):
        return None, "the trainer uses several devices or a strategy"
    if str(trainer.get("precision", "32-true")) not in ("32", "32-true"):
        return None, f"trainer.precision={trainer.precision} (fused groups train in float32)"
    if int(trainer.get("accumulate_grad_batches") or 1) != 1:
        return None, "trainer.accumulate_grad_batches is set"
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is not None and node.get("_target_") not in FUSIBLE_CALLBACKS:
            return None, f"callbacks.{name} ({node.get('_target_')}) runs only in a Lightning Trainer"
    if cfg.get("ckpt_path") not in (None, "last"):
        return None, "ckpt_path names a file (resume from another run's checkpoint: trained on its own)"
    shared = OmegaConf.to_container(cfg, resolve=False)
    for key in MEMBER_KEYS:
        shared.pop(key, None)
    for key in MEMBER_MODEL_KEYS:
        shared["model"].pop(key, None)
    shared["model"]["optimizer"].pop("lr", None)
    shared["trainer"].pop("gradient_clip_val", None)
    for node in (shared.get("callbacks") or {}).values():
        for key in WRITE_KEYS:
            (node or {}).pop(key, None)
    # Members resume together only from the same step (a rerun with ckpt_path=last).
    shared["resume_step"] = resume_step(cfg, output_dir)
    return json.dumps(shared, sort_keys=True, default=str), None


def resume_step(cfg: DictConfig, output_dir: Path) -> Optional[int]:
    if cfg.get("ckpt_path") != "last":
        return None
    path = output_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        return -1          # no checkpoint: the job fails with train()'s message, in its group
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def usable_cores() -> int:
    """The cores this process may use, as joblib counts them for Hydra's joblib launcher (CPU
    affinity and cgroup quotas: a container given 2 of 64 cores gets 2 workers, not 64)."""
    from joblib import cpu_count

    return cpu_count()


class FusedLauncherImpl:
    def __init__(self, fuse: Optional[int] = None, torch_threads: Optional[int] = None,
                 workers: Optional[int] = None) -> None:
        self.fuse, self.torch_threads, self.workers = fuse, torch_threads, workers
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self.launch_numbered(job_overrides, [initial_job_idx + i for i in range(len(job_overrides))])

    def worker_count(self, jobs: int) -> int:
        """Worker processes for a launch of ``jobs`` jobs: ``workers``, or one per usable core (GPU
        jobs: GPUs × jobs_per_gpu); at most one per job. 1: everything runs in this process."""
        from sweeps.workers.launcher_workers import gpu_worker_count

        # GPU jobs: GPUs × jobs_per_gpu workers (each pinned to its GPU: fused_device.py)
        wanted = self.workers if self.workers is not None else (gpu_worker_count(self.config) or usable_cores())
        return max(1, min(int(wanted), jobs))

    def worker_settings(self, jobs: int) -> Optional[dict]:
        """joblib.Parallel's settings for the worker processes of such a launch, or None if it runs
        in this process. A sweeper that warms workers up before launching (sweeps/workers/launcher_workers.py) gets
        the same processes: joblib reuses one loky executor for the same settings."""
        workers = self.worker_count(jobs)
        return {"n_jobs": workers, "backend": "loky"} if workers > 1 else None

    def launch_numbered(self, job_overrides: Sequence[Sequence[str]], job_numbers: Sequence[int],
                        on_return: Optional[Callable[[int, JobReturn], None]] = None) -> list[JobReturn]:
        """Run the jobs, job i numbered ``job_numbers[i]`` (its folder under hydra.sweep.subdir);
        ``on_return(i, ret)`` is called as each job ends (a sweeper tells results as they come)."""
        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        configs = []
        for overrides, num in zip(job_overrides, job_numbers):
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.hydra.job.id = num
                cfg.hydra.job.num = num
            configs.append(cfg)
        from sweeps.fused.member_job import MemberJob

        jobs = [MemberJob(cfg, self.hydra_context, self.task_function) for cfg in configs]
        settings = self.worker_settings(len(jobs)) if on_return is None else None
        groups, alone = self._groups(jobs, settings["n_jobs"] if settings else 1)
        log.info("Launching %d jobs: %d fused group(s) of %s, %d on their own", len(configs), len(groups),
                 "/".join(str(len(g)) for g in groups) or "-", len(alone))
        returns: dict[int, JobReturn] = {}

        def done(i: int, ret: JobReturn) -> None:
            returns[i] = ret
            if on_return is not None:
                on_return(i, ret)

        for group in groups:
            for i in group:
                log.info("\t#%d : %s (fused)", job_numbers[i], " ".join(filter_overrides(job_overrides[i])))
        for i in alone:
            log.info("\t#%d : %s", job_numbers[i], " ".join(filter_overrides(job_overrides[i])))
        if settings is not None:
            self._run_in_workers(settings, groups, alone, configs, done)
            return [returns[i] for i in range(len(configs))]
        for group in groups:
            self._run_group([jobs[i] for i in group], lambda pos, ret, group=group: done(group[pos], ret))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        for i in alone:
            done(i, _run_alone(self.hydra_context, self.task_function, configs[i]))
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [returns[i] for i in range(len(configs))]

    def _run_in_workers(self, settings: dict, groups: list[list[int]], alone: list[int], configs: list,
                        done: Callable[[int, JobReturn], None]) -> None:
        """Every group and every job on its own as a task of a worker process, the largest first;
        each task's returns are handed to ``done`` as it ends."""
        from hydra.core.singleton import Singleton
        from joblib import Parallel, delayed

        tasks = sorted([list(g) for g in groups] + [[i] for i in alone], key=len, reverse=True)
        threads = self.torch_threads or max(1, usable_cores() // settings["n_jobs"])
        state = Singleton.get_state()
        results = Parallel(**settings, return_as="generator_unordered")(
            delayed(_worker_task)(task, [configs[i] for i in task], len(task) > 1, self.hydra_context,
                                  self.task_function, state, threads) for task in tasks)
        for task, returns in results:
            for i, ret in zip(task, returns):
                done(i, ret)

    def _groups(self, jobs: list, workers: int = 1) -> tuple[list[list[int]], list[int]]:
        by_key: dict[str, list[int]] = {}
        alone = []
        for i, job in enumerate(jobs):
            key, why = fusion_key(job.config, job.output_dir)
            if key is None:
                log.info("job %d runs on its own: %s", job.config.hydra.job.num, why)
                alone.append(i)
            else:
                by_key.setdefault(key, []).append(i)
        groups = []
        for members in by_key.values():
            # fuse, or the jobs shared out evenly among the workers (one group in this process)
            size = self.fuse or -(-len(members) // workers)
            for start in range(0, len(members), size):
                chunk = members[start:start + size]
                if len(chunk) > 1:
                    groups.append(chunk)
                else:
                    alone.extend(chunk)   # one member gains nothing from a stack: an ordinary run
        return groups, sorted(alone)

    def _run_group(self, jobs: list, on_return: Callable[[int, JobReturn], None]) -> None:
        import torch

        from vae.preflight import build_datamodule
        from sweeps.fused.fused_device import gpu_group_sizes, training_device
        from sweeps.fused.fused_run import FusedMember
        from sweeps.fused.fused_training import ThreadProbe, train_group

        started = time.perf_counter()
        # null: measured on the group's first steps (ThreadProbe); on a GPU the threads barely matter.
        torch.set_num_threads(self.torch_threads or 1)
        configs = [job.config for job in jobs]
        position = {id(job): i for i, job in enumerate(jobs)}
        members = []
        for i, job in enumerate(jobs):
            job.start()
        configure_log(configs[0].hydra.job_logging, configs[0].hydra.verbose)   # logs as a job's
        for name in ("lightning.pytorch", "lightning.fabric"):   # as train() without a progress bar
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            with jobs[0].active():
                datamodule = build_datamodule(jobs[0].task_cfg)
                datamodule.prepare_data()
                datamodule.setup()
            device = training_device(jobs[0].task_cfg, Path(str(jobs[0].config.hydra.sweep.dir)))
        except Exception as exc:   # noqa: BLE001 - the data of every member: each job fails with it
            for i, job in enumerate(jobs):
                on_return(i, job.end(error=exc))
            return
        for i, job in enumerate(jobs):
            try:
                members.append(FusedMember(job, datamodule, device, started))
            except Exception as exc:   # noqa: BLE001 - this member's config: it fails alone
                on_return(i, job.end(error=exc))
        if not members:
            return
        probe = ThreadProbe(usable_cores()) if self.torch_threads is None and device.type == "cpu" else None
        sizes = [len(members)]
        if device.type == "cuda" and self.fuse is None:
            sizes = gpu_group_sizes(members, datamodule, device)
        start = 0
        for size in sizes:   # one stack after another when the group does not fit on the device at once
            train_group(members[start:start + size], datamodule, device,
                        lambda m, ret: on_return(position[id(m.job)], ret), probe)
            start += size


def _run_alone(hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> JobReturn:
    """A job that is not fused, as Hydra's basic and joblib launchers run one."""
    return run_job(hydra_context=hydra_context, task_function=task_function, config=config,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")


def _worker_task(task: list[int], configs: list, fused: bool, hydra_context: HydraContext,
                 task_function: TaskFunction, singleton_state: dict, torch_threads: int):
    """In a worker process: a fused group, or one job as Hydra's joblib launcher runs it.
    Returns (task, the JobReturns in the task's order)."""
    from hydra.core.singleton import Singleton

    setup_globals()
    Singleton.set_state(singleton_state)
    if not fused:
        return task, [_run_alone(hydra_context, task_function, configs[0])]
    from sweeps.fused.member_job import MemberJob

    jobs = [MemberJob(cfg, hydra_context, task_function) for cfg in configs]
    returns: dict[int, JobReturn] = {}
    FusedLauncherImpl(torch_threads=torch_threads)._run_group(jobs, returns.__setitem__)
    return task, [returns[i] for i in range(len(jobs))]
