"""Trials whose worker died: found when a worker starts or looks for work, failed with the reason,
and their budget (and grid point) given back."""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime
from typing import Any, Mapping

import optuna
from optuna.trial import TrialState

from sweeps.optuna.trials import process_alive
from protocol import ATTR_FAIL_REASON, ATTR_INTERRUPTED, ATTR_WORKER

log = logging.getLogger(__name__)

# Clocks of machines sharing a server storage differ a little; see _fail_dead_trials.
ORPHAN_MARGIN_S = 5.0


class DeadTrials:
    """Part of OptunaSweeperImpl (optuna_sweeper.py), which holds the state these methods share."""

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
