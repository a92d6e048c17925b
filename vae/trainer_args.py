"""Trainer arguments Lightning refuses, found before anything is written.

``cfg.trainer`` is handed to ``lightning.Trainer`` as keyword arguments. A name it does not take,
an accelerator that is not available here (no GPU, a package such as torch_xla not installed), a
device count or precision it rejects used to end the run in a traceback after its folder was
made. ``check_trainer_args`` asks Lightning itself: it builds a Trainer from the same arguments
(with no logger, callbacks or checkpointing, so it writes nothing, and fast once Lightning is
imported) and turns a refusal into one ``ConfigError`` naming the ``trainer.`` key and the fix.

Lightning is imported inside the function: a sweep's parent process imports this module without
paying for Lightning unless it runs the check.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import logging
import warnings
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from vae.errors import ConfigError

# Trainer arguments the run sets itself, and where a user sets them instead.
SET_BY_THE_RUN = {
    "logger": "the logger group (logger=wandb|csv|none)",
    "callbacks": "the callbacks group (conf/callbacks/)",
    "default_root_dir": "paths.output_dir",
    "enable_progress_bar": "progress_bar",
    "enable_checkpointing": "the callbacks group (callbacks.checkpoint)",
}
# Keys whose refusal means "not on this machine": the fix names the accelerators that are.
DEVICE_KEYS = ("accelerator", "devices", "strategy", "num_nodes")


def check_trainer_args(cfg: DictConfig) -> None:
    if cfg.get("trainer") is None:
        return
    import lightning as L

    kwargs: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)
    accepted = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    for key in kwargs:
        if key in SET_BY_THE_RUN:
            raise ConfigError(f"trainer.{key} is set by the run itself; remove it and use "
                              f"{SET_BY_THE_RUN[key]} instead")
        if key not in accepted:
            hint = difflib.get_close_matches(key, sorted(accepted), n=1)
            suggestion = f" (did you mean trainer.{hint[0]}?)" if hint else ""
            raise ConfigError(f"trainer.{key} is not an argument of lightning.Trainer{suggestion}; "
                              f"remove it or fix its name")
    if _refusal(L.Trainer, kwargs) is None:
        return
    # Refused: add the arguments one at a time, in the config's order, to find the first one that
    # Lightning refuses given the ones before it (e.g. devices=0 given accelerator=cpu).
    given: dict[str, Any] = {}
    for key, value in kwargs.items():
        given[key] = value
        reason = _refusal(L.Trainer, given)
        if reason is not None:
            raise ConfigError(f"trainer.{key}={value} is refused by lightning.Trainer ({reason}); "
                              f"{_fix(key)}")


def _refusal(trainer_class: type, kwargs: dict[str, Any]) -> str | None:
    """Lightning's first line if it refuses these arguments, else None."""
    try:
        with _quiet():
            trainer_class(**kwargs, logger=False, callbacks=[], enable_checkpointing=False,
                          enable_progress_bar=False)
    except Exception as exc:  # noqa: BLE001 - MisconfigurationException, ValueError, ImportError, ...
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    return None


def _fix(key: str) -> str:
    if key in DEVICE_KEYS:
        from lightning.pytorch.accelerators import AcceleratorRegistry

        here = [name for name, entry in AcceleratorRegistry.items() if entry["accelerator"].is_available()]
        return (f"accelerators available here: {', '.join(here)}; e.g. trainer.accelerator=cpu trainer.devices=1, "
                f"or install what this one needs")
    return f"fix or remove trainer.{key}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's start-up notes ("GPU available: False", tips) and warnings, for a trainer that never runs."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
