"""Collect the runs of a sweep into plain records, from a Hydra multirun folder or an Optuna study.

Everything a report shows is read here, and only here, from what the runs left on disk:
``metrics.json`` (params, status, metrics), ``csv/metrics.csv`` (history), ``images/*.png``.
Over 300 lines because that reading is one concern: a multirun folder and a study give the same records.
A job folder with only ``.hydra/`` crashed hard or is still running; a job the sweep lists
but never started has no folder at all. Both are kept as ``missing`` rows, never dropped.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from protocol import ATTR_OUTPUT_DIR, METRICS_FILE, STATUSES

# A run's state, in the order a reader cares about.
STATES = (*STATUSES, "missing")
# Metrics a report shows, in table order, with short headers.
METRICS = {
    "test/distortion": "D",
    "test/rate": "R",
    "test/neg_elbo": "−ELBO",
    "test/nll_iwae": "NLL",
    "test/active_units": "active",
    "steps": "steps",
    "wall_time_s": "time (s)",
}
# Disentanglement scores, shown only when some run has them (data with known factors).
FACTOR_METRICS = {
    "test/mig": "MIG",
    "test/dci_disentanglement": "DCI",
    "test/factor_vae": "FactorVAE",
}


def metric_columns(runs) -> dict[str, str]:
    """The table's metrics for these runs: METRICS, with the disentanglement scores where they exist."""
    extra = {k: v for k, v in FACTOR_METRICS.items() if any(r.metrics.get(k) is not None for r in runs)}
    if not extra:
        return METRICS
    items = list(METRICS.items())
    return dict(items[:5] + list(extra.items()) + items[5:])


# Config keys behind each entry of metrics.json's "params" (vae/train.py::run_params).
PARAM_KEYS = {
    "beta": "beta", "latent_size": "latent_size", "reduction": "loss.reduction",
    "binarize": "data.binarize", "seed": "seed", "max_steps": "trainer.max_steps",
    "iwae_samples": "eval.iwae_samples",
}


@dataclass
class Run:
    job: str                                    # the job number, or "trial N" in a study
    name: str                                   # the run's name (its overrides)
    state: str                                  # one of STATES
    overrides: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None
    error: str | None = None                    # why it failed, or why it is missing
    label: str = ""                             # only the overrides that vary across the sweep

    @property
    def beta(self) -> float | None:
        return _float(self.params.get("beta"))

    @property
    def latent_size(self) -> int | None:
        value = self.params.get("latent_size")
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def metric(self, key: str) -> float | None:
        return _float(self.metrics.get(key))

    def image(self, name: str) -> Path | None:
        """The run's final figure ``images/<name>.png``, if it drew one."""
        if self.output_dir is None:
            return None
        path = self.output_dir / "images" / f"{name}.png"
        return path if path.is_file() else None

    def history(self) -> dict[str, list[tuple[int, float]]]:
        """Lightning's CSVLogger history: column -> [(step, value)], blanks skipped."""
        path = self.output_dir / "csv" / "metrics.csv" if self.output_dir else None
        if path is None or not path.is_file():
            return {}
        series: dict[str, list[tuple[int, float]]] = {}
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    step = int(float(row.get("step") or ""))
                except ValueError:
                    continue
                for column, text in row.items():
                    if column in ("step", "epoch") or not text:
                        continue
                    value = _float(text)
                    if value is not None:
                        series.setdefault(column, []).append((step, value))
        return series


@dataclass
class Sweep:
    path: Path                                  # the sweep folder; the report is written here
    kind: str                                   # "multirun" or "optuna"
    runs: list[Run]
    name: str                                   # the sweep folder's name
    overrides: list[str] = field(default_factory=list)   # what the user swept over
    logger: dict[str, Any] = field(default_factory=dict)  # the runs' logger config (kind, project...)
    notes: list[str] = field(default_factory=list)        # what could not be read, and why
    group: str | None = None                    # the W&B group of its runs; default: the folder's name
    study: Any = None                           # a sweeps.report.study.StudyView when it is an Optuna study

    def __post_init__(self) -> None:
        self.group = self.group or self.name

    def count(self, state: str) -> int:
        return sum(run.state == state for run in self.runs)

    def summary(self) -> str:
        parts = [f"{self.count(s)} {s}" for s in STATES if self.count(s)]
        noun = "run" if len(self.runs) == 1 else "runs"
        return f"{len(self.runs)} {noun}: " + ", ".join(parts) if self.runs else "no runs"


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _load_yaml(path: Path) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


def _select(config: dict, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def params_from_config(config: dict) -> dict[str, Any]:
    """The same params vae/train.py::run_params records, for a run that never wrote them."""
    params = {name: _select(config, key) for name, key in PARAM_KEYS.items()}
    for name in ("model", "data"):   # the class, where a finished run records its config option's name
        target = _select(config, f"{name}._target_")
        if isinstance(target, str):
            params[name] = target.rsplit(".", 1)[-1]
    return {k: v for k, v in params.items() if v is not None}


def parse_override_values(overrides: Iterable[str]) -> dict[str, Any]:
    """``["beta=0.01", "latent_size=2"]`` -> ``{"beta": 0.01, "latent_size": 2}``, typed as Hydra types them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    values = {}
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except Exception:  # noqa: BLE001 - an unparseable override just isn't shown as a param
            continue
        if not override.is_sweep_override() and not override.is_delete():
            values[override.get_key_element().lstrip("+~")] = override.value()
    return values


def read_job(job_dir: Path, job: str | None = None) -> Run:
    """One job folder -> a Run. Never raises for a half-written folder: it says what is missing."""
    job_dir = Path(job_dir)
    hydra_dir = job_dir / ".hydra"
    overrides = []
    if (hydra_dir / "overrides.yaml").is_file():
        overrides = [str(o) for o in (_load_yaml(hydra_dir / "overrides.yaml") or [])]
    config = _load_yaml(hydra_dir / "config.yaml") if (hydra_dir / "config.yaml").is_file() else {}
    if job is None:
        hydra = _load_yaml(hydra_dir / "hydra.yaml") if (hydra_dir / "hydra.yaml").is_file() else {}
        num = _select(hydra or {}, "hydra.job.num")
        job = str(num) if num is not None else job_dir.name
    metrics_file = job_dir / METRICS_FILE
    record: dict[str, Any] = {}
    error = None
    if metrics_file.is_file():
        try:
            record = json.loads(metrics_file.read_text())
        except (OSError, ValueError) as exc:
            error = f"metrics.json unreadable ({type(exc).__name__}: {exc})"
    else:
        error = "no metrics.json: the job crashed before writing it, or is still running"
    state = record.get("status") or "missing"
    if state not in STATES:
        state = "failed" if record.get("error") else "missing"
    params = params_from_config(config or {}) | record.get("params", {})
    return Run(job=job, name=record.get("run_name") or ",".join(overrides) or job_dir.name, state=state,
               overrides=overrides, params=params, metrics=record.get("metrics") or {},
               output_dir=job_dir, error=record.get("error") or error)


def expected_jobs(multirun_config: dict) -> list[list[str]] | None:
    """The overrides of every job a grid sweep launches, in job-number order; None for other sweepers
    (an Optuna sweep decides its trials as it goes)."""
    hydra = multirun_config.get("hydra") or {}
    target = str(_select(hydra, "sweeper._target_") or "")
    if not target.endswith(("BasicSweeper",)):
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = _select(hydra, "sweeper.params") or {}
    arguments = [f"{k}={v}" for k, v in params.items()] + list(_select(hydra, "overrides.task") or [])
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
    multirun = _load_yaml(multirun_file) if multirun_file.is_file() else {}
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
                  overrides=[str(o) for o in _select(multirun or {}, "hydra.overrides.task") or []],
                  logger=_logger_config(multirun, runs), notes=notes, group=_study_name(runs))
    if "optuna" in str(_select(multirun or {}, "hydra.sweeper._target_") or "").lower():
        from sweeps.report.study import study_of_multirun

        sweep.study = study_of_multirun(sweep_dir, runs, sweep.notes)
    label_runs(sweep.runs)
    return sweep


def _study_name(runs: list[Run]) -> str | None:
    """Trials of the Optuna sweeper carry ``optuna.study_name`` in their config, and train() groups
    their W&B runs by it rather than by the folder's name."""
    for run in runs:
        config_file = run.output_dir / ".hydra" / "config.yaml" if run.output_dir else None
        if config_file and config_file.is_file():
            name = _select(_load_yaml(config_file) or {}, "optuna.study_name")
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
                logger = (_load_yaml(config_file) or {}).get("logger")
                break
    return dict(logger) if isinstance(logger, dict) else {}


OPTUNA_STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
                 "WAITING": "missing"}


def collect_study(storage: str, study_name: str, out_dir: str | Path | None = None) -> Sweep:
    """An Optuna study's trials. The sweeper stores each trial's job folder (user attr ``output_dir``)
    and ``overrides``; the trial's own state wins over the folder's (a pruned trial stays pruned)."""
    from sweeps.report.study import load_view

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
            wrote = run.output_dir is not None and (run.output_dir / "metrics.json").is_file()
            run.error = trial.user_attrs.get("fail_reason") or (
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


def label_runs(runs: list[Run]) -> None:
    """Each run's label: only the overrides that differ between runs (``beta=0.01,latent_size=2``),
    so the shared ones (``trainer.max_steps=20``...) don't crowd the figures. An Optuna trial's
    identity (``++optuna.trial_number=3``...) is left out (the job column has it), and sampled
    floats are cut to 4 significant digits."""
    keyed = [dict(o.split("=", 1) if "=" in o else (o, "") for o in run.overrides) for run in runs]
    keys = list(dict.fromkeys(k for overrides in keyed for k in overrides))
    varying = [k for k in keys if len({overrides.get(k) for overrides in keyed}) > 1
               and not k.lstrip("+~").startswith("optuna.")]
    for run, overrides in zip(runs, keyed):
        shown = [f"{k}={_short(overrides[k])}" for k in varying if k in overrides]
        run.label = ",".join(shown) or run.name or run.job


def _short(text: str) -> str:
    """``0.15676677195506075`` -> ``0.1568``; anything that isn't a long float stays as it is."""
    if len(text) <= 8 or not any(c in text for c in ".eE"):
        return text
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text
