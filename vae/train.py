"""``train(cfg)``: one run, from a composed config to its test metrics.

Data flows one way: config -> datamodule and model -> trainer -> metrics (metrics.json, loggers).
``train.py`` calls this under Hydra; tests call it directly.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from protocol.placement import placed_devices, wants_one_gpu
from protocol.worker_slot import worker_slot
from vae.callbacks import StepProgressBar
from vae.cli import is_multirun
from vae.loggers import build_loggers, finish_loggers
from vae.preflight import build_datamodule, build_model, preflight
from vae.run_record import (record_completed, record_ended, resolve_checkpoint, run_identity, run_params,
                            test_metrics, trial_callbacks)
from protocol import RUNNING, TRIAL_KEY
from vae.speed import batch_groups

log = logging.getLogger(__name__)


def interactive(cfg: DictConfig) -> bool:
    """A progress bar only for a person at a terminal: not in multirun, CI, or a pipe."""
    if cfg.progress_bar != "auto":
        return cfg.progress_bar == "rich"
    return sys.stderr.isatty() and not is_multirun() and not os.environ.get("CI")


def place_on_gpu(cfg: DictConfig, trainer_kwargs: dict) -> None:
    """A multirun's one-GPU job trains on its worker's own GPU of this machine's (protocol/placement.py):
    joblib's workers would otherwise all take GPU 0. Nothing changes on a machine without several GPUs."""
    if not is_multirun() or not wants_one_gpu(trainer_kwargs):
        return
    gpus = torch.cuda.device_count()
    if gpus <= 1:
        return
    worker = worker_slot(Path(HydraConfig.get().sweep.dir) / ".workers")
    trainer_kwargs["devices"] = placed_devices(trainer_kwargs, worker, gpus, int(cfg.jobs_per_gpu))
    log.info("worker %d trains on GPU %d of %d", worker, trainer_kwargs["devices"][0], gpus)


def build_trainer(cfg: DictConfig, output_dir: Path, loggers: list, model: L.LightningModule,
                  datamodule: L.LightningDataModule, extra_callbacks: tuple = ()) -> L.Trainer:
    callbacks = [instantiate(node) for node in (cfg.callbacks or {}).values() if node is not None]
    callbacks += list(extra_callbacks)
    show_progress = interactive(cfg)
    if show_progress:
        callbacks.append(StepProgressBar())
    else:
        for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available: False" and similar
            logging.getLogger(name).setLevel(logging.WARNING)
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    if not model.automatic_optimization:
        # A model that steps its optimiser itself applies the clip value (BetaVAE takes it from
        # its config); Lightning refuses the Trainer argument in that mode.
        trainer_kwargs.pop("gradient_clip_val", None)
    # Validate at least once, at the end, even when max_steps is below the usual interval.
    interval = trainer_kwargs.get("val_check_interval")
    if isinstance(interval, int):
        trainer_kwargs["val_check_interval"] = min(interval, cfg.trainer.max_steps)
    # Opt-in speed device: only a model that takes batch groups gets them (vae/speed/batch_groups.py).
    batch_groups.configure(model, datamodule, trainer_kwargs, callbacks, cfg.speed.batches_per_fetch)
    place_on_gpu(cfg, trainer_kwargs)
    # Checkpoint only where the config asks: with callbacks=none Lightning would add its own.
    checkpointing = any(isinstance(cb, ModelCheckpoint) for cb in callbacks)
    return L.Trainer(**trainer_kwargs, logger=loggers or False, callbacks=callbacks,
                     default_root_dir=str(output_dir), enable_progress_bar=show_progress,
                     enable_checkpointing=checkpointing)


def train(cfg: DictConfig) -> dict:
    """Train, test, and return the metrics (flat ``test/*``, ``val/*`` keys, as sweepers read them).

    ``<output_dir>/metrics.json`` holds them with the run's name and key params.
    """
    preflight(cfg)
    started = time.perf_counter()
    torch.set_num_threads(cfg.torch_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    model = build_model(cfg, datamodule)
    run_name, group = run_identity()
    # A sweeper's trial (e.g. hydra/sweeper=optuna with trial_key=optuna): its reporting callback,
    # and the W&B runs grouped by study; the trial's node lands in the W&B config as well.
    reporting = trial_callbacks(cfg)
    if reporting and cfg[TRIAL_KEY].get("study_name"):
        group = str(cfg[TRIAL_KEY].study_name)
    checkpoint = resolve_checkpoint(cfg.ckpt_path, output_dir)
    resume_step = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"] if checkpoint else None
    loggers = build_loggers(cfg, output_dir, run_name, group, quiet=not interactive(cfg), resume_step=resume_step)
    wandb_logger = next((lg for lg in loggers if isinstance(lg, WandbLogger)), None)
    record = {"run_name": run_name, "params": run_params(cfg, model, datamodule), "status": RUNNING}
    failed = True
    try:
        trainer = build_trainer(cfg, output_dir, loggers, model, datamodule, extra_callbacks=reporting)
        trainer.fit(model, datamodule=datamodule, ckpt_path=checkpoint)
        val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        trainer.test(model, datamodule=datamodule, verbose=False)
        metrics = {**test_metrics(trainer, model), **val,
                   "steps": trainer.global_step, "wall_time_s": round(time.perf_counter() - started, 3)}
        record_completed(output_dir, record, metrics, wandb_logger)
        failed = False
        return metrics
    except BaseException as exc:
        # Recorded, not dropped: a report or sweeper reading this folder sees why the run failed.
        failed = not record_ended(output_dir, record, exc)   # a pruned run's W&B run ends normally
        raise
    finally:
        finish_loggers(loggers, failed=failed)
