"""Every run of a sweep side by side: a table, the rate–distortion plane, a β × latent heatmap,
training curves and image mosaics, as ``report.html`` (self-contained) + PNGs + CSV in the sweep
folder, and as one W&B run of job type ``report`` in the sweep's group. An Optuna study also gets
its analytics (``study_plots``): importance, parallel coordinates, history, Pareto front, and a
sortable trial table.

    python -m sweeps.report outputs/multiruns/2026-11-24_00-21-20
    python -m sweeps.report --storage sqlite:///outputs/optuna.db --study beta-vae [--out DIR]
    python -m sweeps.report DIR --metric test/neg_elbo --no-wandb

A multirun builds this itself when it ends (``sweeps.report.callback``; off: ``report.enabled=false``).

Over 300 lines: the captions of every figure, the table, the CSV, the W&B run and the two page
layouts (a grid's, a study's) stay together, so one place says what a report holds.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeps.report.runs import METRICS, Sweep, collect_multirun, collect_study, metric_columns
from protocol.errors import UserError

log = logging.getLogger(__name__)

REPORT_DIR = "report"            # PNGs and runs.csv; report.html sits beside the job folders
FIGURES = {  # file stem -> (heading, caption)
    "rate_distortion": ("Rate–distortion plane",
                        "One point per completed run (colour: β, marker: latent size). Dashed lines join runs "
                        "of equal −ELBO = D + R; the solid one passes through the best run. Circled runs "
                        "form the Pareto front: no other run has both less rate and less distortion."),
    "heatmap": ("β × latent size", "The chosen metric per cell (mean if several runs share a cell); "
                "hatched cells have no completed run and say why."),
    "disentanglement_vs_beta": ("Disentanglement against β",
                                "MIG, DCI disentanglement, FactorVAE and BetaVAE scores (1 = each factor in its own "
                                "latent dim) of every completed run, one line per latent size; the runs' test phase "
                                "computed them on fresh samples of the factor grid with a fixed seed."),
    "heatmap_mig": ("MIG by β × latent size", "The mutual information gap per cell (mean if several runs share it)."),
    "mutual_info_best": ("Which latent tracks which factor (best MIG run)",
                         "Mutual information between each latent dim and each factor, divided by the factor's "
                         "entropy: one bright cell per column and row is a disentangled code."),
    "mosaic_traversals": ("Latent traversals", "Each run's decoded traversal of latent dims 0 and 1 over "
                          "[−3, 3] (or one row per dim): where the images stop changing along an axis, that latent dim collapsed."),
    "mosaic_reconstructions": ("Reconstructions", "Test inputs (top row of each cell) and their reconstructions."),
    "kl_per_dim": ("KL per latent dimension", "Each completed run's test KL per latent dim, largest first: "
                   "dims near 0 carry no information (collapsed to the prior); the rest are its active units."),
    "curves": ("Training curves", "Total loss, reconstruction and KL of every run against the training step."),
}

STUDY_FIGURES = {  # an Optuna study's figures (study_plots), shown before the runs' own
    "study_history": ("Optimisation history",
                      "Each completed trial's objective by trial number, with the best value so far. Pruned "
                      "trials (×) sit at the last value they reported, failed ones are ticks on the bottom edge. "
                      "Right: the values each trial reported while it ran, pruned ones ending in ×."),
    "study_importance": ("Parameter importance",
                         "How much of each objective's variation each searched param explains, by Optuna's "
                         "evaluators over the completed trials (fANOVA: a random forest's variance "
                         "decomposition; PED-ANOVA: how much the best trials' params differ from all). "
                         "Normalised to sum 1 per evaluator."),
    "study_parallel": ("Parallel coordinates",
                       "One line per trial across the searched params and the objective(s), coloured by the "
                       "first objective; the best trials (or the Pareto front) are thick and numbered. Pruned "
                       "trials are dashed and end at their last reported value, failed ones dotted."),
    "study_pareto": ("Pareto front over the objectives",
                     "Every completed trial on the plane of the first two objectives (colour: trial number); "
                     "circled and numbered: the Pareto front, trials no other trial beats on every objective."),
}


@dataclass
class Report:
    html: Path
    csv: Path
    figures: dict[str, Path]
    wandb_run_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- the table ----------------------------------------------------------------------------
def fmt(value: Any) -> str:
    """Short text for a table cell: 312.73, 0.01, 1e+300, 20."""
    if value is None:
        return ""
    if isinstance(value, float) and not isinstance(value, bool):
        if abs(value) >= 1e5 or (value and abs(value) < 1):
            return f"{value:.3g}"
        return f"{value:.0f}" if value == round(value) else f"{value:.2f}"
    return str(value)


def table_columns(sweep: Sweep) -> list[str]:
    """Params that vary between runs come first (β and latent size always), then the metrics."""
    varying = [k for k in dict.fromkeys(k for r in sweep.runs for k in r.params)
               if k not in ("beta", "latent_size") and len({json.dumps(r.params.get(k)) for r in sweep.runs}) > 1
               and not (k == "beta_eff" and all(r.params.get(k) in (None, r.params.get("beta")) for r in sweep.runs))]
    return ["beta", "latent_size", *varying]


def display_rows(sweep: Sweep) -> tuple[list[str], list[list[str]]]:
    params = table_columns(sweep)
    metrics = metric_columns(sweep.runs)
    headers = ["job", "run", "state", *("β" if p == "beta" else p for p in params), *metrics.values(), "error"]
    rows = [[run.job, run.label, run.state, *(fmt(run.params.get(p)) for p in params),
             *(fmt(run.metric(m)) for m in metrics), (run.error or "") if run.state != "completed" else ""]
            for run in sweep.runs]
    return headers, rows


def error_column_needed(rows: list[list[str]]) -> bool:
    return any(row[-1] for row in rows)


def csv_text(sweep: Sweep) -> str:
    """Every param and scalar metric of every run, one row per run, full precision."""
    params = list(dict.fromkeys(k for r in sweep.runs for k in r.params))
    metrics = list(dict.fromkeys([*METRICS, *(k for r in sweep.runs for k in r.metrics)]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["job", "run_name", "label", "state", *params, *metrics, "error", "overrides", "output_dir"])
    for r in sweep.runs:
        values = [json.dumps(r.metrics.get(m)) if isinstance(r.metrics.get(m), (list, dict)) else r.metrics.get(m)
                  for m in metrics]
        writer.writerow([r.job, r.name, r.label, r.state, *(r.params.get(p) for p in params), *values,
                         r.error or "", " ".join(r.overrides), r.output_dir or ""])
    return buffer.getvalue()


def print_table(sweep: Sweep, file=None) -> None:
    from rich.console import Console
    from rich.table import Table

    headers, rows = display_rows(sweep)
    if not error_column_needed(rows):
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    styles = {"completed": "green", "failed": "red", "pruned": "yellow", "missing": "dim", "running": "dim"}
    table = Table(title=f"{sweep.path}  ({sweep.summary()})", title_justify="left")
    for h in headers:
        table.add_column(h, justify="left" if h in ("job", "run", "state", "error") else "right",
                         overflow="fold", max_width=40 if h == "error" else None)
    for run, row in zip(sweep.runs, rows):
        table.add_row(*row, style=styles.get(run.state))
    file = file or sys.stdout
    # A terminal sets its own width; a log file or pipe gets room for every column.
    Console(file=file, width=None if file.isatty() else 200).print(table)


def missing_notes(sweep: Sweep) -> list[str]:
    notes = [f"job {r.job} ({r.label}): {r.state}: {r.error or 'no reason recorded'}"
             for r in sweep.runs if r.state != "completed"]
    return notes + sweep.notes


# --- W&B ------------------------------------------------------------------------------------
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
    import wandb

    from vae.secrets import redact
    from PIL import Image

    from sweeps.report.plots import best_run
    from vae.loggers import DEFAULT_INIT_TIMEOUT, start_wandb, wandb_mode

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


# --- the whole report -----------------------------------------------------------------------
def make_report(sweep: Sweep, metric: str = "test/nll_iwae", use_wandb: bool = True,
                print_to=None) -> Report:
    """Write report.html, report/*.png and report/runs.csv into ``sweep.path``; log to W&B unless
    ``use_wandb`` is False or the sweep did not use W&B."""
    from sweeps.report import html, plots
    from protocol.atomic import atomic_write_bytes, atomic_write_text

    started = time.perf_counter()
    out = sweep.path / REPORT_DIR
    view, study_figures, found, study_notes, trials = sweep.study, {}, [], [], None
    if view is not None:
        from sweeps.report import study as study_module, study_plots

        study_figures, found, study_notes = study_plots.study_figures(view)
        trials = study_module.trial_table(view, sweep.runs)
    if view is not None and sweep.runs and not any(r.metrics for r in sweep.runs):
        figures, figure_notes = {}, ["no trial wrote a metrics.json (not runs of train.py): no rate–distortion "
                                     "plane, heatmap or mosaics, only the study's figures"]
    else:
        figures, figure_notes = plots.all_figures(sweep.runs, metric)
    figures = {**study_figures, **figures}
    captions = {**STUDY_FIGURES, **FIGURES, "heatmap": (f"{metric} by β × latent size", FIGURES["heatmap"][1]),
                **run_captions(sweep, figures)}
    paths = {}
    for name, png in figures.items():
        paths[name] = out / f"{name}.png"
        atomic_write_bytes(paths[name], png)
    for old in out.glob("*.png"):  # a figure this sweep can't have: drop an older one
        if old.stem not in figures and old.stem.partition("@")[0] in captions:
            old.unlink(missing_ok=True)
    csv_path = out / "runs.csv"
    atomic_write_text(csv_path, csv_text(sweep))
    if view is None:
        notes = missing_notes(sweep) + figure_notes
    else:   # one line per trial would bury the page at 200 trials; the table's note column has them
        ended = {s: sweep.count(s) for s in ("failed", "pruned", "missing", "running") if sweep.count(s)}
        notes = ([", ".join(f"{n} {s}" for s, n in ended.items()) + " trials: why is in the table's note column"]
                 if ended else []) + sweep.notes + figure_notes + study_notes

    meta = [f"{sweep.kind} {sweep.path}", sweep.summary()]
    if sweep.overrides:
        meta.append("swept: " + " ".join(sweep.overrides))
    if view is None:
        headers, rows = display_rows(sweep)
        if not error_column_needed(rows):
            headers, rows = headers[:-1], [row[:-1] for row in rows]
        table_html = html.table(headers, rows, [r.state for r in sweep.runs], text_columns=("job", "run", "state", "error"))
        shown = [(f"{captions[stem][0]}{' — ' + dataset if dataset else ''}", captions.get(name, captions[stem])[1],
                  figures[name])
                 for stem, dataset, name in ordered_figures(figures, FIGURES)]
        page = html.page(f"Sweep report: {sweep.name}", meta, notes, table_html, shown)
    else:
        meta.append(f"Optuna study {view.name} in {view.storage}: " + ", ".join(
            f"{d} {o}" for d, o in zip(view.directions, view.objectives)) + f"; searched: {', '.join(view.params)}")
        page = study_page(sweep, view, trials, figures, captions, meta, notes)
    html_path = sweep.path / "report.html"
    atomic_write_text(html_path, page)

    report = Report(html=html_path, csv=csv_path, figures=paths, notes=notes)
    skip = None if use_wandb else "--no-wandb: no W&B report run"
    skip = skip or wandb_skip_reason(sweep)
    if skip:
        log.info(skip)
        report.notes.append(skip)
    else:
        report.wandb_run_dir = log_to_wandb(sweep, figures, metric, trials=trials and trials[:2], importances=found)
    if print_to is not False:
        print_table(sweep, file=print_to)
    report.seconds = time.perf_counter() - started
    return report


def run_captions(sweep: Sweep, figures: dict[str, bytes]) -> dict[str, tuple[str, str]]:
    """Captions naming the run a figure shows (the best-MIG run's matrix), per figure name."""
    from sweeps.report.disentanglement_plots import best_mutual_info

    out = {}
    for name in figures:
        stem, _, dataset = name.partition("@")
        if stem == "mutual_info_best":
            runs = [r for r in sweep.runs if not dataset or str(r.params.get("data")) == dataset]
            best = best_mutual_info(runs)[1]
            heading, caption = FIGURES[stem]
            out[name] = (heading, f"{caption} Shown: run {best.label or best.name} "
                                  f"(MIG {best.metric('test/mig'):.3f}, the best).")
    return out


def ordered_figures(figures: dict[str, bytes], order) -> list[tuple[str, str, str]]:
    """(stem, dataset, name) in the page's order; ``name`` is ``stem`` or ``stem@dataset``."""
    out = []
    for stem in order:
        for name in figures:
            base, _, dataset = name.partition("@")
            if base == stem:
                out.append((stem, dataset, name))
    return out


def study_page(sweep: Sweep, view, trials, figures: dict[str, bytes], captions: dict, meta: list[str],
               notes: list[str]) -> str:
    """A study's page: the sortable trial table, the study's figures, then the runs' own; the
    study's Pareto front and the rate–distortion plane link to each other."""
    from sweeps.report import html

    headers, rows, states = trials
    front = [f"{state} front" if "front" in row else state for row, state in zip(rows, states)]
    table_html = html.table(headers, [[fmt(v) for v in row] for row in rows], front,
                            text_columns=("state", "note"), sortable=True)
    links = {"study_pareto": [("rate_distortion", "the same trials' test rate and distortion")],
             "rate_distortion": [("study_pareto", "the study's own Pareto front over its objectives")]}
    shown = [html.Figure(*captions[name], figures[name], anchor=name,
                         see_also=[link for link in links.get(name, []) if link[0] in figures])
             for name in [*STUDY_FIGURES, *FIGURES] if name in figures]
    return html.page(f"Study report: {view.name}", meta, notes, table_html, shown,
                     table_heading=f"Trials ({len(rows)}; click a column to sort)", study=True)


def describe(report: Report) -> list[str]:
    lines = [f"report: {report.html}  (PNGs and runs.csv in {report.csv.parent}; built in {report.seconds:.1f} s)"]
    if report.wandb_run_dir is not None:
        lines.append(f"W&B report run: {report.wandb_run_dir}; upload: wandb sync {report.wandb_run_dir}; "
                     f"browse: wandb leet {report.wandb_run_dir}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeps.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", help="a multirun folder (outputs/multiruns/<time>)")
    parser.add_argument("--storage", help="an Optuna storage URL, e.g. sqlite:///outputs/optuna.db")
    parser.add_argument("--study", help="the Optuna study's name (with --storage)")
    parser.add_argument("--out", help="where a study's report goes (default: its trials' sweep folder)")
    parser.add_argument("--metric", default="test/nll_iwae", help="the heatmap's metric (default: %(default)s)")
    parser.add_argument("--no-wandb", action="store_true", help="don't log a W&B report run")
    args = parser.parse_args(argv)
    if bool(args.storage) != bool(args.study) or bool(args.path) == bool(args.storage):
        parser.error("give a multirun folder PATH, or --storage URL --study NAME")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        sweep = collect_study(args.storage, args.study, args.out) if args.storage else collect_multirun(args.path)
        report = make_report(sweep, metric=args.metric, use_wandb=not args.no_wandb)
    except (FileNotFoundError, ValueError, KeyError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        log.info("note: %s", note)
    for line in describe(report):
        log.info(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
