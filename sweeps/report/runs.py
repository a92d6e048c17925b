"""A sweep's runs as plain records: one job folder read into a ``Run``.

Everything a report shows of a run is read here, and only here, from what it left on disk:
``metrics.json`` (params, status, metrics), ``csv/metrics.csv`` (history), ``images/*.png``.
collect.py gathers a whole sweep's runs (a multirun folder or a study) with these. A job folder with only ``.hydra/`` crashed hard or is still running; a job the sweep lists
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
from hydra.core.override_parser.overrides_parser import OverridesParser

from protocol import METRICS_FILE, STATUSES

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


def load_yaml(path: Path) -> Any:
    with open(path) as f:
        return yaml.safe_load(f)


def select(config: dict, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def params_from_config(config: dict) -> dict[str, Any]:
    """The same params vae/train.py::run_params records, for a run that never wrote them."""
    params = {name: select(config, key) for name, key in PARAM_KEYS.items()}
    for name in ("model", "data"):   # the class, where a finished run records its config option's name
        target = select(config, f"{name}._target_")
        if isinstance(target, str):
            params[name] = target.rsplit(".", 1)[-1]
    return {k: v for k, v in params.items() if v is not None}


def parse_override_values(overrides: Iterable[str]) -> dict[str, Any]:
    """``["beta=0.01", "latent_size=2"]`` -> ``{"beta": 0.01, "latent_size": 2}``, typed as Hydra types them."""
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
        overrides = [str(o) for o in (load_yaml(hydra_dir / "overrides.yaml") or [])]
    config = load_yaml(hydra_dir / "config.yaml") if (hydra_dir / "config.yaml").is_file() else {}
    if job is None:
        hydra = load_yaml(hydra_dir / "hydra.yaml") if (hydra_dir / "hydra.yaml").is_file() else {}
        num = select(hydra or {}, "hydra.job.num")
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
