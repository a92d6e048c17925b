"""What a member of a fused group leaves behind: everything a solo run (vae/train.py) leaves.

A member is one job of the launch: its folder and ``.hydra/`` (sweeps/fused/member_job.py), its
``metrics.json`` (protocol/__init__.py, the same record as train()'s), its loggers (CSV curves, its own
W&B run: vae/loggers.py), its figures (ImageLogger, drawn from the member loaded into a solo
BetaVAE), ``checkpoints/last.ckpt`` (sweeps/fused/member_checkpoint.py), its sweeper's reporting
callback, and its JobReturn. The group's loop (sweeps/fused/fused_training.py) calls the methods here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from vae.callbacks import ImageLogger
from vae.loggers import build_loggers
from vae.metrics.callback import DisentanglementMetrics
from vae.models.beta_vae import BetaVAE
from vae.preflight import build_model, preflight
from protocol import RUNNING, TRIAL_KEY
from sweeps.fused import member_checkpoint
from sweeps.fused.member_batches import member_generator
from sweeps.fused.member_job import MemberJob
from vae.run_record import (record_completed, record_ended, resolve_checkpoint, run_identity, run_params,
                            trial_callbacks)

log = logging.getLogger("vae.train")     # the summary lines a solo run logs, under the same name


class FusedMember:
    """One member, prepared as train() prepares a run: seeded, its model built, its loggers open."""

    def __init__(self, job: MemberJob, datamodule, device: torch.device, started: float):
        self.job, self.cfg, self.started = job, job.task_cfg, started
        self.output_dir = job.output_dir
        self.done = False
        cfg = self.cfg
        with job.active():    # the job's HydraConfig: its interpolations, run name and choices
            preflight(cfg)
            L.seed_everything(cfg.seed, workers=True, verbose=False)
            self.model = build_model(cfg, datamodule).to(device)
            # The member's noise and binarisation stream, continuing its solo run's global RNG.
            self.generator = member_generator(device)
            self.run_name, group = run_identity()
            reporting = trial_callbacks(cfg)
            self.reporter = reporting[0] if reporting else None
            if reporting and cfg[TRIAL_KEY].get("study_name"):
                group = str(cfg[TRIAL_KEY].study_name)
            self.resume = self._load_checkpoint(resolve_checkpoint(cfg.ckpt_path, self.output_dir))
            self.loggers = build_loggers(cfg, self.output_dir, self.run_name, group, quiet=True,
                                         resume_step=self.resume["step"] if self.resume else None, concurrent=True)
            self.record = {"run_name": self.run_name, "params": run_params(cfg, self.model, datamodule),
                           "status": RUNNING}
            callbacks = [instantiate(node) for node in (cfg.callbacks or {}).values() if node is not None]
        self.images = next((cb for cb in callbacks if isinstance(cb, ImageLogger)), None)
        self.disentanglement = next((cb for cb in callbacks if isinstance(cb, DisentanglementMetrics)), None)
        checkpoint = next((cb for cb in callbacks if isinstance(cb, ModelCheckpoint)), None)
        self.checkpoint_path = Path(checkpoint.dirpath) / "last.ckpt" if checkpoint is not None else None
        self.val: dict = {}

    def _load_checkpoint(self, path: Path | None) -> dict | None:
        if path is None:
            return None
        ckpt = member_checkpoint.read(path)
        self.model.load_state_dict(ckpt["state_dict"])
        state = (ckpt.get(member_checkpoint.FUSED_KEY) or {}).get("generator_state")
        if state is not None:
            self.generator.set_state(state)
        return {"step": int(ckpt["global_step"]), "optimizer_state": ckpt["optimizer_states"][0]}

    # --- during training ---------------------------------------------------------------------
    def log(self, metrics: dict[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)
            logger.save()

    def validated(self, metrics: dict[str, float], step: int) -> None:
        """Log a validation's metrics and report them to the sweeper (may raise TrialPruned)."""
        self.val = metrics
        self.log(metrics, step)
        if self.reporter is not None and hasattr(self.reporter, "report"):
            self.reporter.report(step, metrics[self.reporter.monitor])

    def load_into_model(self, state_dict: dict) -> BetaVAE:
        self.model.load_state_dict(state_dict)
        return self.model

    def figures(self, state_dict: dict, datamodule, step: int, final: bool) -> None:
        if self.images is not None:
            self.images.write_figures(self.load_into_model(state_dict), datamodule, self.loggers, step, final)

    def save_checkpoint(self, step: int, epoch: int, loops: dict, state_dict: dict, optimizer_state: dict) -> None:
        if self.checkpoint_path is None:
            return
        member_checkpoint.write(self.checkpoint_path, step=step, epoch=epoch, loops=loops, state_dict=state_dict,
                                optimizer_state=optimizer_state, hyper_parameters=self.model.hparams,
                                generator_state=self.generator.get_state())

    # --- the end: completed, failed or pruned ----------------------------------------------
    def complete(self, test: dict, step: int, datamodule, state_dict: dict):
        scores = {}
        if self.disentanglement is not None:   # on data with factors, as a solo run's test phase does
            model = self.load_into_model(state_dict)
            model.test_results = {}
            scores = self.disentanglement.score(model, datamodule) or {}
            scores |= {f"test/{k}": v for k, v in model.test_results.items()}
        metrics = {**{f"test/{k}": v for k, v in test.items()}, **scores, **self.val,
                   "steps": step, "wall_time_s": round(time.perf_counter() - self.started, 3)}
        self.log({k: v for k, v in metrics.items() if k.startswith("test/") and isinstance(v, float)}, step)
        self.figures(state_dict, datamodule, step, final=True)
        record_completed(self.output_dir, self.record, metrics, self._wandb())
        self._finish(failed=False)
        return self.job.end(result=metrics)

    def fail(self, exc: BaseException):
        """Failed (or pruned: stopped on purpose), recorded as train() records it."""
        pruned = record_ended(self.output_dir, self.record, exc)
        self._finish(failed=not pruned)
        if not pruned:
            log.warning("%s: %s", self.run_name, self.record["error"])
        return self.job.end(error=exc)

    def _wandb(self) -> WandbLogger | None:
        return next((lg for lg in self.loggers if isinstance(lg, WandbLogger)), None)

    def _finish(self, failed: bool) -> None:
        self.done = True
        for logger in self.loggers:
            logger.finalize("failed" if failed else "success")
        wandb_logger = self._wandb()
        if wandb_logger is not None and wandb_logger._experiment is not None:
            # Several runs are open in this process: finish this one, not wandb.run.
            wandb_logger.experiment.finish(exit_code=1 if failed else 0)


