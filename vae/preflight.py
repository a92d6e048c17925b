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
from vae.data.mnist_files import check_data_dir
from vae.trainer_args import check_trainer_args

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
    """Value rules, the data folder, write paths, and building the networks (milliseconds, once
    torch is imported), which catches bad network options: a mistake stops a run or a sweep
    before any folder is made."""
    check_values(cfg)
    check_networks(cfg)
    check_trainer_args(cfg)    # imports Lightning: not in check_networks, which a sweep's parent runs


def check_values(cfg: DictConfig) -> None:
    """The checks that need no torch."""
    validate(cfg)
    check_data_dir(cfg.data.data_dir)
    check_write_paths(cfg)


def check_networks(cfg: DictConfig) -> None:
    shapes = {"image_shape": MNIST_IMAGE_SHAPE, "latent_size": cfg.latent_size}
    build_network(cfg.model.encoder, "model.encoder", **shapes)
    build_network(cfg.model.decoder, "model.decoder", **shapes)


# Config keys that name a place a run writes to.
WRITE_PATH_KEYS = ("dirpath", "output_dir", "save_dir", "dir")


def check_write_paths(cfg: DictConfig) -> None:
    """Every folder a callback or logger is configured to write to must lie inside this run's
    output folder: a typo or a shared config must not make a run write elsewhere."""
    from pathlib import Path

    from omegaconf import OmegaConf, open_dict

    # The run's folder may not exist yet (this runs before Hydra makes it): resolve against a
    # stand-in for it, so that ${paths.output_dir}/x passes and /tmp/x or ../x do not.
    root = Path("/run-output-dir")
    probe = cfg.copy()
    with open_dict(probe):
        probe.paths.output_dir = str(root)
    for group in ("callbacks", "logger"):
        node = OmegaConf.select(probe, group)
        if node is None:
            continue
        for key, value in _leaves(OmegaConf.to_container(node, resolve=True), group):
            if key.rsplit(".", 1)[-1] in WRITE_PATH_KEYS and isinstance(value, str):
                target = (root / value).resolve()  # an absolute value replaces root
                if not target.is_relative_to(root):
                    shown = value.replace(str(root), "${paths.output_dir}")
                    raise ConfigError(f"{key}={shown} is outside this run's folder; "
                                      f"write under ${{paths.output_dir}} instead")


def _leaves(obj, prefix: str):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}.{k}")
    else:
        yield prefix, obj
