"""A W&B API key without a reachable W&B server (a cluster's compute nodes, an outage).

Reproduction (before the fix: ~100 s of waiting, then `CommError: Failed to get resume status …
context deadline exceeded` and a traceback):

    WANDB_API_KEY=<any 40 chars> WANDB_BASE_URL=http://127.0.0.1:<closed port> python train.py

Expected: a bounded wait (logger.init_timeout), one warning line, the run logs offline and
finishes, and its offline run is complete (W&B's own reader reads it back) for `wandb sync`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, PROJECT_ROOT
from vae import loggers

WANDB = str(Path(PYTHON).parent / "wandb")
WARNING = "could not be reached"


def closed_port() -> int:
    """A local port nothing listens on: bound, then released (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_server(monkeypatch, tmp_path) -> dict:
    """The environment of a user with a key whose W&B server cannot be reached."""
    env = {"WANDB_API_KEY": "k" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}",
           "WANDB_SILENT": "true", "HOME": str(tmp_path), "NETRC": str(tmp_path / "netrc")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("WANDB_MODE", raising=False)   # conftest makes tests offline; this one must try online
    monkeypatch.setattr(loggers, "_unreachable", {})  # nothing remembered from other tests
    return env


def inspect(run_dir: Path, *flags: str):
    out = subprocess.run([WANDB, "leet", "inspect", *flags, "--json", str(run_dir)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out) if "--summary" in flags else [json.loads(line) for line in out.splitlines()]


def test_an_unreachable_server_costs_one_warning_and_the_run_goes_on_offline(unreachable_server, tmp_path, caplog):
    import wandb

    def start(mode: str):
        return wandb.init(project="p", dir=str(tmp_path), mode=mode,
                          settings=wandb.Settings(silent=True, init_timeout=2))

    with caplog.at_level(logging.WARNING, logger="vae.loggers"):
        run = loggers.start_wandb(start, loggers.wandb_mode("auto"), timeout=2)
        run.log({"x": 1.0})
        run_dir = Path(run.settings.sync_dir)
        wandb.finish()
        again = loggers.start_wandb(start, "online", timeout=2)   # later runs in this process: no new wait
        wandb.finish()
    assert run.offline and again.offline
    warnings = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    # The reason is W&B's own words ("connection refused"; "no such host" when this process's W&B service
    # was started by an earlier test): the line names the server and how to upload later.
    assert len(warnings) == 2 and unreachable_server["WANDB_BASE_URL"] in warnings[0] and "wandb sync" in warnings[0]
    history = [r["history"] for r in inspect(run_dir) if r["type"] == "history"]
    assert any("x" in row["item"] for row in history)


@pytest.mark.slow
def test_every_job_of_a_multirun_and_its_report_log_offline(unreachable_server, tmp_path):
    # Two jobs and the report's own W&B run, all in one process (the basic launcher), as several jobs
    # run in one joblib worker: the second job must neither wait again nor go offline silently.
    sweep = tmp_path / "sweep"
    env = {**os.environ, "CI": "1"}
    proc = subprocess.run([PYTHON, str(PROJECT_ROOT / "train.py"), "-m", "beta=0,1", "debug=smoke",
                           "logger.init_timeout=3", "hydra/launcher=basic", f"hydra.sweep.dir={sweep}",
                           f"paths.log_dir={tmp_path / 'out'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and "CommError" not in output
    warnings = [line for line in output.splitlines() if WARNING in line]
    assert len(warnings) == 3, warnings                       # one per job, one for the report
    assert all(unreachable_server["WANDB_BASE_URL"] in w and "logger.init_timeout=3" in w for w in warnings)
    for job in ("0", "1"):
        (run_dir,) = (sweep / job / "wandb").glob("offline-run-*")
        summary = inspect(run_dir, "--summary")
        assert summary["state"] == "finished"
        record = json.loads((sweep / job / "metrics.json").read_text())
        assert summary["summary"]["test/nll_iwae"] == pytest.approx(record["metrics"]["test/nll_iwae"])
    (report_run,) = (sweep / "wandb").glob("offline-run-*")
    assert inspect(report_run, "--summary")["summary"]["runs_completed"] == 2
