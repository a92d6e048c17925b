"""``hydra/sweeper=optuna``: the config Hydra composes and the class it instantiates.

The keys are the upstream ``hydra-optuna-sweeper``'s (so an upstream config works unchanged),
plus ours, marked NEW. The logic is in ``sweeps/optuna/optuna_sweeper.py``; Hydra only discovers
sweepers in the ``hydra_plugins`` namespace, hence this thin module.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from omegaconf import MISSING



# --- samplers (hydra/sweeper/sampler=...) and pruners (hydra/sweeper/pruner=...) -----------
@dataclass
class SamplerConfig:
    _target_: str = MISSING
    seed: Optional[int] = None


# Upstream's sampler keys are all kept (so their configs load); null means Optuna 5's default.
@dataclass
class TPESamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.TPESampler"
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: Optional[bool] = None
    warn_independent_sampling: Optional[bool] = None


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: Optional[Dict[str, Any]] = None
    sigma0: Optional[float] = None
    independent_sampler: Optional[Any] = None
    n_startup_trials: int = 1
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    restart_strategy: Optional[Any] = None
    inc_popsize: int = -1
    use_separable_cma: bool = False
    source_trials: Optional[Any] = None


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: Optional[float] = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5
    constraints_func: Optional[Any] = None


@dataclass
class MOTPESamplerConfig(SamplerConfig):
    """Upstream's ``motpe``: Optuna 4 removed MOTPESampler (TPESampler does several objectives)."""

    _target_: str = "sweeps.optuna.upstream.motpe_sampler"
    consider_prior: Optional[bool] = None
    prior_weight: Optional[float] = None
    consider_magic_clip: Optional[bool] = None
    consider_endpoints: Optional[bool] = None
    n_startup_trials: int = 10
    n_ehvi_candidates: int = 24


@dataclass
class GridSamplerConfig(SamplerConfig):
    """Every combination of the (finite) params; the sweeper fills in the grid."""

    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True


@dataclass
class MedianPrunerConfig:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class HyperbandPrunerConfig:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class ThresholdPrunerConfig:
    """Stop a trial as soon as its reported value leaves [lower, upper] (e.g. a diverging run)."""

    _target_: str = "optuna.pruners.ThresholdPruner"
    lower: Optional[float] = None
    upper: Optional[float] = None
    n_warmup_steps: int = 0
    interval_steps: int = 1


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.betavae_sweepers.optuna_sweeper.OptunaSweeper"
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])

    sampler: Any = MISSING                 # hydra/sweeper/sampler=tpe|random|cmaes|nsgaii|motpe|grid
    direction: Any = "minimize"            # minimize | maximize, or a list (one per objective)
    # Where the study lives. Default: SQLite under outputs/ (relative to where you start the
    # command). Any Optuna RDB URL, journal:<file>, or null (in memory, as upstream's default).
    storage: Optional[str] = "sqlite:///outputs/optuna.db"
    study_name: Optional[str] = None       # the same name resumes the study; null: a new random name
    n_trials: int = 20                     # the study's total over all runs and workers (NEW meaning)
    n_jobs: int = 2                        # trials side by side (needs a parallel launcher, e.g. joblib)
    # Stop when more than this fraction of n_trials have failed (upstream: per batch; default 0).
    max_failure_rate: float = 0.5
    search_space: Optional[Dict[str, Any]] = None   # deprecated upstream form; use params
    custom_search_space: Optional[str] = None       # dotted path to fn(cfg, trial) adding params
    params: Optional[Dict[str, Any]] = None         # key: choice(...) | range(...) | interval(...) | value
    pruner: Any = None                     # hydra/sweeper/pruner=median|hyperband|threshold, or any _target_
    # NEW: keys of the task's returned dict to optimise (one per direction); null: the task
    # config's `optimized_metric` if it has one, else the return value itself is the objective
    # (a float, or a list for several directions), as upstream.
    objective: Any = None
    # NEW: config key that receives each trial's identity (storage, study_name, trial_id,
    # trial_number) so the task can report intermediate values and be pruned. null: none.
    trial_key: Optional[str] = None
    # NEW: {param: floor}: a sampled value below floor is sent to the job as 0 (e.g. β=0 in a
    # log-scale β search).
    zero_below: Optional[Dict[str, float]] = None
    # NEW: RDB heartbeat: a RUNNING trial whose worker has been silent for grace_period seconds
    # (default 2 × interval) is failed by the next worker that looks; see docs/sweeps.md.
    heartbeat_interval: Optional[int] = 60
    grace_period: Optional[int] = None
    # NEW: dotted path to fn(cfg) that checks a job's config; the sweeper calls it on the search
    # space's corners before any trial runs.
    validate_with: Optional[str] = None
    # NEW: RDB storages: how long (seconds) a worker keeps retrying a storage server that stopped
    # answering (a restart, a network blip) before it stops with a line saying how to resume.
    reconnect_timeout: float = 60.0
    # NEW: judge each trial over this many seeded jobs (seed_key = base, base+1, ...; the base is
    # the config's seed_key), launched together; its value is their mean (or median), each seed's
    # value in the trial's user attr seed_values. Pruning judges the seeds' mean. docs/sweeps.md.
    seeds: int = 1
    seed_key: Optional[str] = "seed"
    seed_aggregate: str = "mean"           # mean | median


class OptunaSweeper(Sweeper):
    """Hydra's entry point; everything is delegated to ``OptunaSweeperImpl``."""

    def __init__(self, **kwargs: Any) -> None:
        # Imported here, not at the top: Hydra imports every plugin module to discover plugins,
        # and Optuna's import (~0.2 s) would then be paid by every run and every grid sweep.
        from sweeps.optuna.optuna_sweeper import OptunaSweeperImpl

        self.sweeper = OptunaSweeperImpl(**kwargs)

    def setup(self, **kwargs: Any) -> None:
        self.sweeper.setup(**kwargs)

    def sweep(self, arguments: List[str]) -> Any:
        return self.sweeper.sweep(arguments)


_cs = ConfigStore.instance()
_cs.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="betavae_sweepers")
for _name, _node in {"tpe": TPESamplerConfig, "random": RandomSamplerConfig, "cmaes": CmaEsSamplerConfig,
                     "nsgaii": NSGAIISamplerConfig, "motpe": MOTPESamplerConfig, "grid": GridSamplerConfig}.items():
    _cs.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="betavae_sweepers")
for _name, _node in {"median": MedianPrunerConfig, "hyperband": HyperbandPrunerConfig,
                     "threshold": ThresholdPrunerConfig}.items():
    _cs.store(group="hydra/sweeper/pruner", name=_name, node=_node, provider="betavae_sweepers")
