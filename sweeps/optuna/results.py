"""``optimization_results.yaml``: what a finished (or stopped) study found, beside its trials' folders."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from sweeps.intervals import LEVEL, mean_interval
from sweeps.optuna.search_space import SearchSpace
from sweeps.optuna.seeds import ATTR_SEED_OUTPUT_DIRS, ATTR_SEED_VALUES
from sweeps.optuna.trials import is_interrupted
from protocol.atomic import atomic_write_text
from protocol import ATTR_OUTPUT_DIR

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"


def write_results(study: optuna.Study, space: SearchSpace, objective_keys: Optional[list[str]],
                  storage_url: Optional[str], sweep_dir: Path) -> None:
    """``optimization_results.yaml`` in the sweep dir: the best trial, or the Pareto set."""
    trials = study.get_trials(deepcopy=False)
    states = {s.name: sum(1 for t in trials if t.state == s) for s in TrialState}

    def job_params(t: optuna.trial.FrozenTrial) -> dict:
        return {k: space.job_value(k, v) for k, v in t.params.items()}

    def summary(t: optuna.trial.FrozenTrial) -> dict:
        found = {"number": t.number, "params": job_params(t), "values": list(t.values),
                 "output_dir": t.user_attrs.get(ATTR_OUTPUT_DIR)}
        return found | seed_summary(t)

    result: dict[str, Any] = {"name": "optuna", "study_name": study.study_name, "storage": storage_url,
                              "directions": [d.name.lower() for d in study.directions],
                              "objective": objective_keys, "trials": states,
                              "interrupted": sum(is_interrupted(t) for t in trials)}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(study.directions) == 1:
        best = study.best_trial if complete else None
        result.update(best_params=job_params(best) if best else None,
                      best_value=best.value if best else None,
                      best_trial=summary(best) if best else None)
    else:
        front = study.best_trials if complete else []
        result["solutions"] = [summary(t) for t in sorted(front, key=lambda t: t.number)]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(sweep_dir / RESULTS_FILE, OmegaConf.to_yaml(OmegaConf.create(result)))
    log.info("Trials by state %s; results in %s", {k: v for k, v in states.items() if v},
             sweep_dir / RESULTS_FILE)


def seed_summary(t: optuna.trial.FrozenTrial) -> dict:
    """A trial over several seeds: each seed's values, and per objective the seeds' mean and its
    95% t interval (sweeps/intervals.py); {} for a trial of one job."""
    by_seed = t.user_attrs.get(ATTR_SEED_VALUES)
    if not by_seed:
        return {}
    columns = list(zip(*by_seed.values()))
    intervals = [mean_interval(column) for column in columns]
    return {"seed_values": {int(seed): list(values) for seed, values in by_seed.items()},
            "seed_mean": [i.mean for i in intervals],
            f"seed_interval_{LEVEL:.0%}".replace("%", ""): [[i.low, i.high] for i in intervals],
            "seed_output_dirs": t.user_attrs.get(ATTR_SEED_OUTPUT_DIRS)}
