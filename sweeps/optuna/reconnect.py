"""Storage calls that ride out a storage server's restart or a network blip.

Optuna's RDBStorage turns a lost connection into ``StorageInternalError`` (or lets SQLAlchemy's
``OperationalError`` through) at the first call that needs the server, so a PostgreSQL restart in
the middle of a sweep killed every worker with a traceback. ``ReconnectingStorage`` wraps the
storage a sweeper or a job uses and retries any call that failed for want of a connection, with
backoff, for up to ``patience`` seconds (``hydra.sweeper.reconnect_timeout``); SQLAlchemy replaces
the dead pooled connections by itself on the retry. If the server is still gone by then, it raises
``StorageUnavailableError``: one line saying the study is safe (everything told to the storage is
committed there) and that rerunning the same command resumes it.

Optuna has no retry of its own for this: ``RetryFailedTrialCallback`` re-runs failed trials, it
does not reconnect.
"""

from __future__ import annotations

import abc
import logging
import random
import threading
import time
from typing import Any, Callable

from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat

from protocol.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_PATIENCE = 60.0


class StorageUnavailableError(UserError):
    """The study's storage server stopped answering for longer than the sweep waits."""


def is_connection_error(exc: BaseException) -> bool:
    """A call that failed because the server could not be reached or dropped the connection (as
    opposed to a call the server refused, which retrying would not change)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (OperationalError, InterfaceError)):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        error = error.__cause__ or error.__context__
    return False


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse has no password to hide
        return url


class ReconnectingStorage(BaseStorage, BaseHeartbeat):
    """Every storage method of ``inner`` (an RDB storage), retried while the server is unreachable."""

    def __init__(self, inner: BaseStorage, url: str, patience: float = DEFAULT_PATIENCE):
        self._inner, self._url, self._patience = inner, url, float(patience)
        self._gave_up: StorageUnavailableError | None = None
        self._lock = threading.Lock()
        self._warned = False                         # one warning per outage, whatever the threads do

    def _call(self, name: str, args: tuple, kwargs: dict) -> Any:
        method: Callable = getattr(self._inner, name)
        if self._gave_up is not None:                # one wait per process, not one per call
            raise self._gave_up
        deadline, delay, failed = time.monotonic() + self._patience, 0.25, False
        while True:
            try:
                result = method(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - sorted just below
                if not is_connection_error(exc):
                    raise
                reason = _reason(exc)
                if time.monotonic() >= deadline:
                    with self._lock:
                        self._gave_up = self._gave_up or StorageUnavailableError(
                            f"the study's storage {shown_url(self._url)} has not answered for {self._patience:g} s "
                            f"({reason}); the study is safe there: when the server is back, rerun the same command "
                            "to resume (finished trials are kept, trials cut short run again; wait longer with "
                            "hydra.sweeper.reconnect_timeout)")
                    raise self._gave_up from None
                failed = True
                with self._lock:
                    if not self._warned:
                        self._warned = True
                        log.warning("Study storage %s unreachable (%s); retrying for up to %g s",
                                    shown_url(self._url), reason, self._patience)
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 5.0)
                continue
            if failed:
                with self._lock:
                    if self._warned:
                        self._warned = False
                        log.warning("Study storage %s is back", shown_url(self._url))
            return result

    # A missed heartbeat costs nothing (other workers allow a grace period), while waiting or raising
    # in Optuna's heartbeat thread would print a traceback: heartbeats are not retried.
    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self._inner.record_heartbeat(trial_id)
        except Exception as exc:  # noqa: BLE001
            if not is_connection_error(exc):
                raise
            log.debug("heartbeat of trial %d not recorded: %s", trial_id, _reason(exc))

    def get_heartbeat_interval(self) -> int | None:
        return self._inner.get_heartbeat_interval() if isinstance(self._inner, BaseHeartbeat) else None

    def __getstate__(self) -> dict:
        return {"_inner": self._inner, "_url": self._url, "_patience": self._patience}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["_inner"], state["_url"], state["_patience"])


def _reason(exc: BaseException) -> str:
    """The driver's own first line, e.g. 'connection to server at "db", port 5432 failed: Connection refused'."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(getattr(root, "orig", None) or root).strip().splitlines()
    return text[0] if text else type(root).__name__


def _retrying(name: str) -> Callable:
    def method(self: ReconnectingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, args, kwargs)

    method.__name__ = method.__qualname__ = name
    return method


_OWN = {"record_heartbeat", "get_heartbeat_interval"}
for _base in (BaseStorage, BaseHeartbeat):
    for _name, _member in vars(_base).items():
        if callable(_member) and (not _name.startswith("_") or _name == "_get_stale_trial_ids") and _name not in _OWN:
            setattr(ReconnectingStorage, _name, _retrying(_name))
abc.update_abstractmethods(ReconnectingStorage)
