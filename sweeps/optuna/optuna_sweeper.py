"""A Hydra sweeper on current Optuna: the logic behind ``hydra/sweeper=optuna``.

This class holds the sweep's shared state (one study, one lock, the in-flight trials) and Hydra's
Sweeper interface; its methods live by concern beside it: the settings (study_config.py), the loop
(trial_loop.py), dead workers (dead_trials.py). Which trials count (trials.py), results as values
(objective.py), the results file (results.py), upstream compatibility (upstream.py), storages
(storage.py, reconnect.py).

What it does beyond the released ``hydra-optuna-sweeper`` (1.3, Optuna < 3):

- No blocking batches. Each of ``n_jobs`` worker slots asks Optuna for a trial, launches it as a
  one-job launch, tells the result and asks again, so a slot never waits for the others. With
  Hydra's basic launcher (jobs run inside this process, one at a time) there is one slot.
- Job folders are numbered by Optuna's trial number (``hydra.job.num``), so a resumed or
  second worker never writes into an earlier trial's folder.
- ``n_trials`` is the study's total, over every run of the command and every worker: a rerun
  continues where the study stands; several workers together finish exactly ``n_trials``.
  Counted: COMPLETE, PRUNED, RUNNING and FAIL trials. Not counted: trials failed because their
  worker died or was interrupted (user attr ``interrupted``); their budget is run again.
- A trial that raises, or returns NaN/inf, is FAIL with its reason (user attr ``fail_reason``);
  the sweep goes on until more than ``max_failure_rate × n_trials`` trials have failed.
- Pruning: with ``trial_key`` set, each job gets the trial's identity under that config key
  and reports intermediate values itself (``sweeps/optuna/pruning.py``); a pruned job is told PRUNED.
- A RUNNING trial left by a killed worker is failed when a worker starts or looks for work:
  at once if it ran on this machine (its process is gone), else when its heartbeat is older
  than ``grace_period`` (RDB storages).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from optuna.study import StudyDirection

from protocol.errors import ConfigError
from sweeps.optuna.dead_trials import DeadTrials
from sweeps.optuna.reconnect import StorageUnavailableError
from sweeps.optuna.results import write_results
from sweeps.optuna.search_space import parse_search_space
from sweeps.optuna.storage import BudgetLock, build_storage, check_storage, parse_storage
from sweeps.optuna.study_config import StudyConfig
from sweeps.optuna.trial_loop import TrialLoop
from sweeps.optuna.seeds import TrialSeeds
from sweeps.optuna.trials import counts_toward_budget
from sweeps.optuna.upstream import search_space_from_config
from sweeps.workers.launcher_workers import gpu_worker_count, limit_workers, release_workers

log = logging.getLogger(__name__)


def _quiet_optuna_warnings():
    """We use the heartbeat with ask/tell on purpose (each launch is wrapped in Optuna's own
    heartbeat thread), which Optuna warns about; RDBStorage's heartbeat is "experimental"."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return ctx



def _create_study_record(storage: optuna.storages.BaseStorage, name: Optional[str],
                         directions: list[str]) -> tuple[bool, str]:
    """(created by this call, the study's name). The storage's unique study name decides which of
    several workers starting together created the study, on any machine: no flag set after
    loading could (all of them would see it unset)."""
    try:
        study_id = storage.create_new_study([StudyDirection[d.upper()] for d in directions], name)
    except optuna.exceptions.DuplicatedStudyError:
        return False, str(name)
    return True, storage.get_study_name_from_id(study_id)


class OptunaSweeperImpl(StudyConfig, DeadTrials, TrialLoop, Sweeper):
    def __init__(
        self,
        sampler: Any,
        direction: Any,
        storage: Optional[str],
        study_name: Optional[str],
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        search_space: Optional[DictConfig] = None,
        custom_search_space: Optional[str] = None,
        params: Optional[DictConfig] = None,
        pruner: Any = None,
        objective: Any = None,
        trial_key: Optional[str] = None,
        zero_below: Optional[DictConfig] = None,
        heartbeat_interval: Optional[int] = 60,
        grace_period: Optional[int] = None,
        validate_with: Optional[str] = None,
        reconnect_timeout: float = 60.0,
        seeds: int = 1,
        seed_key: Optional[str] = "seed",
        seed_aggregate: str = "mean",
    ) -> None:
        if not isinstance(n_trials, int) or n_trials < 1:
            raise ConfigError(f"hydra.sweeper.n_trials={n_trials} is invalid; it must be an integer ≥ 1")
        if not isinstance(n_jobs, int) or n_jobs < 1:
            raise ConfigError(f"hydra.sweeper.n_jobs={n_jobs} is invalid; it must be an integer ≥ 1")
        if not 0.0 <= float(max_failure_rate) <= 1.0:
            raise ConfigError(f"hydra.sweeper.max_failure_rate={max_failure_rate} is invalid; it must be in [0, 1]")
        self.sampler, self.pruner = sampler, pruner
        self.direction, self.storage, self.study_name = direction, storage, study_name
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, float(max_failure_rate)
        self.params, self.search_space = params, search_space
        self.custom_search_space: Optional[Callable[[DictConfig, optuna.Trial], None]] = (
            get_method(custom_search_space) if custom_search_space else None)
        self.objective = objective
        self.trial_key = trial_key
        self.zero_below = zero_below
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.validate_with = get_method(validate_with) if validate_with else None
        self.reconnect_timeout = float(reconnect_timeout)
        self.seed_settings = (seeds, seed_key, seed_aggregate)
        self.config: Optional[DictConfig] = None
        self._stop = threading.Event()
        self._abort: Optional[BaseException] = None
        self._returns: list[tuple[int, JobReturn]] = []
        self._returns_lock = threading.Lock()
        self._inflight: set[int] = set()          # trial ids this process is running

    # --- Hydra's Sweeper interface ---------------------------------------------------------
    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        pruner_cfg = OmegaConf.select(config, "hydra.sweeper.pruner")
        self.pruner_config = OmegaConf.to_container(pruner_cfg, resolve=True) if pruner_cfg is not None else None

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        ctx = _quiet_optuna_warnings()
        try:
            returns = self._sweep(arguments)
        finally:
            ctx.__exit__(None, None, None)
        release_workers()   # after a sweep that ended normally (see its docstring)
        return returns

    def _sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        assert self.config is not None
        params = dict(self.params or {})
        if self.search_space:
            log.warning("hydra.sweeper.search_space is deprecated (as upstream); use hydra.sweeper.params")
            params = {**search_space_from_config(self.search_space), **params}
        space = parse_search_space(params, arguments, self.zero_below)
        self.seeds = TrialSeeds.from_config(*self.seed_settings, config=self.config, space=space)
        directions = self._directions()
        objective_keys = self._objective_keys(directions)
        grid = space.grid() if self.custom_search_space is None else None
        base_dir = Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd") or os.getcwd()))
        self.spec = parse_storage(self.storage, base_dir)
        check_storage(self.spec)            # quick, and creates nothing
        # Before the storage is opened or created: a config mistake must leave nothing behind.
        self._check_jobs_compose(space, grid)

        self.lock = BudgetLock(self.spec.lock_path)
        with self.lock.hold():   # two workers creating one new SQLite file would race on its schema
            storage = build_storage(self.spec, self.heartbeat_interval if self.spec.kind == "rdb" else None,
                                    self.grace_period if self.spec.kind == "rdb" else None, self.reconnect_timeout)
        if self.spec.kind == "memory" and self.trial_key:
            log.warning("hydra.sweeper.storage is in memory: jobs cannot reach the study, so they "
                        "cannot report for pruning; use the default SQLite storage for pruning")
        self._grid_mode = grid is not None and len(grid) > 1
        n_trials = self.n_trials if grid is None else min(self.n_trials, len(grid))
        sampler = self._build_sampler(space)
        # As Hydra's basic sweeper: the sweep's config, at the top of the sweep dir.
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")

        with self.lock.hold():
            created, study_name = _create_study_record(storage, self.study_name, directions)
            study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=self.pruner)
        stored = [d.name.lower() for d in study.directions]
        if stored != directions:
            raise ConfigError(f"hydra.sweeper.study_name={study_name} is a study with directions {stored}, "
                              f"not {directions}; choose another study_name for this objective")
        self.study = study
        with self.lock.hold():
            # A seeded sampler in a second process (a resumed run, another worker) would replay
            # the first process's random start-up points: the same configurations again. Only
            # the process that created the study keeps the seed; the others reseed their sampler.
            if not created:
                study.sampler.reseed_rng()
                log.info("Study %s was started before (a resumed run or another worker): this process's "
                         "sampler is reseeded so it does not repeat earlier random points", study.study_name)
            if self.pruner_config is not None and self.spec.persistent:
                study.set_user_attr("pruner", self.pruner_config)
            if objective_keys:
                study.set_user_attr("objective", objective_keys)
            if grid is not None and len(grid) > 1 and not study.trials:
                for point in grid[:n_trials]:   # walked in order; see SearchSpace.grid
                    study.enqueue_trial(point)
            self._fail_dead_trials()
        done = sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False))
        slots = self._slots()
        # trials run `slots` at a time: no more worker processes than that (joblib's n_jobs=-1)
        limit_workers(self.launcher, jobs=slots * self.seeds.count, gpu_workers=gpu_worker_count(self.config))
        if self.study_name is None and self.spec.persistent:
            log.info("No hydra.sweeper.study_name: Optuna named the study %s; pass "
                     "hydra.sweeper.study_name=%s to resume it or to add workers", study.study_name, study.study_name)
        log.info("Study %s in %s: %d of %d trials already counted; %d worker slot(s); sampler %s; "
                 "directions %s", study.study_name, self.spec.url or "memory", done, n_trials, slots,
                 type(study.sampler).__name__, directions)

        self._run_slots(slots, space, objective_keys, n_trials)
        if not isinstance(self._abort, StorageUnavailableError):   # nothing to read the results from
            write_results(self.study, space, objective_keys, self.spec.url, self.sweep_dir)
        if self._abort is not None:
            raise self._abort
        with self._returns_lock:
            returns = [ret for _, ret in sorted(self._returns, key=lambda item: item[0])]
        return [returns]
