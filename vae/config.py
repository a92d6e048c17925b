"""The config's schema and value rules.

Types are checked by OmegaConf while Hydra composes (the dataclasses below are the schema of
``conf/train.yaml``); ranges and choices are checked by ``validate`` before any work starts.
``RULES`` is the one place that says what each key accepts: validation and the one-line error
messages both read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from vae.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]

if not OmegaConf.has_resolver("project_root"):
    OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))


# --- schema: types -----------------------------------------------------------------------
@dataclass
class SpeedConfig:
    batches_per_fetch: int = 16     # vae/speed/batch_groups.py: only for models that opt in


@dataclass
class LossConfig:
    reduction: str = "sum"


@dataclass
class EvalConfig:
    iwae_samples: int = 16
    nll_images: Optional[int] = 2000


@dataclass
class ReportConfig:
    enabled: bool = True
    metric: str = "test/nll_iwae"
    wandb: bool = True


@dataclass
class TrainConfig:
    beta: float = 1.0
    latent_size: int = 10
    seed: int = 0
    seeds: int = 1                   # replicates per configuration in a multirun (the grid sweeper)
    torch_threads: int = 1
    jobs_per_gpu: int = 1
    progress_bar: str = "auto"
    ckpt_path: Optional[str] = None
    task_name: str = "train"
    optimized_metric: Optional[Any] = None   # key(s) of train()'s result a sweeper optimises
    optuna: Optional[Any] = None             # set by hydra/sweeper=optuna per trial (storage, study, trial)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    data: Any = None                 # a dataset's own keys (conf/data/<name>.yaml, its _target_ class)
    model: Any = None
    trainer: Any = None
    logger: Any = None
    callbacks: Any = None
    paths: Any = None


ConfigStore.instance().store(name="train_schema", node=TrainConfig)

# The scalar metrics train() returns: what a sweeper may optimise (tests check train() against it).
# Only on data with known generative factors (vae/metrics/callback.py).
FACTOR_RESULT_KEYS = ("test/mig", "test/dci_disentanglement", "test/dci_completeness",
                      "test/dci_informativeness", "test/factor_vae", "test/beta_vae")
RESULT_KEYS = ("val/loss", "val/distortion", "val/rate", "val/neg_elbo",
               "test/distortion", "test/rate", "test/neg_elbo", "test/nll_iwae", "test/active_units",
               "steps", "wall_time_s", *FACTOR_RESULT_KEYS)


# --- rules: ranges and choices -----------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    expects: str                      # what the key accepts, as the error message says it
    ok: Callable[[Any], bool]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _one_of(*choices: str) -> Rule:
    return Rule(f"one of: {', '.join(choices)}", lambda v: v in choices)


RULES: dict[str, Rule] = {
    "beta": Rule("a number ≥ 0 (0 = plain autoencoder, 1 = standard VAE), e.g. beta=0.5",
                 lambda v: _number(v) and v >= 0),
    "latent_size": Rule("an integer ≥ 1, e.g. latent_size=10", _int_at_least(1)),
    "seed": Rule("an integer ≥ 0", _int_at_least(0)),
    "seeds": Rule("an integer ≥ 1 (replicates per configuration in a multirun), e.g. -m seeds=3", _int_at_least(1)),
    "torch_threads": Rule("an integer ≥ 1", _int_at_least(1)),
    "jobs_per_gpu": Rule("an integer ≥ 1 (jobs of a multirun sharing one GPU)", _int_at_least(1)),
    "progress_bar": _one_of("auto", "rich", "none"),
    "loss.reduction": _one_of("sum", "mean"),
    "eval.iwae_samples": Rule("an integer ≥ 1", _int_at_least(1)),
    "eval.nll_images": Rule("null (all test images) or an integer ≥ 1",
                            lambda v: v is None or _int_at_least(1)(v)),
    "data.batch_size": Rule("an integer ≥ 1", _int_at_least(1)),
    "data.eval_batch_size": Rule("an integer ≥ 1", _int_at_least(1)),
    "data.val_size": Rule("an integer ≥ 1", _int_at_least(1)),
    "data.binarize": _one_of("none", "dynamic"),
    "data.split_seed": Rule("an integer ≥ 0", _int_at_least(0)),
    "data.train_subset": Rule("null or an integer ≥ 1", lambda v: v is None or _int_at_least(1)(v)),
    "speed.batches_per_fetch": Rule("an integer ≥ 1", _int_at_least(1)),
    "model.optimizer.lr": Rule("a number > 0, e.g. 1e-3", lambda v: _number(v) and v > 0),
    "trainer.max_steps": Rule("an integer ≥ 1", _int_at_least(1)),
    "logger.kind": _one_of("wandb", "csv", "none"),
    "logger.mode": _one_of("auto", "online", "offline", "disabled"),
    "logger.init_timeout": Rule("a number of seconds > 0", lambda v: _number(v) and v > 0),
}


def expects(key: str) -> str | None:
    rule = RULES.get(key)
    return rule.expects if rule else None


# Keys a dataset or model of the user's own may not have: checked only where present.
OPTIONAL_PREFIXES = ("data.", "model.")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError, naming the key and what it accepts, for the first bad value."""
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default="<absent>")
        if value == "<absent>" and key in ("logger.mode", "logger.init_timeout") and OmegaConf.select(cfg, "logger.kind") != "wandb":
            continue
        if value == "<absent>" and key.startswith(OPTIONAL_PREFIXES):
            continue
        if value == "<absent>":
            raise ConfigError(f"{key} is missing from the config; it must be {rule.expects}")
        if not rule.ok(value):
            raise ConfigError(f"{key}={value} is invalid; it must be {rule.expects}")
    objective = OmegaConf.select(cfg, "hydra.sweeper.objective", default=None) or cfg.get("optimized_metric")
    for key in ([objective] if isinstance(objective, str) else list(objective or [])):
        if key not in RESULT_KEYS:
            raise ConfigError(f"objective {key} is not a metric a run produces; choose from: {', '.join(RESULT_KEYS)}")
