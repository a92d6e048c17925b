"""hydra/sweeper=optuna: search space, storage errors, and whole sweeps.

Sweeper mechanics (budget, failures, kill/resume, parallel workers) run on the tiny app in
tests/apps/objective.py (a quadratic, ~0.3 s a trial). Pruning, the presets, metrics.json and
W&B run on train.py itself with tiny budgets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from conftest import user_env
from sweeps.optuna.search_space import parse_search_space
from sweeps.optuna.storage import parse_storage
from vae.errors import ConfigError

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
APP = ROOT / "tests" / "apps" / "objective.py"
TINY = ["trainer.max_steps=20", "trainer.val_check_interval=10", "data.train_subset=2000",
        "data.val_size=1000", "eval.iwae_samples=2", "callbacks=none"]
ENV = user_env(HYDRA_FULL_ERROR="1")


def run(args: list[str], cwd: Path = ROOT, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([PY, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


def app_sweep(tmp: Path, *extra: str, study: str = "s") -> list[str]:
    return [str(APP), "-m", "hydra/sweeper=optuna", f"hydra.sweep.dir={tmp / 'sweep'}",
            f"hydra.sweeper.storage=sqlite:///{tmp / 'study.db'}", f"hydra.sweeper.study_name={study}",
            "x=interval(-2,2)", *extra]


def load(tmp: Path, study: str = "s") -> optuna.Study:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{tmp / 'study.db'}")


def states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


# --- search space -------------------------------------------------------------------------
def test_upstream_search_space_syntax_maps_to_optuna_distributions():
    space = parse_search_space(
        {"lr": "tag(log, interval(1e-4, 1e-1))", "units": "range(16, 64, 16)", "act": "choice(relu, tanh)"},
        ["drop=interval(0, 0.5)", "k=int(interval(1, 8))", "+extra=3", "opt=adam,sgd"])
    d = space.distributions
    assert d["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert d["units"] == IntDistribution(16, 64, step=16)          # as upstream: 64 included
    assert d["drop"] == FloatDistribution(0.0, 0.5)
    assert d["k"] == IntDistribution(1, 8)
    assert isinstance(d["act"], CategoricalDistribution) and set(d["act"].choices) == {"relu", "tanh"}
    assert set(d["opt"].choices) == {"adam", "sgd"}
    assert space.fixed == {"+extra": "3"}
    assert space.grid() is None                                     # continuous dims: sampled
    assert parse_search_space(None, ["a=1,2", "b=x,y"]).grid() == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]


@pytest.mark.parametrize("params, message", [
    ({"beta": "interval(1, 0.1)"}, "inverted"),
    ({"beta": "tag(log, interval(0, 1))"}, "log interval with a bound ≤ 0"),
    ({"beta": "choice()"}, "cannot parse the search space"),
    ({"beta": "range(5, 1)"}, "empty or inverted"),
])
def test_bad_search_space_is_a_config_error(params, message):
    with pytest.raises(ConfigError, match=message):
        parse_search_space(params, [])


def test_zero_below_sends_beta_zero_to_the_job_but_keeps_the_sampled_value():
    space = parse_search_space({"beta": "tag(log, interval(1e-3, 10))"}, ["latent_size=2"], {"beta": 2e-3})
    assert space.overrides({"beta": 1.5e-3}) == ["beta=0", "latent_size=2"]
    assert space.overrides({"beta": 0.5}) == ["beta=0.5", "latent_size=2"]
    with pytest.raises(ConfigError, match="must lie inside"):
        parse_search_space({"beta": "tag(log, interval(1e-3, 10))"}, [], {"beta": 20})


def test_storage_urls_are_normalised(tmp_path):
    assert parse_storage(None, tmp_path).kind == "memory"
    sqlite = parse_storage("sqlite:///sub/x.db", tmp_path)
    assert sqlite.url == f"sqlite:///{tmp_path}/sub/x.db" and sqlite.lock_path == tmp_path / "sub" / "x.db.sweep-lock"
    journal = parse_storage("journal:j/log.jsonl", tmp_path)
    assert journal.kind == "journal" and journal.url == f"journal:{tmp_path}/j/log.jsonl"
    assert parse_storage("postgresql://u@h/db", tmp_path).lock_path is None


def test_bad_storage_url_is_one_line_error_before_any_trial(tmp_path):
    proc = run(["train.py", "hparams_search=optuna_nll", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                "hydra.sweeper.storage=foo://x", *TINY], check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert lines[-1].startswith("error: hydra.sweeper.storage=foo://x is not a storage URL Optuna understands")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "sweep" / "0").exists()                 # no trial ran


def test_out_of_range_bound_is_caught_before_any_trial(tmp_path):
    proc = run(["train.py", "hparams_search=optuna_nll", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                f"hydra.sweeper.storage=sqlite:///{tmp_path / 'db.sqlite'}",
                "latent_size=range(0,4)", *TINY], check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: latent_size=0 is invalid")
    assert not (tmp_path / "sweep" / "0").exists()


# --- sweeps on the tiny apps ----------------------------------------------------------------
def test_an_upstream_config_runs_unchanged(tmp_path):
    # tests/apps/upstream.yaml uses upstream's keys, sampler fields, storage: null (in memory).
    run([str(ROOT / "tests" / "apps" / "sphere.py"), "-m", f"hydra.sweep.dir={tmp_path}"])
    results = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert results.name == "optuna" and results.trials.COMPLETE == 12 and results.storage is None
    best = results.best_params
    assert best.x % 0.5 == 0 and best.y in (-5, 0, 5)
    assert results.best_value == best.x ** 2 + best.y ** 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == sorted(str(n) for n in range(12))


def test_nan_and_crashing_trials_fail_with_reason_and_the_sweep_completes(tmp_path):
    proc = run(app_sweep(tmp_path, "y=choice(0,1,2)", "nan_on=1", "crash_on=2", "hydra.sweeper.n_trials=8",
                         "hydra.sweeper.max_failure_rate=1.0", "hydra/sweeper/sampler=random",
                         "hydra.sweeper.sampler.seed=3"))
    study = load(tmp_path)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 8 and states(study).get("RUNNING", 0) == 0
    for t in trials:
        y = t.params["y"]
        if y == 0:
            assert t.state == TrialState.COMPLETE
        elif y == 1:
            assert t.state == TrialState.FAIL and "not finite" in t.user_attrs["fail_reason"]
        else:
            assert t.state == TrialState.FAIL and "RuntimeError: crash_on" in t.user_attrs["fail_reason"]
    assert {0, 1, 2} <= {t.params["y"] for t in trials}, "seed 3 should try every y"
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.best_value == study.best_value and results.best_params.y == 0
    assert proc.returncode == 0


def test_failure_rate_is_judged_over_the_whole_study(tmp_path):
    # Every trial crashes; 0.5 of 6 allows 3 failures, so the sweep stops at the 4th and fails.
    proc = run(app_sweep(tmp_path, "y=1", "crash_on=1", "hydra.sweeper.n_trials=6",
                         "hydra.sweeper.max_failure_rate=0.5"), check=False)
    assert proc.returncode != 0
    assert "4 of the study's 6 trials failed" in proc.stderr
    assert states(load(tmp_path)) == {"FAIL": 4}


def state_counts(tmp: Path) -> dict[str, int]:
    """The study's trials by state, or {} while it does not exist yet."""
    try:
        return states(load(tmp))
    except Exception:  # noqa: BLE001 - no database or no study yet
        return {}


def test_dict_result_without_objective_stops_with_the_keys_to_choose_from(tmp_path):
    proc = run(app_sweep(tmp_path, "hydra.sweeper.objective=null", "hydra.sweeper.n_trials=3"), check=False)
    assert proc.returncode != 0
    assert "set hydra.sweeper.objective to the key(s) to optimise, one of: loss, x_abs, y" in proc.stderr
    assert len(load(tmp_path).get_trials()) == 1                      # stopped after the first


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_sweep_killed_midway_then_rerun_finishes_exactly_n_trials(tmp_path):
    # Seeded, as the presets are: a rerun must not replay the first run's random points.
    args = app_sweep(tmp_path, "y=0", "sleep=0.6", "hydra.sweeper.n_trials=5", "hydra.sweeper.sampler.seed=0")
    first = subprocess.Popen([PY, *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        # ... and the running trial's job has started (its folder exists): killed before that, a
        # trial would have no output_dir attr yet.
        _wait_for(lambda: state_counts(tmp_path).get("COMPLETE", 0) >= 2
                  and state_counts(tmp_path).get("RUNNING", 0) == 1
                  and (tmp_path / "sweep" / str(len(load(tmp_path).trials) - 1) / ".hydra").exists())
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed = [t for t in load(tmp_path).get_trials() if t.state == TrialState.RUNNING]
    assert len(killed) == 1                                         # left RUNNING by the kill

    run(args)                                                       # the same command again
    study = load(tmp_path)
    trials = study.get_trials()
    by_number = {t.number: t for t in trials}
    assert by_number[killed[0].number].state == TrialState.FAIL     # no longer RUNNING
    assert by_number[killed[0].number].user_attrs["interrupted"] is True
    assert by_number[killed[0].number].user_attrs["output_dir"] == str(tmp_path / "sweep" / str(killed[0].number))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 5                                       # n_trials finished in total
    assert len({t.params["x"] for t in complete}) == 5              # none ran twice
    dirs = {t.user_attrs["output_dir"] for t in complete}
    assert len(dirs) == 5 and all((Path(d) / "job.json").exists() for d in dirs)
    assert not any(t.state == TrialState.RUNNING for t in trials)


def ctrl_c_enabled() -> None:
    """In the child before exec: Ctrl-C's default action. A shell's background job (`pytest &`, some
    CI runners) starts with SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("launcher, slots", [([], 1), (["hydra/launcher=joblib", "hydra.sweeper.n_jobs=2"], 2)],
                         ids=["basic", "joblib-2-slots"])
def test_ctrl_c_marks_the_running_trials_interrupted_at_once(tmp_path, launcher, slots):
    sweep = subprocess.Popen([PY, *app_sweep(tmp_path, "y=0", "sleep=5", "hydra.sweeper.n_trials=3", *launcher)],
                             cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             preexec_fn=ctrl_c_enabled)

    _wait_for(lambda: state_counts(tmp_path).get("RUNNING", 0) == slots)
    time.sleep(0.3)
    sweep.send_signal(signal.SIGINT)
    sweep.communicate(timeout=30)
    assert sweep.returncode != 0
    trials = load(tmp_path).get_trials()
    assert len(trials) == slots
    for trial in trials:
        assert trial.state == TrialState.FAIL and trial.user_attrs["interrupted"] is True
        assert "KeyboardInterrupt" in trial.user_attrs["fail_reason"]


@pytest.mark.slow
def test_interrupted_grid_point_runs_again_on_resume(tmp_path):
    args = [str(APP), "-m", "hydra/sweeper=optuna", f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"hydra.sweeper.storage=sqlite:///{tmp_path / 'study.db'}", "hydra.sweeper.study_name=s",
            "y=0,1,2", "sleep=0.3", "slow_job=1"]                      # trial 1 takes 1.8 s
    first = subprocess.Popen([PY, *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=ctrl_c_enabled)
    _wait_for(lambda: state_counts(tmp_path) == {"COMPLETE": 1, "RUNNING": 1, "WAITING": 1})
    first.send_signal(signal.SIGINT)
    first.wait(timeout=30)
    run(args)
    trials = load(tmp_path).get_trials()
    complete = sorted(t.params["y"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == [0, 1, 2]                                     # the whole grid, once each
    assert [t.params["y"] for t in trials if t.state == TrialState.FAIL] == [1]


@pytest.mark.slow
def test_two_worker_processes_finish_exactly_n_trials_together(tmp_path):
    args = app_sweep(tmp_path, "y=0", "sleep=0.4", "hydra.sweeper.n_trials=6", "hydra.sweeper.sampler.seed=0")
    workers = [subprocess.Popen([PY, *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err[-2000:]
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert sorted(t.number for t in trials) == list(range(6))
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(pids) == 2, "both workers should have run trials"
    jobs = [json.loads((tmp_path / "sweep" / str(n) / "job.json").read_text()) for n in range(6)]
    assert len({j["x"] for j in jobs}) == 6


@pytest.mark.slow
def test_joblib_runs_trials_side_by_side_without_batches(tmp_path):
    # Trial 0 takes 6 × 0.5 s, the others 0.5 s. In blocking batches of two, trial 2 would wait
    # for trial 0; here the free slot runs trials 1, 2, 3 while trial 0 is still going.
    run(app_sweep(tmp_path, "y=0", "sleep=0.5", "slow_job=0", "hydra.sweeper.n_trials=4",
                  "hydra.sweeper.n_jobs=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"))
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    jobs = [json.loads((tmp_path / "sweep" / str(n) / "job.json").read_text()) for n in range(4)]
    assert jobs[2]["start"] < jobs[0]["end"] and jobs[3]["start"] < jobs[0]["end"], jobs
    assert len({j["pid"] for j in jobs}) == 2                        # in two worker processes


@pytest.mark.slow
def test_trial_of_a_silent_worker_on_another_host_is_failed_by_heartbeat(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="s", storage=storage)
    orphan = study.ask()
    orphan.set_user_attr("worker", {"host": "some-other-machine", "pid": 1})
    storage.record_heartbeat(orphan._trial_id)                      # then silence
    time.sleep(2.5)
    run(app_sweep(tmp_path, "y=0", "hydra.sweeper.n_trials=2", "hydra.sweeper.heartbeat_interval=1",
                  "hydra.sweeper.grace_period=2"))
    trials = load(tmp_path).get_trials()
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["interrupted"] is True
    assert "heartbeats" in trials[0].user_attrs["fail_reason"]
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE] * 2  # its budget ran again


@pytest.mark.slow
def test_submitit_local_launcher_runs_trials(tmp_path):
    run(app_sweep(tmp_path, "y=0", "sleep=0.5", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=2",
                  "hydra/launcher=submitit_local"))
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    sweeper_pid = trials[0].user_attrs["worker"]["pid"]
    jobs = [json.loads((tmp_path / "sweep" / str(n) / "job.json").read_text()) for n in range(3)]
    assert all(j["pid"] != sweeper_pid for j in jobs)                # ran in submitit's processes
    assert [t.value for t in trials] == [pytest.approx((j["x"] - 1) ** 2) for j in jobs]


def test_journal_file_storage_and_resume_continues_the_count(tmp_path):
    journal = f"journal:{tmp_path / 'study.log'}"
    args = [str(APP), "-m", "hydra/sweeper=optuna", f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"hydra.sweeper.storage={journal}", "hydra.sweeper.study_name=j", "x=interval(-2,2)"]
    run(args + ["hydra.sweeper.n_trials=2"])
    run(args + ["hydra.sweeper.n_trials=3"])                        # continues to 3 in total
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(tmp_path / "study.log"))))
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 3
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1", "2"]


# --- train.py end to end --------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("launcher", [
    ["hydra/launcher=basic"],                                             # jobs in the sweeper's process
    ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"],  # in worker processes
], ids=["basic", "joblib"])
def test_trials_report_from_the_job_and_are_pruned(tmp_path, launcher):
    db = tmp_path / "optuna.db"
    run(["train.py", "hparams_search=optuna_nll", f"hydra.sweep.dir={tmp_path / 'sweep'}",
         f"hydra.sweeper.storage=sqlite:///{db}", "hydra.sweeper.n_trials=2", *TINY, "logger=csv", *launcher,
         # A pruner whose verdict is certain: prune any trial reporting a −ELBO above 1 nat.
         "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=1.0"])
    study = optuna.load_study(study_name="optuna_nll", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    # A −ELBO above 1 nat is certain after 10 steps: every trial is pruned at its first report.
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    for t in trials:
        assert list(t.intermediate_values) == [10]                   # reported at step 10, stopped
        record = json.loads((Path(t.user_attrs["output_dir"]) / "metrics.json").read_text())
        assert record["status"] == "pruned" and "pruned at step 10" in record["error"]
        cfg = OmegaConf.load(Path(t.user_attrs["output_dir"]) / ".hydra" / "config.yaml")
        assert cfg.optuna.study_name == "optuna_nll" and cfg.optuna.trial_number == t.number
        assert f"beta={cfg.beta}" in " ".join(t.user_attrs["overrides"]) or cfg.beta == 0


@pytest.mark.slow
def test_optuna_nll_preset_completes_tpe_trials_with_wandb_group(tmp_path):
    db = tmp_path / "optuna.db"
    run(["train.py", "hparams_search=optuna_nll", f"hydra.sweep.dir={tmp_path / 'sweep'}",
         f"hydra.sweeper.storage=sqlite:///{db}", "hydra.sweeper.n_trials=3", *TINY, "logger=wandb"])
    study = optuna.load_study(study_name="optuna_nll", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3   # median pruner waits for 3 trials
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.best_value == pytest.approx(study.best_value)
    assert results.best_trial.number == study.best_trial.number
    for t in trials:
        out = Path(t.user_attrs["output_dir"])
        assert out == tmp_path / "sweep" / str(t.number)
        record = json.loads((out / "metrics.json").read_text())
        assert record["status"] == "completed"
        assert record["metrics"]["val/neg_elbo"] == pytest.approx(t.value)
        run_dir = next((out / "wandb").glob("offline-run-*"))
        records = subprocess.run([str(Path(PY).parent / "wandb"), "leet", "inspect", "--json", str(run_dir)],
                                 capture_output=True, text=True, env=ENV).stdout.splitlines()
        wandb_run = next(json.loads(r)["run"] for r in records if '"type":"run"' in r)
        assert wandb_run["run_group"] == "optuna_nll"                   # W&B group = study name
        config = wandb_run["config"]["update"]
        assert config["optuna"]["trial_number"] == t.number            # trial number and params
        assert config["latent_size"] == t.params["latent_size"]
    # the report the sweep built at its end found the study: its figures and its trial table
    report_run = next((tmp_path / "sweep" / "wandb").glob("offline-run-*"))
    summary = json.loads(subprocess.run([str(Path(PY).parent / "wandb"), "leet", "inspect", "--summary", "--json",
                                         str(report_run)], capture_output=True, text=True, env=ENV).stdout)["summary"]
    assert summary["trials"]["nrows"] == 3 and summary["report/study_history"]["_type"] == "image-file"


@pytest.mark.slow
def test_rate_distortion_preset_writes_a_pareto_front(tmp_path):
    db = tmp_path / "optuna.db"
    run(["train.py", "hparams_search=optuna_rate_distortion", f"hydra.sweep.dir={tmp_path / 'sweep'}",
         f"hydra.sweeper.storage=sqlite:///{db}", "hydra.sweeper.n_trials=3",
         "hydra.sweeper.sampler.population_size=2", *TINY, "logger=csv"])
    study = optuna.load_study(study_name="optuna_rate_distortion", storage=f"sqlite:///{db}")
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 3
    front = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml").solutions
    assert {s.number for s in front} == {t.number for t in study.best_trials} and len(front) >= 1
    for a in front:
        assert len(a["values"]) == 2
        for b in front:   # no solution dominates another
            assert not (all(x <= y for x, y in zip(a["values"], b["values"]))
                        and any(x < y for x, y in zip(a["values"], b["values"])))
    # the report the sweep built at its end: the study's Pareto front and the R–D plane link each other
    html = (tmp_path / "sweep" / "report.html").read_text()
    assert 'id="study_pareto"' in html and 'id="rate_distortion"' in html
    assert '<a href="#rate_distortion">' in html and '<a href="#study_pareto">' in html
    assert html.count('<tr class="completed front">') == len(front)


def test_worker_losing_the_race_for_the_last_trial_on_a_server_rdb_records_surplus(tmp_path):
    """Server RDBs have no shared lock file: two workers may both see one free slot. Simulated:
    another worker starts a trial between this worker's count and its ask."""
    from sweeps.optuna.optuna_sweeper import OptunaSweeperImpl
    from sweeps.optuna.trials import counts_toward_budget
    from sweeps.optuna.storage import BudgetLock, StorageSpec

    study = optuna.create_study(study_name="race", storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    study.tell(study.ask(), 1.0)                                      # 1 of 2 done
    sweeper = OptunaSweeperImpl(sampler=None, direction="minimize", storage=None, study_name="race",
                                n_trials=2, n_jobs=1, max_failure_rate=0.5)
    sweeper.spec = StorageSpec("rdb", "postgresql://elsewhere/db", None)  # a server: no lock file
    sweeper.lock = BudgetLock(None)
    sweeper.study = study
    real_ask = study.ask

    def ask_after_the_other_worker(**kwargs):
        real_ask()                                                    # the other worker wins
        return real_ask(**kwargs)

    study.ask = ask_after_the_other_worker
    space = parse_search_space(None, [])
    assert sweeper._start_trial(space, n_trials=2) is None            # this worker stands down
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL]
    assert trials[2].user_attrs["surplus"] is True
    assert sum(counts_toward_budget(t) for t in trials) == 2          # the budget holds


def test_a_trial_under_our_own_pid_that_we_are_not_running_is_dead(tmp_path):
    """A restarted container can give the new sweeper the dead one's pid (and host name)."""
    import socket

    from sweeps.optuna.optuna_sweeper import OptunaSweeperImpl

    study = optuna.create_study(study_name="pid", storage=f"sqlite:///{tmp_path / 'db.sqlite'}")
    orphan = study.ask()
    orphan.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
    sweeper = OptunaSweeperImpl(sampler=None, direction="minimize", storage=None, study_name="pid",
                                n_trials=2, n_jobs=1, max_failure_rate=0.5)
    sweeper.study = study
    sweeper._fail_dead_trials()
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["interrupted"] is True
