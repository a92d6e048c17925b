"""optuna-dashboard, the tool the README sends people to for browsing a study, read back as a real
client: started on 127.0.0.1 against a finished sweep's study (COMPLETE, PRUNED and FAIL trials),
its HTTP API must list the study, its trials, their params and values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from postgres import free_port

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "apps" / "objective.py"
DASHBOARD = str(Path(sys.executable).parent / "optuna-dashboard")


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def finished_study(tmp_path) -> str:
    """A real sweep of the tiny app over the grid y=0,1,2: y=0 completes, y=1 is pruned, y=2 crashes."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    proc = subprocess.run([sys.executable, str(APP), "-m", "hydra/sweeper=optuna", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                           f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=dash", "x=0.5", "y=0,1,2",
                           "prune_on=1", "crash_on=2", "hydra.sweeper.max_failure_rate=1.0"],
                          cwd=ROOT, env={**os.environ, "CI": "1"}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return storage


def test_optuna_dashboard_serves_the_study_trials_params_and_values(finished_study):
    stored = optuna.load_study(study_name="dash", storage=finished_study).get_trials()
    assert sorted(t.state.name for t in stored) == ["COMPLETE", "FAIL", "PRUNED"]

    port = free_port()
    server = subprocess.Popen([DASHBOARD, finished_study, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                studies = get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "optuna-dashboard did not answer"
                time.sleep(0.2)
        assert [(s["study_name"], s["directions"]) for s in studies] == [("dash", ["minimize"])]
        detail = get(f"{base}/api/studies/{studies[0]['study_id']}")
    finally:
        server.terminate()
        server.wait(timeout=30)

    served = {t["number"]: t for t in detail["trials"]}
    assert sorted(served) == sorted(t.number for t in stored)
    for trial in stored:
        shown = served[trial.number]
        assert shown["state"] == trial.state.name.capitalize()             # Complete, Pruned, Fail
        assert {p["name"]: p["param_external_value"] for p in shown["params"]} == {"y": str(trial.params["y"])}
        assert shown.get("values") == trial.values                         # None unless COMPLETE
        assert {a["key"]: a["value"] for a in shown["user_attrs"]}["output_dir"] == trial.user_attrs["output_dir"]
    complete = next(t for t in stored if t.state.name == "COMPLETE")
    assert complete.value == pytest.approx((0.5 - 1.0) ** 2) and served[complete.number]["values"] == [0.25]
    assert [t["number"] for t in detail["best_trials"]] == [complete.number]
