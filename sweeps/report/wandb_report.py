"""The report as one W&B run (job type ``report``) in the sweep's group: the runs table, the
figures and, for a study, the trial table and parameter importances."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from sweeps.report.grid import best_run
from sweeps.report.replicate_table import configuration_rows
from sweeps.report.replicates import has_replicates
from sweeps.report.runs import Sweep, metric_columns
from sweeps.report.table import display_rows, table_columns
from vae.loggers import DEFAULT_INIT_TIMEOUT, start_wandb, wandb_mode
from vae.secrets import redact


def wandb_skip_reason(sweep: Sweep) -> str | None:
    kind = sweep.logger.get("kind")
    if kind and kind != "wandb":
        return f"the sweep used logger={kind}: no W&B report run (the HTML report has everything)"
    if sweep.logger.get("mode") == "disabled":
        return "W&B is disabled in the sweep's config (logger.mode=disabled): no W&B report run"
    return None


def log_to_wandb(sweep: Sweep, figures: dict[str, bytes], metric: str,
                 trials: tuple[list[str], list[list[Any]]] | None = None, importances: list | None = None) -> Path:
    """One W&B run (job type ``report``) in the sweep's group, holding the runs table and the figures;
    for a study also the trial table (``trials``, with each trial's state) and the importances.
    Offline without an API key, like the runs; saved under the sweep folder."""
    import wandb   # ~0.7 s: only a sweep that logs to W&B pays it

    def image(png: bytes | Path) -> "wandb.Image":
        # PIL images are uint8: W&B would save a float array in [0, 1] as black.
        picture = Image.open(io.BytesIO(png) if isinstance(png, bytes) else png).convert("RGB")
        return wandb.Image(picture)

    # Plain values only: images inside a wandb.Table are staged outside the run folder (in the
    # home directory) while offline, so the figures are logged beside the table instead.
    headers, rows = display_rows(sweep)
    data = [[run.job, run.label, run.state, *(run.params.get(p) for p in table_columns(sweep)),
             *(run.metric(m) for m in metric_columns(sweep.runs)), row[-1]] for run, row in zip(sweep.runs, rows)]
    logger = sweep.logger
    group = logger.get("group") or sweep.group
    timeout = float(logger.get("init_timeout") or DEFAULT_INIT_TIMEOUT)
    run = start_wandb(lambda mode: wandb.init(
        project=logger.get("project") or "beta-vae", entity=logger.get("entity"),
        group=group, job_type="report", name=f"report {sweep.name}", dir=str(sweep.path),
        mode=mode, reinit="finish_previous",
        config=redact({"sweep_dir": str(sweep.path), "sweep_kind": sweep.kind,
                       "overrides": sweep.overrides, "metric": metric, "runs": len(sweep.runs)}),
        settings=wandb.Settings(silent=True, init_timeout=timeout)), wandb_mode(logger.get("mode") or "auto"), timeout)
    try:
        tables = {"runs": wandb.Table(columns=headers, data=redact(data))}
        if has_replicates(sweep.runs):   # the page's configuration table: mean [95% interval] per metric
            columns, rows, _ = configuration_rows(sweep)
            tables["configurations"] = wandb.Table(columns=columns, data=redact(rows))
        if trials is not None:
            tables["trials"] = wandb.Table(columns=trials[0], data=redact(trials[1]))
        run.log({**tables, **{f"report/{name}": image(png) for name, png in figures.items()}})
        for found in importances or []:
            run.summary.update({f"importance/{found.objective}/{found.evaluator}": found.values})
        run.summary.update({f"runs_{state}": sweep.count(state) for state in
                            ("completed", "failed", "pruned", "running", "missing")})
        best = best_run(sweep.runs, metric)
        if best is not None:
            run.summary.update({f"best/{metric}": best.metric(metric), "best/run": best.label})
        return Path(run.settings.sync_dir)
    finally:
        wandb.finish()
