"""The sweep loop: each worker slot asks Optuna for a trial, launches it as a one-job launch, tells
the result and asks again, so a slot never waits for the others."""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Mapping, Optional

import optuna
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf
from optuna.trial import TrialState

from sweeps.optuna.objective import is_numeric, objective_values
from sweeps.optuna.search_space import SearchSpace, format_value
from sweeps.optuna.trials import counts_toward_budget, is_failure, one_line
from protocol import (ATTR_FAIL_REASON, ATTR_INTERRUPTED, ATTR_NO_OBJECTIVE, ATTR_OUTPUT_DIR,
                          ATTR_SURPLUS, ATTR_WORKER)
from protocol.errors import ConfigError, UserError

log = logging.getLogger(__name__)

REPORTING_CALLBACK = "sweeps.optuna.pruning.OptunaPruning"   # what a trial's job reports through


class SweepFailedError(UserError):
    """Too many trials failed (``max_failure_rate``)."""


class TrialLoop:
    """Part of OptunaSweeperImpl (optuna_sweeper.py), which holds the state these methods share."""

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
