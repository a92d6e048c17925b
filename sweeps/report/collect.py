"""Collect a sweep's runs, from a Hydra multirun folder or an Optuna study, into one ``Sweep``.

A multirun folder and a study give the same records (runs.py reads each job folder). A job the
grid lists but never started has no folder at all: it is kept as a ``missing`` row, never dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from protocol import ATTR_FAIL_REASON, ATTR_OUTPUT_DIR, METRICS_FILE
from sweeps.report.runs import (PARAM_KEYS, Run, Sweep, label_runs, load_yaml, params_from_config,
                                parse_override_values, read_job, select)


def expected_jobs(multirun_config: dict) -> list[list[str]] | None:
    """The overrides of every job a grid sweep launches, in job-number order; None for other sweepers
    (an Optuna sweep decides its trials as it goes)."""
    hydra = multirun_config.get("hydra") or {}
    target = str(select(hydra, "sweeper._target_") or "")
    if not target.endswith(("BasicSweeper",)):
        return None
    params = select(hydra, "sweeper.params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list(select(hydra, "overrides.task") or [])
    try:
        parsed = OverridesParser.create().parse_overrides(arguments)
        batches = BasicSweeper.split_arguments(parsed, None)
    except Exception:  # noqa: BLE001 - the report then lists what is on disk, and says so
        return None
    return [list(job) for batch in batches for job in batch]


def collect_multirun(sweep_dir: str | Path) -> Sweep:
    """Every job of a Hydra multirun folder, plus the jobs its grid lists but never started."""
    sweep_dir = Path(sweep_dir).resolve()
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir} is not a folder")
    multirun_file = sweep_dir / "multirun.yaml"
    multirun = load_yaml(multirun_file) if multirun_file.is_file() else {}
    notes = [] if multirun else [f"{multirun_file.name} not found: jobs that never started cannot be listed"]
    job_dirs = sorted((p.parent.parent for p in sweep_dir.glob("*/.hydra/config.yaml")), key=_job_order)
    runs = [read_job(d) for d in job_dirs]
    if not runs and not multirun:
        raise FileNotFoundError(f"{sweep_dir} holds no Hydra job folders (*/.hydra/) and no multirun.yaml")
    expected = expected_jobs(multirun or {})
    if expected is not None:
        seen = {run.job for run in runs}
        base_config = {k: v for k, v in (multirun or {}).items() if k != "hydra"}
        for num, overrides in enumerate(expected):
            if str(num) in seen:
                continue
            params = params_from_config(base_config) | {
                name: value for name, key in PARAM_KEYS.items()
                for k, value in parse_override_values(overrides).items() if k == key}
            runs.append(Run(job=str(num), name=",".join(overrides), state="missing", overrides=overrides,
                            params=params, error="never started (no job folder)"))
        runs.sort(key=lambda r: _job_order(Path(r.job)))
    sweep = Sweep(path=sweep_dir, kind="multirun", runs=runs, name=sweep_dir.name,
                  overrides=[str(o) for o in select(multirun or {}, "hydra.overrides.task") or []],
                  logger=_logger_config(multirun, runs), notes=notes, group=_study_name(runs))
    if "optuna" in str(select(multirun or {}, "hydra.sweeper._target_") or "").lower():
        from sweeps.report.study import (
            study_of_multirun,  # imports Optuna: only for a study's sweep
        )

        sweep.study = study_of_multirun(sweep_dir, runs, sweep.notes)
    label_runs(sweep.runs)
    return sweep


def _study_name(runs: list[Run]) -> str | None:
    """Trials of the Optuna sweeper carry ``optuna.study_name`` in their config, and train() groups
    their W&B runs by it rather than by the folder's name."""
    for run in runs:
        config_file = run.output_dir / ".hydra" / "config.yaml" if run.output_dir else None
        if config_file and config_file.is_file():
            name = select(load_yaml(config_file) or {}, "optuna.study_name")
            if name:
                return str(name)
    return None


def _job_order(path: Path) -> tuple:
    name = path.name
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _logger_config(multirun: dict | None, runs: list[Run]) -> dict[str, Any]:
    """The runs' logger settings: from multirun.yaml, else the first job's config."""
    logger = (multirun or {}).get("logger")
    if not isinstance(logger, dict):
        for run in runs:
            config_file = run.output_dir / ".hydra" / "config.yaml" if run.output_dir else None
            if config_file and config_file.is_file():
                logger = (load_yaml(config_file) or {}).get("logger")
                break
    return dict(logger) if isinstance(logger, dict) else {}


def collect_study(storage: str, study_name: str, out_dir: str | Path | None = None) -> Sweep:
    """An Optuna study's trials. The sweeper stores each trial's job folder (user attr ``output_dir``)
    and ``overrides``; the trial's own state wins over the folder's (a pruned trial stays pruned)."""
    from sweeps.report.study import (  # imports Optuna: only for a study
        OPTUNA_STATES,
        load_view,
    )

    view = load_view(storage, study_name)
    runs, notes = [], []
    for trial in view.trials:
        state = OPTUNA_STATES.get(trial.state.name, "missing")
        output_dir = trial.user_attrs.get(ATTR_OUTPUT_DIR)
        overrides = [str(o) for o in trial.user_attrs.get("overrides") or
                     [f"{k}={v}" for k, v in trial.params.items()]]
        job = f"trial {trial.number}"
        if output_dir and (Path(output_dir) / ".hydra").is_dir():
            run = read_job(Path(output_dir), job=job)
        else:
            run = Run(job=job, name=",".join(overrides), state=state, output_dir=None,
                      error=None if state != "completed" else "the trial's job folder was not found")
            if output_dir:
                notes.append(f"{job}: job folder {output_dir} not found")
        run.state, run.overrides = state, overrides
        typed = parse_override_values(overrides)
        run.params = {name: typed[key] for name, key in PARAM_KEYS.items() if key in typed} | run.params
        if state == "missing":
            run.error = run.error or "waiting: not started"
        elif state in ("failed", "pruned"):
            # The sweeper's reason beats the folder's guess ("no metrics.json") for a trial it ended.
            stopped = max(trial.intermediate_values) if trial.intermediate_values else None
            wrote = run.output_dir is not None and (run.output_dir / METRICS_FILE).is_file()
            run.error = trial.user_attrs.get(ATTR_FAIL_REASON) or (
                run.error if wrote or stopped is None else f"pruned at step {stopped}")
        runs.append(run)
    folders = [r.output_dir.parent for r in runs if r.output_dir is not None]
    if out_dir is None:
        common = {str(f) for f in folders}
        if len(common) != 1:
            raise ValueError("the study's trials do not share one sweep folder; pass --out DIR for the report")
        out_dir = folders[0]
    out_dir = Path(out_dir).resolve()
    sweep = Sweep(path=out_dir, kind="optuna", runs=runs, name=out_dir.name, overrides=[],
                  logger=_logger_config(None, runs), notes=notes, group=study_name, study=view)
    label_runs(sweep.runs)
    return sweep
