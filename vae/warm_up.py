"""What a sweep's worker process does before its first job arrives: this library's side of the
warm-up that sweeps/workers/launcher_workers.py starts while the parent checks the sweep's configs
(the sweepers name these functions in conf/hydra/sweeper/*.yaml and import nothing from here).

Otherwise the worker's first job would do it all before its first training step: the imports,
W&B's first wandb.init (mostly waiting for its service process to start) and loading the data.
Here W&B's service starts in a thread while the imports run (BENCHMARKS.md has the times).
"""

from __future__ import annotations

import logging
import threading

from hydra.utils import instantiate
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def worker_preparation(cfg) -> dict:
    """prepare_worker's arguments for a sweep's workers, from the first job's (composed) config."""
    logger = cfg.get("logger") or {}
    return {"data": OmegaConf.to_container(cfg.data, resolve=True),
            "wandb_mode": logger.get("mode") if logger.get("kind") == "wandb" else None}


def components(cfg):
    """The parts of a composed job config that ``check_components`` builds, resolved here (a worker
    has neither Hydra's state nor this project's resolvers), as a DictConfig a worker can take."""
    return OmegaConf.create({key: OmegaConf.to_container(cfg[key], resolve=True)
                             for key in ("data", "model", "trainer") if cfg.get(key) is not None})


def prepare_worker(data: dict | None = None, wandb_mode: str | None = None, checks: list | None = None) -> None:
    """``data``: the data config of the sweep's jobs (loaded only if its files are already there:
    fetching them is the job's work, with its error messages). ``wandb_mode``: the logger's W&B mode
    if the jobs log to W&B, else None. ``checks``: job configs (see ``components``) whose datamodule,
    model and Trainer arguments to check; the first mistake is raised (a protocol.errors.UserError)."""
    wandb_service = None
    if wandb_mode not in (None, "disabled"):
        wandb_service = threading.Thread(target=_start_wandb_service, daemon=True)
        wandb_service.start()

    import vae.train  # noqa: F401 - the import is the point: torch, Lightning, torchvision

    if checks:
        from vae.preflight import check_components

        for cfg in checks:
            check_components(cfg)

    if data is not None:
        try:
            datamodule = instantiate(data)
            if datamodule.files_ready():
                datamodule.setup()  # fills the process's split cache
        except Exception as exc:  # noqa: BLE001 - the job itself loads (or fetches) and reports
            log.debug("data not loaded ahead of the first job: %s", exc)
    if wandb_service is not None:
        wandb_service.join()


def _start_wandb_service() -> None:
    try:
        import wandb

        wandb.setup()  # W&B's documented way to start its service before the first wandb.init
    except Exception as exc:  # noqa: BLE001 - only a head start: the job's wandb.init reports problems
        log.debug("W&B's service not started ahead of the first job: %s", exc)
