"""What a run leaves behind, written the same way by train() and by any other trainer of this
library's models (the fused launcher's members): its name and group, its params, its sweeper's
reporting callback, and its end: metrics.json, the W&B summary and the summary line.

The record's keys are the run/sweeper contract in protocol/__init__.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from protocol import COMPLETED, FAILED, METRICS_FILE, PRUNED, TRIAL_KEY, is_pruned
from protocol.atomic import atomic_write_json
from vae.cli import is_multirun
from vae.errors import ConfigError
from vae.loggers import describe_wandb_run
from vae.secrets import redact

log = logging.getLogger("vae.train")     # the summary line is the run's, whichever trainer wrote it


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


def run_params(cfg: DictConfig, model: L.LightningModule, datamodule: L.LightningDataModule) -> dict:
    """The settings a reader compares runs by (the full config is in .hydra/config.yaml)."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    params = {"beta": cfg.beta, "beta_eff": getattr(model, "beta_eff", cfg.beta), "latent_size": cfg.latent_size,
              "reduction": cfg.loss.reduction, "binarize": OmegaConf.select(cfg, "data.binarize"),
              "seed": cfg.seed, "max_steps": cfg.trainer.max_steps, "iwae_samples": cfg.eval.iwae_samples,
              "nll_images": cfg.eval.nll_images,
              "model": choices.get("model") or type(model).__name__,
              "data": datamodule.info.name}
    return {k: v for k, v in params.items() if v is not None}


def trial_callbacks(cfg: DictConfig) -> list:
    """The callback a sweeper asked this job to report through (protocol/__init__.py), if any."""
    trial = cfg.get(TRIAL_KEY)
    if trial is None or trial.get("_target_") is None:
        return []
    return [instantiate(trial)]


def test_metrics(trainer: L.Trainer, model: L.LightningModule) -> dict:
    """Every ``test/*`` scalar the model logged, plus the extras a model keeps in ``test_results``
    (lists such as the KL per latent dim)."""
    logged = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    extras = {f"test/{k}": v for k, v in getattr(model, "test_results", {}).items()}
    return {**logged, **extras}


def summary_line(run_name: str, metrics: dict) -> str:
    shown = [("−ELBO", "test/neg_elbo"), ("NLL", "test/nll_iwae"), ("rate", "test/rate"),
             ("distortion", "test/distortion"), ("active units", "test/active_units")]
    parts = [f"{label} {metrics[key]:.{0 if key == 'test/active_units' else 2}f}" for label, key in shown
             if isinstance(metrics.get(key), float)]
    return f"{run_name}: test {', '.join(parts)} ({metrics['wall_time_s']:.1f} s)"


def record_completed(output_dir: Path, record: dict, metrics: dict, wandb_logger: WandbLogger | None) -> None:
    """A completed run: metrics.json, the W&B summary, the summary line and where the W&B run is."""
    record.update(status=COMPLETED, metrics=metrics)
    atomic_write_json(output_dir / METRICS_FILE, record)
    if wandb_logger is not None:
        wandb_logger.experiment.summary.update(metrics | {"beta_eff": record["params"]["beta_eff"]})
    log.info(summary_line(record["run_name"], metrics))
    where = describe_wandb_run(wandb_logger) if wandb_logger is not None else None
    if where:
        log.info(where)


def record_ended(output_dir: Path, record: dict, exc: BaseException) -> bool:
    """A run stopped by ``exc``: failed, or pruned by a sweeper's pruner (stopped on purpose, not
    a failure); metrics.json says which and why. Returns whether it was pruned."""
    pruned = is_pruned(exc)
    record.update(status=PRUNED if pruned else FAILED, error=f"{type(exc).__name__}: {exc}".strip())
    atomic_write_json(output_dir / METRICS_FILE, record)
    return pruned
