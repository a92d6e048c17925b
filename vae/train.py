"""``train(cfg)``: one run, from a composed config to its test metrics.

Data flows one way: config -> datamodule and model -> trainer -> metrics (metrics.json, loggers).
``train.py`` calls this under Hydra; tests call it directly.
"""

from __future__ import annotations

import logging
import math
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

from vae.atomic import atomic_write_json
from vae.callbacks import StepProgressBar
from vae.cli import is_multirun
from vae.data.mnist import MNISTDataModule
from vae.errors import ConfigError
from vae.loggers import build_loggers, describe_wandb_run, finish_loggers
from vae.models.beta_vae import BetaVAE
from vae.preflight import build_network, preflight
from vae.secrets import redact
from sweeper.pruning import pruning_callback

log = logging.getLogger(__name__)


def build_datamodule(cfg: DictConfig) -> MNISTDataModule:
    return MNISTDataModule(**OmegaConf.to_container(cfg.data, resolve=True))


def build_model(cfg: DictConfig, image_shape: tuple[int, ...]) -> BetaVAE:
    shapes = {"image_shape": image_shape, "latent_size": cfg.latent_size}
    return BetaVAE(
        gradient_clip_val=(cfg.trainer or {}).get("gradient_clip_val"),
        encoder=build_network(cfg.model.encoder, "model.encoder", **shapes),
        decoder=build_network(cfg.model.decoder, "model.decoder", **shapes),
        latent_size=cfg.latent_size, beta=cfg.beta, reduction=cfg.loss.reduction,
        lr=cfg.model.optimizer.lr, iwae_samples=cfg.eval.iwae_samples, nll_images=cfg.eval.nll_images,
        image_shape=image_shape)


def run_identity() -> tuple[str, str | None]:
    """(run name, group): the job's overrides, e.g. ``beta=0.01,latent_size=2``, and in a
    multirun the sweep folder's name, so that W&B groups a sweep's runs together."""
    if not HydraConfig.initialized():
        return "train", None
    hc = HydraConfig.get()
    # Hydra resolves interpolations in override_dirname: ${oc.env:...} would put a secret in the name.
    name = redact(hc.job.override_dirname) or hc.job.name
    group = Path(hc.sweep.dir).name if is_multirun() else None
    return name, group


def interactive(cfg: DictConfig) -> bool:
    """A progress bar only for a person at a terminal: not in multirun, CI, or a pipe."""
    if cfg.progress_bar != "auto":
        return cfg.progress_bar == "rich"
    return sys.stderr.isatty() and not is_multirun() and not os.environ.get("CI")


def build_trainer(cfg: DictConfig, output_dir: Path, loggers: list, extra_callbacks: tuple = (),
                  datamodule: MNISTDataModule | None = None) -> L.Trainer:
    callbacks = [instantiate(node) for node in (cfg.callbacks or {}).values() if node is not None]
    callbacks += list(extra_callbacks)
    show_progress = interactive(cfg)
    if show_progress:
        callbacks.append(StepProgressBar())
    else:
        for name in ("lightning.pytorch", "lightning.fabric"):  # "GPU available: False" and similar
            logging.getLogger(name).setLevel(logging.WARNING)
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    # The model steps its optimiser itself (see BetaVAE.__init__) and applies the clip value;
    # Lightning refuses the Trainer argument in that mode, so it is handed over, not dropped.
    trainer_kwargs.pop("gradient_clip_val", None)
    # Validate at least once, at the end, even when max_steps is below the usual interval.
    interval = trainer_kwargs.get("val_check_interval")
    if isinstance(interval, int):
        trainer_kwargs["val_check_interval"] = min(interval, cfg.trainer.max_steps)
    # Several batches per Lightning loop iteration (data.batches_per_fetch), as many as divide every
    # step interval, so validation, logs, checkpoints and figures fall on the same steps as with one.
    fetch = batches_per_fetch(cfg.data.batches_per_fetch, trainer_kwargs, callbacks)
    if datamodule is not None:
        datamodule.batches_per_fetch = fetch
    for key in ("val_check_interval", "log_every_n_steps"):  # Lightning counts these in fetches
        if isinstance(trainer_kwargs.get(key), int):
            trainer_kwargs[key] //= fetch
    # Checkpoint only where the config asks: with callbacks=none Lightning would add its own.
    checkpointing = any(isinstance(cb, ModelCheckpoint) for cb in callbacks)
    return L.Trainer(**trainer_kwargs, logger=loggers or False, callbacks=callbacks,
                     default_root_dir=str(output_dir), enable_progress_bar=show_progress,
                     enable_checkpointing=checkpointing)


def batches_per_fetch(requested: int, trainer_kwargs: dict, callbacks: list) -> int:
    """The largest group size ≤ requested that divides every interval counted in steps, and
    max_steps: a shorter last group would make Lightning write the previous step's logs again."""
    intervals = [trainer_kwargs.get("max_steps"), trainer_kwargs.get("val_check_interval"),
                 trainer_kwargs.get("log_every_n_steps", 50),
                 *(getattr(cb, "_every_n_train_steps", None) for cb in callbacks),
                 *(getattr(cb, "every_n_steps", None) for cb in callbacks)]
    return math.gcd(requested, *(i for i in intervals if isinstance(i, int) and i > 0))


def resolve_checkpoint(ckpt_path: str | None, output_dir: Path) -> Path | None:
    """ckpt_path=last means this run folder's checkpoints/last.ckpt: to resume a killed run,
    rerun its command with hydra.run.dir=<its folder> ckpt_path=last."""
    if ckpt_path is None:
        return None
    path = output_dir / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        hint = ("; point hydra.run.dir (or hydra.sweep.dir) at the run to resume" if ckpt_path == "last"
                else "; give the path of a .ckpt file, or ckpt_path=last")
        raise ConfigError(f"ckpt_path={ckpt_path}: no checkpoint at {path}{hint}")
    return path


def run_params(cfg: DictConfig, model: BetaVAE) -> dict:
    """The settings a reader compares runs by (the full config is in .hydra/config.yaml)."""
    return {"beta": cfg.beta, "beta_eff": model.beta_eff, "latent_size": cfg.latent_size,
            "reduction": cfg.loss.reduction, "binarize": cfg.data.binarize, "seed": cfg.seed,
            "max_steps": cfg.trainer.max_steps, "iwae_samples": cfg.eval.iwae_samples,
            "nll_images": cfg.eval.nll_images,
            "model": cfg.model.encoder._target_.rsplit(".", 1)[-1]}


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
    model = build_model(cfg, datamodule.image_shape)
    run_name, group = run_identity()
    # An Optuna trial (hydra/sweeper=optuna with trial_key=optuna): report for pruning, and group
    # the W&B runs by study; cfg.optuna (study, trial number) lands in the W&B config as well.
    trial_cfg = OmegaConf.to_container(cfg.optuna, resolve=True) if cfg.get("optuna") else None
    pruning = [cb for cb in [pruning_callback(trial_cfg)] if cb is not None] if trial_cfg else []
    if trial_cfg and trial_cfg.get("study_name"):
        group = str(trial_cfg["study_name"])
    checkpoint = resolve_checkpoint(cfg.ckpt_path, output_dir)
    resume_step = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"] if checkpoint else None
    loggers = build_loggers(cfg, output_dir, run_name, group, quiet=not interactive(cfg), resume_step=resume_step)
    wandb_logger = next((lg for lg in loggers if isinstance(lg, WandbLogger)), None)
    record = {"run_name": run_name, "params": run_params(cfg, model), "status": "running"}
    failed = True
    try:
        trainer = build_trainer(cfg, output_dir, loggers, extra_callbacks=pruning, datamodule=datamodule)
        trainer.fit(model, datamodule=datamodule, ckpt_path=checkpoint)
        val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        trainer.test(model, datamodule=datamodule, verbose=False)
        metrics = {**{f"test/{k}": v for k, v in model.test_results.items()}, **val,
                   "steps": trainer.global_step, "wall_time_s": round(time.perf_counter() - started, 3)}
        record.update(status="completed", metrics=metrics)
        atomic_write_json(output_dir / "metrics.json", record)
        if wandb_logger is not None:
            wandb_logger.experiment.summary.update(metrics | {"beta_eff": model.beta_eff})
        log.info("%s: test −ELBO %.2f, NLL(k=%d) %.2f, rate %.2f, distortion %.2f, active units %d (%.1f s)",
                 run_name, metrics["test/neg_elbo"], model.iwae_samples, metrics["test/nll_iwae"],
                 metrics["test/rate"], metrics["test/distortion"], metrics["test/active_units"],
                 metrics["wall_time_s"])
        where = describe_wandb_run(wandb_logger) if wandb_logger is not None else None
        if where:
            log.info(where)
        failed = False
        return metrics
    except BaseException as exc:
        # Recorded, not dropped: a report or sweeper reading this folder sees why the run failed.
        # Pruned by the Optuna sweeper's pruner: stopped on purpose, not a failure.
        pruned = type(exc).__name__ == "TrialPruned" and type(exc).__module__.startswith("optuna")
        record.update(status="pruned" if pruned else "failed", error=f"{type(exc).__name__}: {exc}".strip())
        atomic_write_json(output_dir / "metrics.json", record)
        failed = not pruned          # a pruned run's W&B run ends normally, its history kept
        raise
    finally:
        finish_loggers(loggers, failed=failed)
