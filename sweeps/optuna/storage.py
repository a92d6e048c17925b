"""Where a study lives: turning ``hydra.sweeper.storage`` into an Optuna storage, checked up front.

Accepted values (all checked before any trial runs; a bad one is a one-line ``ConfigError``):

- ``sqlite:///path/to/file.db`` (a relative path is taken from the directory the command was
  started in; the folder is created). One machine, any number of worker processes.
- any other SQLAlchemy URL Optuna's RDBStorage takes, e.g. ``postgresql://user@host/db`` or
  ``mysql+pymysql://...``: workers on many machines.
- ``journal:path/to/file.log``: Optuna's JournalStorage on a file (one machine or a shared
  file system with working file locks).
- ``null`` (or ``memory``): in memory, as the upstream plugin's default. Nothing survives the
  process: no resume, no extra workers, and no pruning from jobs in other processes.

RDB storages get Optuna's heartbeat (``heartbeat_interval``/``grace_period``), so a trial whose
worker died is failed by whichever worker looks next, on any machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import optuna
import sqlalchemy
from optuna.storages.journal import JournalFileBackend
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from protocol.errors import ConfigError
from sweeps.optuna.reconnect import DEFAULT_PATIENCE, ReconnectingStorage

ACCEPTED = ("use sqlite:///path.db, an RDB URL such as postgresql://user@host/db, "
            "journal:path.log, or null (in memory)")


@dataclass
class StorageSpec:
    """The parsed storage setting: what to build, and what to tell jobs so they can reach it."""

    kind: str                   # "memory" | "rdb" | "journal"
    url: Optional[str]          # absolute URL handed to jobs (None in memory)
    # A local file to serialise "may I start a trial?" across processes. Not "<file>.lock":
    # Optuna's journal backend uses that name for its own lock.
    lock_path: Optional[Path]

    @property
    def persistent(self) -> bool:
        return self.kind != "memory"

    @property
    def file(self) -> Optional[Path]:
        """The journal or SQLite file the study lives in; None for memory and server storages."""
        if self.kind == "journal":
            return Path(self.url[len("journal:"):])
        if self.url is not None and self.url.startswith("sqlite:///"):
            return Path(self.url[len("sqlite:///"):])
        return None


def parse_storage(value: Optional[str], base_dir: Path) -> StorageSpec:
    """Normalise the setting; relative file paths are made absolute against ``base_dir``
    (jobs may change directory, and other processes must find the same file)."""
    if value is None or str(value).strip().lower() in ("", "memory", "none", "null"):
        return StorageSpec("memory", None, None)
    text = str(value).strip()
    if text.startswith("journal:"):
        raw = text[len("journal:"):]
        raw = raw[2:] if raw.startswith("//") else raw          # journal:///abs and journal:rel both work
        if not raw:
            raise ConfigError(f"hydra.sweeper.storage={text} names no journal file; {ACCEPTED}")
        path = (base_dir / raw).resolve() if not os.path.isabs(raw) else Path(raw)
        return StorageSpec("journal", f"journal:{path}", path.with_name(path.name + ".sweep-lock"))
    try:
        url = make_url(text)
    except Exception:  # noqa: BLE001 - any parse failure is the same user mistake
        raise ConfigError(f"hydra.sweeper.storage={text} is not a storage URL Optuna understands; "
                          f"{ACCEPTED}") from None
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError(f"hydra.sweeper.storage={text} names no database file; {ACCEPTED}")
        path = Path(url.database)
        path = path if path.is_absolute() else (base_dir / path).resolve()
        return StorageSpec("rdb", f"sqlite:///{path}", path.with_name(path.name + ".sweep-lock"))
    return StorageSpec("rdb", text, None)


def build_storage(spec: StorageSpec, heartbeat_interval: Optional[int] = None,
                  grace_period: Optional[int] = None,
                  reconnect_timeout: float = DEFAULT_PATIENCE) -> optuna.storages.BaseStorage:
    """Open the storage now, so that a wrong URL or a missing driver fails before any trial.

    An RDB storage comes wrapped in ``ReconnectingStorage``: later calls ride out a server restart
    for up to ``reconnect_timeout`` seconds (sweeps/optuna/reconnect.py)."""
    if spec.kind == "memory":
        return optuna.storages.InMemoryStorage()
    try:
        if spec.file is not None:
            spec.file.parent.mkdir(parents=True, exist_ok=True)
        if spec.kind == "journal":
            return optuna.storages.JournalStorage(JournalFileBackend(str(spec.file)))
    except OSError as exc:
        raise ConfigError(f"hydra.sweeper.storage={spec.url}: cannot create its folder "
                          f"({exc.strerror or exc}); choose a writable path") from None
    for attempt in range(CREATION_ATTEMPTS):
        try:
            storage = optuna.storages.RDBStorage(spec.url, heartbeat_interval=heartbeat_interval,
                                                 grace_period=grace_period, engine_kwargs=_engine_kwargs(spec.url))
            return ReconnectingStorage(optuna.storages.get_storage(storage), spec.url, reconnect_timeout)
        except Exception as exc:  # noqa: BLE001 - unknown dialect, missing driver, unreachable server
            if creation_race(exc) and attempt + 1 < CREATION_ATTEMPTS:
                time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
                continue
            raise open_error(spec, exc) from None
    raise AssertionError("unreachable")


def open_error(spec: StorageSpec, exc: BaseException) -> ConfigError:
    """The one line for a storage that cannot be opened: unknown dialect, missing driver, unreachable server."""
    missing = None
    if isinstance(exc, ImportError):   # SQLAlchemy's own, or Optuna's wrapping it
        missing = getattr(exc, "name", None) or getattr(exc.__cause__, "name", None)
    if missing:
        return ConfigError(f"hydra.sweeper.storage={spec.url}: its database driver {missing} is not "
                           f"installed; pip install {missing} (for postgresql:// URLs the project's "
                           f"extra: pip install -e '.[postgres]')")
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ConfigError(f"hydra.sweeper.storage={spec.url} is not a storage URL Optuna understands "
                       f"or cannot be opened ({reason}); {ACCEPTED}")


def check_storage(spec: StorageSpec) -> None:
    """What build_storage would refuse, found without creating anything: the sweeper checks this
    first, so that a storage mistake is reported before the (slower) check of every job's config.

    A file storage's folder must be creatable; a server's dialect and driver must load and the
    server must answer (a connection creates nothing). What only creating can show is left to
    build_storage."""
    if spec.kind == "memory":
        return
    if spec.file is not None:
        folder = spec.file.parent
        existing = next(p for p in (folder, *folder.parents) if p.exists())
        if not existing.is_dir():
            raise ConfigError(f"hydra.sweeper.storage: cannot create {folder if existing == folder else existing} "
                              f"(File exists); choose a writable path")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"hydra.sweeper.storage: cannot create {folder} (Permission denied); "
                              f"choose a writable path")
        return
    try:
        engine = sqlalchemy.create_engine(spec.url, **(_engine_kwargs(spec.url) or {}))
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - the same mistakes build_storage reports
        raise open_error(spec, exc) from None


def _engine_kwargs(url: str) -> Optional[dict]:
    if url.startswith("sqlite"):
        # Several workers write to one file: wait for SQLite's lock instead of failing.
        return {"connect_args": {"timeout": 60}}
    if url.startswith("postgresql"):
        # libpq waits for the OS's TCP timeout (minutes) on a host that drops packets: bound each
        # connection attempt, so that reconnect_timeout bounds the whole wait.
        return {"connect_args": {"connect_timeout": 10}}
    return None


# Optuna creates its tables (SQLAlchemy's create_all, then an alembic stamp) on first use, and that
# is not safe when several clients open a brand-new database at once: a SLURM array's workers on
# one PostgreSQL database, optuna-dashboard on the SQLite file a sweep is creating. The losers get
# "table studies already exists" (SQLite), UniqueViolation on pg_type_typname_nsp_index or
# DuplicateTable (PostgreSQL), or a duplicate alembic_version row. Each such error means another
# client has just created what this one tried to, so opening again succeeds: retried, with jitter.
# (Our own workers on one machine also serialise the creation with the flock in BudgetLock; clients
# on other machines, and foreign clients, cannot take that lock.)
CREATION_ATTEMPTS = 10


def creation_race(exc: BaseException) -> bool:
    """The error of a client that lost a race with another one creating the same tables."""
    for error in (exc, exc.__cause__):
        if isinstance(error, (IntegrityError, ProgrammingError)):      # duplicate key / type / table
            return True
        if isinstance(error, OperationalError) and any(
                text in str(error).lower() for text in ("already exists", "database is locked")):
            return True
    return False


def load_storage_from_url(url: str) -> optuna.storages.BaseStorage:
    """The same storage, opened from a job (possibly in another process or on another machine)."""
    if url.startswith("journal:"):
        return build_storage(StorageSpec("journal", url, None))
    return build_storage(StorageSpec("rdb", url, None))


class BudgetLock:
    """Makes "count the trials, then start one" atomic for the workers that share a study.

    Threads of one sweeper share a ``threading.Lock``; processes on one machine share an
    ``flock`` on a file beside the SQLite/journal file. Server RDBs (several machines) have no
    shared file: there the sweeper re-checks after starting a trial (see ``OptunaSweeperImpl``).
    """

    def __init__(self, lock_path: Optional[Path]):
        self._thread_lock = threading.Lock()
        self._path = lock_path

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            if self._path is None:
                yield
                return
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(self._path, "a")
            except OSError as exc:
                raise ConfigError(f"hydra.sweeper.storage: cannot create {self._path.parent} "
                                  f"({exc.strerror or exc}); choose a writable path") from None
            with handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
