"""A Hydra sweeper on current Optuna: the logic behind ``hydra/sweeper=optuna``.

Over 300 lines: the sweep loop (slots asking, launching, telling; dead workers; the budget) shares
one study, one lock and one set of in-flight trials. What stands alone lives beside it: which trials
count (trials.py), turning a result into values (objective.py), the results file (results.py),
upstream compatibility (upstream.py), storages (storage.py, reconnect.py).

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
import socket
import threading
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, MutableSequence, Optional

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from sweeps.optuna.objective import is_numeric, objective_values
from sweeps.optuna.results import write_results
from sweeps.optuna.search_space import SearchSpace, format_value, parse_search_space
from sweeps.optuna.trials import counts_toward_budget, is_failure, one_line, process_alive
from sweeps.optuna.upstream import search_space_from_config
from sweeps.workers.launcher_workers import gpu_worker_count, joblib_workers, limit_workers, release_workers
from sweeps.optuna.reconnect import StorageUnavailableError
from sweeps.optuna.storage import BudgetLock, build_storage, parse_storage
from protocol import (ATTR_FAIL_REASON, ATTR_INTERRUPTED, ATTR_NO_OBJECTIVE, ATTR_OUTPUT_DIR,
                          ATTR_SURPLUS, ATTR_WORKER)
from protocol.errors import ConfigError, UserError

log = logging.getLogger(__name__)


def _quiet_optuna_warnings():
    """We use the heartbeat with ask/tell on purpose (each launch is wrapped in Optuna's own
    heartbeat thread), which Optuna warns about; RDBStorage's heartbeat is "experimental"."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return ctx

REPORTING_CALLBACK = "sweeps.optuna.pruning.OptunaPruning"   # what a trial's job reports through
# Clocks of machines sharing a server storage differ a little; see _fail_dead_trials.
ORPHAN_MARGIN_S = 5.0


class SweepFailedError(UserError):
    """Too many trials failed (``max_failure_rate``)."""


def _create_study_record(storage: optuna.storages.BaseStorage, name: Optional[str],
                         directions: list[str]) -> tuple[bool, str]:
    """(created by this call, the study's name). The storage's unique study name decides which of
    several workers starting together created the study, on any machine: no flag set after
    loading could (all of them would see it unset)."""
    from optuna.study import StudyDirection

    try:
        study_id = storage.create_new_study([StudyDirection[d.upper()] for d in directions], name)
    except optuna.exceptions.DuplicatedStudyError:
        return False, str(name)
    return True, storage.get_study_name_from_id(study_id)


class OptunaSweeperImpl(Sweeper):
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
        directions = self._directions()
        objective_keys = self._objective_keys(directions)
        grid = space.grid() if self.custom_search_space is None else None
        # Before the storage is opened or created: a config mistake must leave nothing behind.
        self._check_jobs_compose(space, grid)

        base_dir = Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd") or os.getcwd()))
        self.spec = parse_storage(self.storage, base_dir)
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
        limit_workers(self.launcher, jobs=slots, gpu_workers=gpu_worker_count(self.config))
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

    # --- configuration ---------------------------------------------------------------------
    def _directions(self) -> list[str]:
        raw = self.direction
        items = list(raw) if isinstance(raw, (MutableSequence, ListConfig, tuple)) else [raw]
        names = []
        for item in items:
            name = getattr(item, "name", str(item)).split(".")[-1].lower()
            if name not in ("minimize", "maximize"):
                raise ConfigError(f"hydra.sweeper.direction={item} is invalid; it must be minimize or "
                                  "maximize, or a list of them (one per objective)")
            names.append(name)
        return names

    def _objective_keys(self, directions: list[str]) -> Optional[list[str]]:
        objective = self.objective
        if objective is None:
            # The lightning-hydra-template convention, which our train.yaml follows.
            objective = OmegaConf.select(self.config, "optimized_metric", default=None)
        if objective is None:
            return None
        keys = [str(k) for k in objective] if isinstance(objective, (ListConfig, list, tuple)) else [str(objective)]
        if len(keys) != len(directions):
            raise ConfigError(f"hydra.sweeper.objective names {len(keys)} metric(s) {keys} but "
                              f"hydra.sweeper.direction has {len(directions)}; give one direction per metric")
        return keys

    def _build_sampler(self, space: SearchSpace) -> Any:
        sampler = self.sampler
        if callable(sampler) and getattr(sampler, "func", None) is optuna.samplers.GridSampler:
            grid = {}
            for name, dist in space.distributions.items():
                if isinstance(dist, CategoricalDistribution):
                    grid[name] = list(dist.choices)
                elif isinstance(dist, IntDistribution) and not dist.log:
                    grid[name] = list(range(dist.low, dist.high + 1, dist.step))
                elif isinstance(dist, FloatDistribution) and dist.step is not None:
                    n = int(round((dist.high - dist.low) / dist.step))
                    grid[name] = [dist.low + i * dist.step for i in range(n + 1)]
                else:
                    raise ConfigError(f"hydra/sweeper/sampler=grid needs finite params; {name} is a "
                                      "continuous interval (give it choice(...) or range(...))")
            return sampler(grid)
        return sampler

    def _check_jobs_compose(self, space: SearchSpace, grid: Optional[list[dict]]) -> None:
        """Compose (and validate, with ``validate_with``) the jobs at the search space's edges
        before any trial runs: a wrong key or an out-of-range bound is one error, not n failures."""
        probes: list[dict[str, Any]] = []
        if grid is not None:
            probes = grid[:16]
        else:
            for bound in ("low", "high"):
                point = {}
                for name, dist in space.distributions.items():
                    if isinstance(dist, CategoricalDistribution):
                        point[name] = dist.choices[0 if bound == "low" else -1]
                    else:
                        point[name] = getattr(dist, bound)
                probes.append(point)
        loader = self.hydra_context.config_loader
        for point in probes:
            cfg = loader.load_sweep_config(self.config, space.overrides(point))
            if self.validate_with is not None:
                self.validate_with(cfg)

    def _slots(self) -> int:
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher

        if isinstance(self.launcher, BasicLauncher):
            if self.n_jobs > 1:
                log.info("hydra.sweeper.n_jobs=%d: the basic launcher runs one job at a time in this "
                         "process; use hydra/launcher=joblib to run trials side by side", self.n_jobs)
            return 1
        workers = joblib_workers(self.launcher)
        if workers is not None:
            # joblib runs a 1-worker Parallel in the calling thread, i.e. inside this process,
            # where two Hydra jobs at once would share Hydra's global state: never more slots
            # than joblib has worker processes.
            if workers < self.n_jobs:
                log.info("hydra.sweeper.n_jobs=%d but hydra.launcher.n_jobs allows %d worker process(es): "
                         "running %d trial(s) at a time", self.n_jobs, workers, workers)
            return min(self.n_jobs, workers)
        return self.n_jobs

    # --- dead workers ------------------------------------------------------------------------
    def _fail_dead_trials(self) -> None:
        """Fail RUNNING trials whose worker is gone: on this host by process id, elsewhere by the
        storage's heartbeat. They are marked ``interrupted`` and do not count toward n_trials."""
        storage = self.study._storage
        host = socket.gethostname()
        stale_ids: set[int] = set()
        if optuna.storages._heartbeat.is_heartbeat_enabled(storage):
            # Optuna's own staleness test (heartbeat older than grace_period); failed below so
            # that the reason is recorded first (attrs cannot change after FAIL).
            stale_ids = set(storage._get_stale_trial_ids(self.study._study_id))
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.user_attrs.get(ATTR_WORKER) or {}
            if trial._trial_id in self._inflight:
                continue                                  # ours, still running
            pid = int(worker.get("pid", -1))
            # Same host and the process is gone, or it is this process's pid but not one of our
            # trials (a restarted container can hand the dead sweeper's pid to us).
            dead_here = worker.get("host") == host and (pid == os.getpid() or not process_alive(pid))
            # Asked, but its worker never recorded itself: it lost the storage between the two calls
            # (and gave up after reconnect_timeout) or died there. A live worker records itself at
            # once, and has no heartbeat yet for Optuna's test either.
            age = (datetime.now() - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0
            orphan = not worker and age > self.reconnect_timeout + ORPHAN_MARGIN_S
            if not (dead_here or orphan or trial._trial_id in stale_ids):
                continue
            why = (f"worker process {worker.get('pid')} on {host} is gone" if dead_here
                   else "its worker stopped before recording itself" if orphan
                   else "worker stopped sending heartbeats")
            if self._mark_interrupted(trial, why):
                log.warning("Trial %d was left RUNNING (%s); marked FAIL, its budget runs again", trial.number, why)

    def _mark_interrupted(self, trial: optuna.trial.FrozenTrial, why: str) -> bool:
        storage = self.study._storage
        try:
            storage.set_trial_user_attr(trial._trial_id, ATTR_INTERRUPTED, True)
            storage.set_trial_user_attr(trial._trial_id, ATTR_FAIL_REASON, f"interrupted: {why}")
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False                                  # finished meanwhile, or another worker got there first
        self._inflight.discard(trial._trial_id)
        self._requeue_grid_point(trial.params)
        return True

    def _requeue_grid_point(self, params: Mapping[str, Any]) -> None:
        """A grid point whose trial was interrupted is queued again (a grid runs every point)."""
        if getattr(self, "_grid_mode", False) and params:
            self.study.enqueue_trial(dict(params))

    # --- the loop ------------------------------------------------------------------------------
    def _run_slots(self, slots: int, space: SearchSpace, objective_keys: Optional[list[str]], n_trials: int) -> None:
        if hasattr(self.launcher, "launch_numbered"):   # hydra/launcher=fused: trials launched together
            self._run_together(space, objective_keys, n_trials)
            return

        def work() -> None:
            try:
                while not self._stop.is_set():
                    trial = self._start_trial(space, n_trials)
                    if trial is None:
                        return
                    self._run_trial(trial, space, objective_keys, n_trials)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._stop.set()
                if self._abort is None:
                    self._abort = exc

        if slots == 1:
            work()
            return
        threads = [threading.Thread(target=work, name=f"optuna-slot-{i}", daemon=True) for i in range(slots)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
        except KeyboardInterrupt:
            # Ctrl-C reaches the main thread only: mark the slots' running trials here, before
            # the process (and with it the daemon slot threads) goes away.
            self._stop.set()
            for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if trial._trial_id in self._inflight:
                    self._mark_interrupted(trial, "KeyboardInterrupt")
            raise

    def _run_together(self, space: SearchSpace, objective_keys: Optional[list[str]], n_trials: int) -> None:
        """A launcher that trains several jobs as one (hydra/launcher=fused) gets up to its ``fuse``
        size (else n_jobs) trials per launch; each result is told as the launcher hands it back
        (a pruned or diverged member ends before its group does)."""
        from contextlib import ExitStack

        from optuna.storages._heartbeat import get_heartbeat_thread

        size = max(1, int(getattr(self.launcher, "fuse", None) or self.n_jobs))
        while not self._stop.is_set():
            trials = []
            while len(trials) < size and (trial := self._start_trial(space, n_trials)) is not None:
                trials.append(trial)
            if not trials:
                return
            told: set[int] = set()

            def on_return(i: int, ret: JobReturn) -> None:
                with self._returns_lock:
                    self._returns.append((trials[i].number, ret))
                output_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
                if output_dir:
                    trials[i].set_user_attr(ATTR_OUTPUT_DIR, str(output_dir))
                self._record(trials[i], ret, objective_keys)
                told.add(i)

            try:
                jobs = []
                for trial in trials:
                    overrides = self._trial_overrides(trial, space)
                    trial.set_user_attr("overrides", overrides)
                    log.info("Trial %d: %s", trial.number, " ".join(overrides) or "(no params)")
                    jobs.append(overrides + self._identity_overrides(trial))
                with ExitStack() as beats:
                    for trial in trials:
                        beats.enter_context(get_heartbeat_thread(trial._trial_id, self.study._storage))
                    self.launcher.launch_numbered(jobs, [t.number for t in trials], on_return)
            except BaseException as exc:
                for i, trial in enumerate(trials):
                    if i not in told:
                        self._tell(trial, TrialState.FAIL, None, reason=f"interrupted: {one_line(exc)}",
                                   interrupted=True)
                raise
            self._check_failure_budget(n_trials)

    def _start_trial(self, space: SearchSpace, n_trials: int) -> Optional[optuna.Trial]:
        with self.lock.hold():
            self._fail_dead_trials()
            trials = self.study.get_trials(deepcopy=False)
            if sum(counts_toward_budget(t) for t in trials) >= n_trials or self._stop.is_set():
                return None
            trial = self.study.ask(fixed_distributions=space.distributions)
            self._inflight.add(trial._trial_id)
            trial.set_user_attr(ATTR_WORKER, {"host": socket.gethostname(), "pid": os.getpid()})
        if self.spec.lock_path is None and self.spec.persistent:
            # Server RDB: no shared lock, so check that no other worker took the last slot first.
            earlier = [t for t in self.study.get_trials(deepcopy=False)
                       if t.number < trial.number and counts_toward_budget(t)]
            if len(earlier) >= n_trials:
                trial.set_user_attr(ATTR_SURPLUS, True)
                trial.set_user_attr(ATTR_FAIL_REASON, "surplus: other workers took the last trials of the budget")
                self.study.tell(trial, state=TrialState.FAIL)
                return None
        return trial

    def _trial_overrides(self, trial: optuna.Trial, space: SearchSpace) -> list[str]:
        if self.custom_search_space is not None:
            self.custom_search_space(self.config, trial)
        params = dict(trial.params)
        overrides = space.overrides(params)
        extra = [k for k in params if k not in space.order]       # from custom_search_space
        overrides += [f"{k}={format_value(params[k])}" for k in extra]
        return overrides

    def _identity_overrides(self, trial: optuna.Trial) -> list[str]:
        if not self.trial_key or not self.spec.persistent:
            return []
        key = self.trial_key

        def quoted(text: str) -> str:
            return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

        # The job builds this node as one more callback (protocol/__init__.py): it reports to the trial.
        return [f"++{key}._target_={REPORTING_CALLBACK}",
                f"++{key}.storage={quoted(self.spec.url)}", f"++{key}.study_name={quoted(self.study.study_name)}",
                f"++{key}.trial_id={trial._trial_id}", f"++{key}.trial_number={trial.number}"]

    def _run_trial(self, trial: optuna.Trial, space: SearchSpace, objective_keys: Optional[list[str]],
                   n_trials: int) -> None:
        from optuna.storages._heartbeat import get_heartbeat_thread

        try:
            overrides = self._trial_overrides(trial, space)
            trial.set_user_attr("overrides", overrides)
            # Known before the job starts when job folders are numbered (our configs, Hydra's
            # default); replaced by the job's real folder when it returns.
            subdir = OmegaConf.to_container(self.config.hydra.sweep, resolve=False).get("subdir")
            if str(subdir).replace(" ", "") == "${hydra.job.num}":
                trial.set_user_attr(ATTR_OUTPUT_DIR, str(self.sweep_dir / str(trial.number)))
            job_overrides = overrides + self._identity_overrides(trial)
            log.info("Trial %d: %s", trial.number, " ".join(overrides) or "(no params)")
            # Optuna's heartbeat (RDB storages): lets other workers see this trial is alive.
            with get_heartbeat_thread(trial._trial_id, self.study._storage):
                ret = self.launcher.launch([job_overrides], initial_job_idx=trial.number)[0]
        except BaseException as exc:
            # The launch itself broke (Ctrl-C, a composition error, a launcher failure).
            self._tell(trial, TrialState.FAIL, None, reason=f"interrupted: {one_line(exc)}", interrupted=True)
            raise
        with self._returns_lock:
            self._returns.append((trial.number, ret))
        output_dir = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
        if output_dir:
            trial.set_user_attr(ATTR_OUTPUT_DIR, str(output_dir))
        self._record(trial, ret, objective_keys)
        self._check_failure_budget(n_trials)

    def _record(self, trial: optuna.Trial, ret: JobReturn, objective_keys: Optional[list[str]]) -> None:
        try:
            value = ret.return_value               # re-raises the job's exception
        except optuna.TrialPruned as exc:
            log.info("Trial %d pruned: %s", trial.number, str(exc) or "by the pruner")
            self._tell(trial, TrialState.PRUNED, None)
            return
        except Exception as exc:  # noqa: BLE001 - any job failure is recorded, the sweep goes on
            self._tell(trial, TrialState.FAIL, None, reason=one_line(exc))
            return
        if objective_keys is None and isinstance(value, Mapping):
            self._tell(trial, TrialState.FAIL, None, reason="the task returned a dict but no "
                       "hydra.sweeper.objective names its key(s)")
            raise ConfigError(f"the task returns a dict of metrics; set hydra.sweeper.objective to the "
                              f"key(s) to optimise, one of: {', '.join(sorted(map(str, value))[:10])}")
        if objective_keys is None and not is_numeric(value):
            # The job ran fine but gave nothing to optimise (Hydra's own test apps return None or
            # strings): FAIL for Optuna, but not a failed run for max_failure_rate.
            trial.set_user_attr(ATTR_NO_OBJECTIVE, True)
            self._tell(trial, TrialState.FAIL, None, reason=f"the task returned {value!r}, not an objective "
                       "(return a float, or a dict and set hydra.sweeper.objective)")
            return
        try:
            values = objective_values(value, objective_keys, len(self._directions()))
        except ValueError as exc:
            self._tell(trial, TrialState.FAIL, None, reason=str(exc))
            return
        self._tell(trial, TrialState.COMPLETE, values)

    def _tell(self, trial: optuna.Trial, state: TrialState, values: Optional[list[float]],
              reason: Optional[str] = None, interrupted: bool = False) -> None:
        try:
            if reason:
                trial.set_user_attr(ATTR_FAIL_REASON, reason)
                log.warning("Trial %d failed: %s", trial.number, reason)
            if interrupted:
                trial.set_user_attr(ATTR_INTERRUPTED, True)
            self.study.tell(trial, state=state, values=values)
            self._inflight.discard(trial._trial_id)
            if interrupted:
                self._requeue_grid_point(trial.params)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning("Trial %d was already finished (interrupted, or failed by a worker that took it for dead); its result is dropped",
                        trial.number)

    def _check_failure_budget(self, n_trials: int) -> None:
        trials = self.study.get_trials(deepcopy=False)
        failures = [t for t in trials if is_failure(t)]
        allowed = self.max_failure_rate * n_trials
        if len(failures) > allowed and not self._stop.is_set():
            self._stop.set()
            last = failures[-1].user_attrs.get(ATTR_FAIL_REASON, "?")
            self._abort = SweepFailedError(
                f"{len(failures)} of the study's {n_trials} trials failed, more than "
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate} allows; last: trial "
                f"{failures[-1].number}: {last}")

    # --- results -------------------------------------------------------------------------------
