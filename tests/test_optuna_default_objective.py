"""hydra/sweeper=optuna without a preset, as a user of the upstream plugin would start it:

    python train.py -m hydra/sweeper=optuna 'beta=tag(log, interval(0.001, 1))' \
        'latent_size=choice(2, 10)' hydra.sweeper.n_trials=3

Before the fix every trial ran to the end and was then marked FAIL ("no hydra.sweeper.objective
names its key"), and the sweep stopped. Now the objective defaults to the root config's
``optimized_metric`` (validation −ELBO, minimised), and an objective no run produces is one line
before any trial runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from conftest import PYTHON, PROJECT_ROOT, user_env

COMMAND = ["-m", "hydra/sweeper=optuna", "beta=tag(log, interval(0.001, 1))", "latent_size=choice(2, 10)",
           "hydra.sweeper.n_trials=3"]
# Small budgets, trials one after another in this process (the objective does not depend on the launcher).
SMALL = ["debug=smoke", "logger=csv", "report.enabled=false", "hydra/launcher=basic"]


def train_py(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = user_env()
    return subprocess.run([PYTHON, str(PROJECT_ROOT / "train.py"), *args, f"paths.log_dir={tmp / 'out'}",
                           f"hydra.sweep.dir={tmp / 'sweep'}", "hydra.sweeper.study_name=plain"],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_plain_optuna_sweep_minimises_validation_neg_elbo_by_default(tmp_path):
    proc = train_py(tmp_path, *COMMAND, *SMALL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The default storage is relative to where the command starts (here tmp_path).
    study = optuna.load_study(study_name="plain", storage=f"sqlite:///{tmp_path / 'outputs' / 'optuna.db'}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    for t in trials:
        record = json.loads((tmp_path / "sweep" / str(t.number) / "metrics.json").read_text())
        assert t.value == pytest.approx(record["metrics"]["val/neg_elbo"])
        assert 0.001 <= t.params["beta"] <= 1 and t.params["latent_size"] in (2, 10)


def test_an_objective_no_run_produces_is_one_line_before_any_trial(tmp_path):
    # (optimized_metric=val/nope is in the error catalogue, tests/error_catalogue.py)
    wrong = "hydra.sweeper.objective=test/nope"
    proc = train_py(tmp_path, *COMMAND, *SMALL, wrong)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    key = wrong.split("=")[1]
    assert lines == [f"error: objective {key} is not a metric a run produces; choose from: val/loss, val/distortion, "
                     "val/rate, val/neg_elbo, test/distortion, test/rate, test/neg_elbo, test/nll_iwae, "
                     "test/active_units, steps, wall_time_s, test/mig, test/dci_disentanglement, "
                     "test/dci_completeness, test/dci_informativeness, test/factor_vae, test/beta_vae"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []          # no study, no sweep folder, no logs
