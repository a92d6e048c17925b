"""Optuna trials judged over several seeds (hydra.sweeper.seeds): one launch of N seeded jobs per
trial, the trial's value their mean (or median), each seed's value kept, a failed seed failing the
trial, pruning on the seeds' mean. Real Optuna storage (SQLite), real Hydra launchers, train.py."""

import json
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from sweeps.optuna.pruning import OptunaPruning
from test_optuna_sweeper import TINY, app_sweep, load, run


def test_each_trial_is_the_mean_of_its_seeds_and_keeps_every_seeds_value(tmp_path):
    # loss = (x-1)² + y + seed: over seeds 10, 11, 12 the mean adds 11 to the trial's loss
    run(app_sweep(tmp_path, "seed=10", "seed_shift=1.0", "hydra.sweeper.n_trials=2", "hydra.sweeper.seeds=3",
                  "hydra/launcher=joblib", "hydra.launcher.n_jobs=3"))
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        base = (t.params["x"] - 1.0) ** 2
        assert t.user_attrs["seeds"] == [10, 11, 12]
        assert t.user_attrs["seed_values"] == {str(s): [pytest.approx(base + s)] for s in (10, 11, 12)}
        assert t.value == pytest.approx(base + 11)
        # one folder per seed, all from one launch of three jobs
        assert [Path(d).name for d in t.user_attrs["seed_output_dirs"]] == [f"{t.number}-seed{s}" for s in (10, 11, 12)]
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    best = results["best_trial"]
    assert best["seed_mean"] == [pytest.approx(results["best_value"])]
    low, high = best["seed_interval_95"][0]
    assert low < results["best_value"] < high     # the seeds differ by 1: a real interval


def test_median_aggregate_and_a_failed_seed_fails_the_trial_with_its_reason(tmp_path):
    run(app_sweep(tmp_path, "seed_shift=1.0", "hydra.sweeper.n_trials=1", "hydra.sweeper.seeds=3",
                  "hydra.sweeper.seed_aggregate=median", "hydra/launcher=basic", study="median"))
    (t,) = load(tmp_path, "median").get_trials()
    assert t.value == pytest.approx((t.params["x"] - 1.0) ** 2 + 1)
    run(app_sweep(tmp_path, "crash_on_seed=1", "hydra.sweeper.n_trials=1", "hydra.sweeper.seeds=2",
                  "hydra.sweeper.max_failure_rate=1", "hydra/launcher=basic", study="crash"))
    (t,) = load(tmp_path, "crash").get_trials()
    assert t.state == TrialState.FAIL and t.user_attrs["fail_reason"] == "seed 1: RuntimeError: crash_on_seed: seed=1"


def test_seeds_with_a_searched_seed_is_one_clear_error(tmp_path):
    proc = run(app_sweep(tmp_path, "seed=choice(1,2)", "hydra.sweeper.seeds=2"), check=False)
    assert proc.returncode == 2 and "do not also search seed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_pruning_judges_the_mean_of_the_seeds_reports(tmp_path):
    storage = f"sqlite:///{tmp_path / 'prune.db'}"
    study = optuna.create_study(study_name="p", storage=storage)
    # Prune a trial whose reported value is above 10.
    study.set_user_attr("pruner", {"_target_": "optuna.pruners.ThresholdPruner", "upper": 10.0})
    trial = study.ask()
    seeds = [OptunaPruning(storage, "p", trial._trial_id, trial.number, seed_index=i, seeds=2) for i in range(2)]
    seeds[0].report(5, 14.0)                 # alone above 10, but its peer has not reported: no verdict yet
    assert study.trials[0].intermediate_values == {}
    seeds[1].report(5, 4.0)                  # mean 9: reported, not pruned
    assert study.trials[0].intermediate_values == {5: 9.0}
    seeds[1].report(10, 12.0)
    with pytest.raises(optuna.TrialPruned):
        seeds[0].report(10, 9.0)             # mean 10.5 > 10: pruned, though this seed alone is below
    assert study.trials[0].intermediate_values == {5: 9.0, 10: 10.5}
    with pytest.raises(optuna.TrialPruned):  # the other seed stops at its next report too
        seeds[1].report(15, 3.0)


@pytest.mark.slow
def test_train_py_trials_over_two_seeds_are_the_mean_of_their_metrics_json(tmp_path):
    db = tmp_path / "seeds.db"
    run(["train.py", "-m", "hydra/sweeper=optuna", f"hydra.sweep.dir={tmp_path / 'sweep'}",
         f"hydra.sweeper.storage=sqlite:///{db}", "hydra.sweeper.study_name=seeds", "hydra.sweeper.n_trials=2",
         "hydra.sweeper.seeds=2", "hydra.sweeper.objective=test/neg_elbo", "hydra.sweeper.trial_key=optuna",
         "beta=choice(1,4)", *TINY, "logger=csv", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
         "hydra.sweeper.n_jobs=1"], timeout=600)
    trials = optuna.load_study(study_name="seeds", storage=f"sqlite:///{db}").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        records = [json.loads((Path(d) / "metrics.json").read_text()) for d in t.user_attrs["seed_output_dirs"]]
        assert [r["params"]["seed"] for r in records] == [0, 1]
        values = [r["metrics"]["test/neg_elbo"] for r in records]
        assert values[0] != values[1]                                   # the seeds really differ
        assert t.value == pytest.approx(sum(values) / 2)
        # both seeds reported at every validation; the trial holds their mean per step
        assert list(t.intermediate_values) == [10, 20]
        assert records[0]["params"]["replicate_of"] == records[1]["params"]["replicate_of"]
