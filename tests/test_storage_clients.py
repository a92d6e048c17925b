"""Several clients on one study storage, with real storages: a PostgreSQL server started by the
suite (tests/postgres.py), SQLite files, and Optuna's journal file.

Reproductions (before the fix):
- three workers of one command started together on a fresh PostgreSQL database (a SLURM array)
  -> one died with "UniqueViolation ... pg_type_typname_nsp_index", reported as a bad URL;
- another Optuna client (optuna-dashboard, a monitoring script) opening the brand-new SQLite file
  as a sweep starts -> the sweep died with "table studies already exists".
The multi-machine recipe of docs/sweeps.md ("More workers") is the one tested here.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.optuna.storage import StorageSpec, build_storage, parse_storage
from vae.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "apps" / "objective.py"
ENV = {**os.environ, "CI": "1", "HYDRA_FULL_ERROR": "1"}


# --- opening a brand-new storage together ---------------------------------------------------
def _open(url: str, ours: bool, barrier, results) -> None:
    try:
        barrier.wait()
        if ours:
            build_storage(parse_storage(url, Path("/")))
        else:                        # a foreign client: Optuna's own RDBStorage, as optuna-dashboard opens it
            optuna.storages.RDBStorage(url)
        results.put("ok")
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        results.put(f"{type(exc).__name__}: {exc}"[:300])


def open_together(url: str, ours: list[bool]) -> list[str]:
    """Open ``url`` from len(ours) processes released at the same instant; each one's outcome, in order."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(len(ours)), [ctx.Queue() for _ in ours]
    procs = [ctx.Process(target=_open, args=(url, mine, barrier, q)) for mine, q in zip(ours, results)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    return [q.get(timeout=5) for q in results]


def test_three_workers_opening_a_fresh_postgres_database_together_all_succeed(postgres_server):
    # Without retrying, 3 of 4 rounds lost a worker to the creation race on this machine.
    for round_ in range(2):
        url = postgres_server.create_database(f"together_{round_}_{os.getpid()}")
        assert open_together(url, [True, True, True]) == ["ok"] * 3
        tables = optuna.storages.RDBStorage(url)                      # one schema, usable
        assert optuna.create_study(storage=tables, study_name="s").study_name == "s"


def test_a_sweep_opening_a_new_sqlite_file_beside_foreign_clients_succeeds(tmp_path):
    # Our client beside two of Optuna's own (which may still lose the race among themselves: that
    # is Optuna's behaviour, and such a client, e.g. optuna-dashboard, is simply started again).
    for round_ in range(3):
        outcome = open_together(f"sqlite:///{tmp_path / f'new{round_}.db'}", [True, False, False])
        assert outcome[0] == "ok", outcome


def test_a_genuinely_bad_url_keeps_its_one_line_error_at_once(postgres_server):
    missing = postgres_server.url("no_such_database")
    started = time.monotonic()
    with pytest.raises(ConfigError, match='cannot be opened .*database "no_such_database" does not exist'):
        build_storage(StorageSpec("rdb", missing, None))
    assert time.monotonic() - started < 5                             # not retried as a race
    with pytest.raises(ConfigError, match="is not a storage URL Optuna understands"):
        build_storage(parse_storage("nosuchdialect://x/y", Path("/")))


# --- several workers of one sweep, one of them killed ----------------------------------------
def sweep_command(tmp: Path, storage: str, n_trials: int) -> list[str]:
    return [sys.executable, str(APP), "-m", "hydra/sweeper=optuna", f"hydra.sweep.dir={tmp / 'sweep'}",
            f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=many", "x=interval(-2,2)", "y=0",
            "sleep=1.0", f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.sampler.seed=0"]


def kill_one_worker_mid_trial(workers: list[subprocess.Popen], study_of, sweep_dir: Path) -> int:
    """Wait until a worker's job is running (its folder is made: the worker is past its storage
    writes for that trial), SIGKILL that worker and reap it, as its shell would; its pid.

    (Killed inside a journal write, a worker leaves the journal's own lock file behind, which
    Optuna's JournalFileBackend takes over only after its 30 s grace period.)
    """
    pids = {w.pid: w for w in workers}
    deadline = time.monotonic() + 120
    study = None
    while time.monotonic() < deadline:
        try:
            study = study or study_of()
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        except Exception:  # noqa: BLE001 - the study does not exist yet
            running = []
        victims = [t.user_attrs["worker"]["pid"] for t in running
                   if t.user_attrs.get("worker", {}).get("pid") in pids
                   and (sweep_dir / str(t.number) / ".hydra" / "overrides.yaml").exists()]
        if victims:
            victim = pids[victims[0]]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            return victim.pid
        time.sleep(0.05)
    raise AssertionError("no worker started a trial")


def run_workers_and_kill_one(tmp: Path, storage: str, study_of, workers: int, n_trials: int) -> tuple[list, int]:
    command = sweep_command(tmp, storage, n_trials)
    procs = [subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(workers)]
    try:
        killed = kill_one_worker_mid_trial(procs, study_of, tmp / "sweep")
        for proc in procs:
            if proc.pid != killed:
                _, err = proc.communicate(timeout=300)
                assert proc.returncode == 0, err[-3000:]
                assert "Traceback" not in err, err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return study_of().get_trials(), killed


def assert_exactly_n_trials_finished(trials: list, killed: int, n_trials: int, tmp: Path) -> None:
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    assert len(by_state[TrialState.COMPLETE]) == n_trials
    assert by_state[TrialState.RUNNING] == [] and by_state[TrialState.WAITING] == []
    interrupted = [t for t in by_state[TrialState.FAIL] if t.user_attrs.get("interrupted")]
    assert [t.user_attrs["worker"]["pid"] for t in interrupted] == [killed]   # the killed worker's trial
    # Any other FAIL is a worker that lost the race for the last slot and stood down (server RDB only).
    assert all(t.user_attrs.get("surplus") for t in by_state[TrialState.FAIL] if not t.user_attrs.get("interrupted"))
    # Seeded (as the presets are): only the worker that created the study keeps the seed, so no
    # two workers replay the same start-up points.
    assert len({t.params["x"] for t in by_state[TrialState.COMPLETE]}) == n_trials
    for t in by_state[TrialState.COMPLETE]:
        job = json.loads((tmp / "sweep" / str(t.number) / "job.json").read_text())
        assert t.value == pytest.approx((job["x"] - 1.0) ** 2)


@pytest.mark.slow
def test_three_workers_on_a_fresh_postgres_database_one_killed_finish_exactly_n_trials(tmp_path, fresh_postgres):
    trials, killed = run_workers_and_kill_one(
        tmp_path, fresh_postgres, lambda: optuna.load_study(study_name="many", storage=fresh_postgres),
        workers=3, n_trials=6)
    assert_exactly_n_trials_finished(trials, killed, 6, tmp_path)


@pytest.mark.slow
def test_two_workers_on_a_journal_file_one_killed_finish_exactly_n_trials(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "study.log"
    trials, killed = run_workers_and_kill_one(
        tmp_path, f"journal:{journal}",
        lambda: optuna.load_study(study_name="many", storage=JournalStorage(JournalFileBackend(str(journal)))),
        workers=2, n_trials=4)
    assert_exactly_n_trials_finished(trials, killed, 4, tmp_path)
    assert not any(t.user_attrs.get("surplus") for t in trials)       # the journal's flock: no races
