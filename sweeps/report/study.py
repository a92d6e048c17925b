"""An Optuna study, read for the report's analytics: its trials (params as Optuna sampled them,
objective values, the values a job reported before it stopped), its best trials or Pareto front,
and parameter importance per objective from Optuna's own evaluators (``optuna.importance``).

A grid sweep has no study, and none of this is imported for it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from sweeps.optuna.storage import load_storage_from_url
from sweeps.report.runs import METRICS, Run, load_yaml, select

# fANOVA fits a random forest on the completed trials: below this many it fits noise.
MIN_COMPLETED = 5
# PED-ANOVA compares the best trials' params with all of them; its authors advise at least 5
# trials in that top set, so it needs some more trials than fANOVA.
MIN_COMPLETED_PED_ANOVA = 10
OPTUNA_STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
                 "WAITING": "missing"}   # a trial's state as a run's (runs.STATES)
TOP_K = 5               # single objective: the trials labelled in the figures and ranked in the table
FANOVA_SEED = 0         # the same study gives the same importances every time


@dataclass
class Importance:
    objective: str
    evaluator: str                   # short name in the figure: "fANOVA", "PED-ANOVA"
    detail: str                      # Optuna's class and settings, for the caption
    values: dict[str, float]         # param -> importance (normalised to sum 1)


@dataclass
class StudyView:
    """What the report shows of a study. ``trials`` is every trial, in number order."""
    name: str
    storage: str
    study: optuna.Study
    trials: list[FrozenTrial]
    directions: list[str]            # "minimize" / "maximize", one per objective
    objectives: list[str]            # the metric behind each value (the sweeper's objective keys)
    params: list[str]                # the searched params, in the order trials first used them
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)

    @property
    def multi(self) -> bool:
        return len(self.directions) > 1

    @property
    def completed(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state == TrialState.COMPLETE and t.values is not None]

    def state(self, trial: FrozenTrial) -> str:
        return OPTUNA_STATES.get(trial.state.name, "missing")

    def best(self) -> list[FrozenTrial]:
        """The trials worth a label: the top ``TOP_K`` by the objective, or the Pareto front."""
        if self.multi:
            return sorted(self.study.best_trials, key=lambda t: t.number) if self.completed else []
        reverse = self.directions[0] == "maximize"
        return sorted(self.completed, key=lambda t: t.values[0], reverse=reverse)[:TOP_K]

    def stopped_at(self, trial: FrozenTrial) -> tuple[int, float] | None:
        """(step, value) of the last intermediate value the job reported, if any."""
        if not trial.intermediate_values:
            return None
        step = max(trial.intermediate_values)
        return step, trial.intermediate_values[step]

    def value(self, trial: FrozenTrial, index: int) -> float | None:
        """A completed trial's objective value. (Optuna also gives a pruned trial its last
        reported value as ``value``; the report shows that as where it stopped, not as a result.)"""
        if trial.state != TrialState.COMPLETE or trial.values is None:
            return None
        return trial.values[index]


def shown_url(url: str) -> str:
    """A storage URL fit to print: a server's password is masked."""
    if url.startswith("journal:") or "@" not in url:
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is shown without its credentials part
        return url.split("://", 1)[0] + "://***@" + url.rsplit("@", 1)[-1]


def load_view(storage: str, study_name: str) -> StudyView:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=load_storage_from_url(storage))
    trials = study.get_trials(deepcopy=False)
    directions = [d.name.lower() for d in study.directions]
    names = study.user_attrs.get("objective") or study.metric_names
    if not names or len(names) != len(directions):
        names = ["objective"] if len(directions) == 1 else [f"objective {i}" for i in range(len(directions))]
    distributions: dict[str, BaseDistribution] = {}
    for trial in trials:
        for name, distribution in trial.distributions.items():
            distributions.setdefault(name, distribution)
    return StudyView(name=study.study_name, storage=shown_url(storage), study=study, trials=trials, directions=directions,
                     objectives=[str(n) for n in names], params=list(distributions), distributions=distributions)


def study_of_multirun(sweep_dir: Path, runs: list[Run], notes: list[str]) -> StudyView | None:
    """The Optuna study behind a multirun of ``hydra/sweeper=optuna``, or None (with a note) when
    it cannot be read. Where it lives: the sweeper's ``optimization_results.yaml``, else the
    trial identity it gave each job."""
    storage = name = None
    results = sweep_dir / "optimization_results.yaml"
    if results.is_file():
        data = load_yaml(results) or {}
        storage, name = data.get("storage"), data.get("study_name")
        if storage is None and name:
            notes.append(f"the Optuna study {name} was kept in memory (hydra.sweeper.storage=null): "
                         "no study analytics")
            return None
    for run in runs:
        if storage and name:
            break
        config_file = run.output_dir / ".hydra" / "config.yaml" if run.output_dir else None
        if config_file and config_file.is_file():
            config = load_yaml(config_file) or {}
            storage, name = select(config, "optuna.storage"), select(config, "optuna.study_name")
    if not (storage and name):
        notes.append("the Optuna study's storage is not recorded in the sweep folder: for its analytics, "
                     "run python -m sweeps.report --storage URL --study NAME --out " + str(sweep_dir))
        return None
    try:
        return load_view(str(storage), str(name))
    except Exception as exc:  # noqa: BLE001 - the runs' report still stands without the study
        notes.append(f"the Optuna study {name} could not be read ({type(exc).__name__}: {exc}): no study analytics")
        return None


# --- parameter importance ---------------------------------------------------------------------
def importances(view: StudyView) -> tuple[list[Importance], list[str]]:
    """fANOVA (and PED-ANOVA where there are enough trials) for each objective, and notes on what
    could not be computed and why."""
    n = len(view.completed)
    if not view.params:
        return [], ["parameter importance: the study searched no params"]
    if len(view.params) == 1:
        return [], [f"parameter importance: the study searched one param ({view.params[0]}): nothing to rank"]
    if n < MIN_COMPLETED:
        return [], [f"parameter importance needs at least {MIN_COMPLETED} completed trials; the study has {n}"]
    # PED-ANOVA's top set: the best 10 %, but at least 5 trials.
    quantile = min(0.5, max(0.1, 5 / n))
    results, notes = [], []
    if n < MIN_COMPLETED_PED_ANOVA:
        notes.append(f"PED-ANOVA importance needs at least {MIN_COMPLETED_PED_ANOVA} completed trials "
                     f"(it compares the best ones with all); the study has {n}: fANOVA only")
    for i, objective in enumerate(view.objectives):
        sign = -1.0 if view.directions[i] == "maximize" else 1.0
        # PED-ANOVA treats a lower target as better: a maximised objective is negated. fANOVA
        # explains the variance of the value, so the sign does not matter to it.
        target = (lambda t, i=i: t.values[i]) if view.multi else None
        ped_target = (lambda t, i=i, s=sign: s * t.values[i]) if view.multi else None
        evaluators = [("fANOVA", f"FanovaImportanceEvaluator(seed={FANOVA_SEED})",
                       FanovaImportanceEvaluator(seed=FANOVA_SEED), target)]
        if n >= MIN_COMPLETED_PED_ANOVA:
            evaluators.append(("PED-ANOVA", f"PedAnovaImportanceEvaluator(target_quantile={quantile:.2g})",
                               PedAnovaImportanceEvaluator(target_quantile=quantile), ped_target))
        for short, detail, evaluator, how in evaluators:
            try:
                with warnings.catch_warnings():
                    # PED-ANOVA is "experimental" and says it assumes lower is better (handled above).
                    warnings.simplefilter("ignore")
                    values = get_param_importances(view.study, evaluator=evaluator, target=how)
            except (ValueError, RuntimeError, ImportError) as exc:
                notes.append(f"{short} importance for {objective} not computed: {exc}")
                continue
            clean = {k: float(v) for k, v in values.items() if math.isfinite(float(v))}
            results.append(Importance(objective, short, detail, clean))
    return results, notes


# --- the trial table ----------------------------------------------------------------------------
def run_for(trial: FrozenTrial, runs: list[Run]) -> Run | None:
    """The report's run (job folder) of a trial: by the folder the sweeper recorded, else by the
    job number (the sweeper numbers job folders by trial number)."""
    folder = trial.user_attrs.get("output_dir")
    for run in runs:
        if folder and run.output_dir is not None and Path(folder).resolve() == run.output_dir.resolve():
            return run
    return next((r for r in runs if r.job in (str(trial.number), f"trial {trial.number}")), None)


def trial_table(view: StudyView, runs: list[Run]) -> tuple[list[str], list[list[Any]], list[str]]:
    """(headers, rows of plain values, each row's state): one row per trial with its state, the
    params Optuna sampled, the objective values, its rank (or Pareto membership), where a pruned
    trial stopped, the run's own test metrics if it wrote any, and why it failed."""
    by_trial = {t.number: run_for(t, runs) for t in view.trials}
    metrics = [m for m in METRICS if m not in ("steps", "wall_time_s")
               and any(r is not None and r.metric(m) is not None for r in by_trial.values())]
    best = [t.number for t in view.best()]
    headers = ["trial", "state", *view.params, *view.objectives, "Pareto" if view.multi else "rank",
               "stopped at step", "last reported", *(METRICS[m] for m in metrics), "time (s)", "note"]
    ranked = sorted(view.completed, key=lambda t: t.values[0], reverse=view.directions[0] == "maximize")
    rank = {t.number: k + 1 for k, t in enumerate(ranked)}
    rows, states = [], []
    for trial in view.trials:
        run = by_trial[trial.number]
        state = view.state(trial)
        stop = view.stopped_at(trial) if state == "pruned" else None
        place = ("front" if trial.number in best else "") if view.multi else rank.get(trial.number)
        note = trial.user_attrs.get("fail_reason") or (run.error if run is not None and state != "completed" else None)
        rows.append([trial.number, state, *(trial.params.get(p) for p in view.params),
                     *(view.value(trial, i) for i in range(len(view.objectives))), place,
                     stop[0] if stop else None, stop[1] if stop else None,
                     *(run.metric(m) if run is not None else None for m in metrics),
                     trial.duration.total_seconds() if trial.duration is not None else None, note or ""])
        states.append(state)
    return headers, rows, states
