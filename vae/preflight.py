"""Checks run before a run's or a sweep's folder exists: a mistake costs one line, nothing written.

Two stages, so that a sweep's parent process stays fast: ``check_values`` needs no torch (the
schema's rules and the write paths) and runs first for every job; ``check_components`` builds the
datamodule (its constructor and its own ``check_config``; no data is loaded) and the model from
their ``_target_`` nodes, exactly as ``train()`` does, and runs the model's networks on one batch
of the declared image shape, which catches bad dataset and network options in milliseconds once
the imports are done. ``preflight`` (one run) also compares the dataset's declared contract with
a sample of what it loads, when its files are there (vae/contract_checks.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from vae.config import validate
from vae.errors import ConfigError, UserError
from vae.trainer_args import check_trainer_args


def build(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """instantiate() with its errors turned into one line naming the config node. ``kwargs`` are
    passed to the constructor as they are (instantiate would turn a dataclass into a config)."""
    try:
        return instantiate(node, _partial_=True)(**kwargs) if kwargs else instantiate(node)
    except (InstantiationException, TypeError) as exc:
        cause = exc.__cause__ if isinstance(exc, InstantiationException) else exc
        while cause is not None and not isinstance(cause, UserError) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        from vae.targets import target_problem

        problem = target_problem(node, key)   # a _target_ naming nothing: which key, what is missing
        if problem:
            raise ConfigError(f"{problem}; fix the class path in the config") from None
        reason = str(cause or exc).strip().splitlines()[-1]
        raise ConfigError(f"{_node_named_in(reason, node, key)} cannot be built from its config: {reason}") from None


def _node_named_in(reason: str, node: DictConfig, key: str) -> str:
    """The sub-node whose class the error names (model.encoder for "ConvEncoder.__init__() ..."),
    else the node itself."""
    for name, child in node.items():
        target = child.get("_target_") if isinstance(child, DictConfig) else None
        if target and f"{str(target).rsplit('.', 1)[-1]}." in reason:
            return f"{key}.{name}"
    return key


def build_datamodule(cfg: DictConfig):
    datamodule = build(cfg.data, "data")
    check = getattr(datamodule, "check_config", None)
    if check is not None:
        check()
    return datamodule


def build_model(cfg: DictConfig, datamodule):
    """The model's contract: its constructor takes ``data``, the dataset's DatasetInfo."""
    return build(cfg.model, "model", data=datamodule.info)


def preflight(cfg: DictConfig) -> None:
    from vae.contract_checks import check_dataset

    check_values(cfg)
    datamodule = check_components(cfg)
    if datamodule.files_ready():   # else train() checks it once prepare_data has fetched the files
        check_dataset(datamodule)


def check_values(cfg: DictConfig) -> None:
    """The checks that need no torch."""
    validate(cfg)
    check_single_source(cfg)
    check_write_paths(cfg)


# Root keys a model reads through ${...}: the run records the root value, so the model must train it.
ROOT_OWNED = ("beta", "latent_size")


def check_single_source(cfg: DictConfig) -> None:
    """β and the latent size have one source, the root config: ``model.beta=4`` next to the root's
    ``beta=1`` would train one β and record another."""
    for key in ROOT_OWNED:
        if OmegaConf.select(cfg, f"model.{key}", default=None) is None:
            continue
        if OmegaConf.select(cfg, f"model.{key}") != cfg.get(key):
            raise ConfigError(f"model.{key}={OmegaConf.select(cfg, f'model.{key}')} differs from {key}={cfg.get(key)}, "
                              f"which the run records; set {key}=... (the model reads it from there)")


def check_components(cfg: DictConfig):
    """Build the datamodule and the model (no data loaded), run the model's networks on one batch
    of the declared image shape, check the Trainer's arguments. Returns the datamodule."""
    from vae.contract_checks import check_info, check_model   # torch: not imported by check_values

    datamodule = build_datamodule(cfg)
    check_info(datamodule)
    check_model(build_model(cfg, datamodule), datamodule.info)
    check_trainer_args(cfg)
    return datamodule


# Config keys that name a place a run writes to.
WRITE_PATH_KEYS = ("dirpath", "output_dir", "save_dir", "dir")


def check_write_paths(cfg: DictConfig) -> None:
    """Every folder a callback or logger is configured to write to must lie inside this run's
    output folder: a typo or a shared config must not make a run write elsewhere."""
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
