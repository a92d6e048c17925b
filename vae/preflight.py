"""Checks that need no data and write nothing, run before a run's or a sweep's folder exists.

Kept free of Lightning and torchvision (torch only, for building the networks), so that a
sweep's parent process, which only checks configs and hands jobs to workers, starts fast.
"""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from vae.config import validate
from vae.errors import ConfigError, UserError
from vae.mnist_files import check_data_dir

MNIST_IMAGE_SHAPE = (1, 28, 28)


def build_network(node: DictConfig, key: str, **shapes):
    """instantiate() with its errors turned into one line naming the config node."""
    try:
        return instantiate(node, **shapes)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, UserError):
            raise exc.__cause__ from None
        reason = str(exc.__cause__ or exc).strip().splitlines()[-1]
        raise ConfigError(f"{key} cannot be built from its config: {reason}") from None


def preflight(cfg: DictConfig) -> None:
    """Value rules, the data folder, and building the networks (milliseconds), which catches
    bad network options: a mistake stops a run or a sweep before any folder is made."""
    validate(cfg)
    check_data_dir(cfg.data.data_dir)
    shapes = {"image_shape": MNIST_IMAGE_SHAPE, "latent_size": cfg.latent_size}
    build_network(cfg.model.encoder, "model.encoder", **shapes)
    build_network(cfg.model.decoder, "model.decoder", **shapes)
