"""Every run of a sweep side by side: a table, the rate–distortion plane, a β × latent heatmap,
training curves and image mosaics, as ``report.html`` (self-contained) + PNGs + CSV in the sweep
folder, and as one W&B run of job type ``report`` in the sweep's group. An Optuna study also gets
its analytics (``study_plots``): importance, parallel coordinates, history, Pareto front, and a
sortable trial table.

    python -m sweeps.report outputs/multiruns/2026-11-24_00-21-20
    python -m sweeps.report --storage sqlite:///outputs/optuna.db --study beta-vae [--out DIR]
    python -m sweeps.report DIR --metric test/neg_elbo --no-wandb

A multirun builds this itself when it ends (``sweeps.report.callback``; off: ``report.enabled=false``).

captions.py says what each figure shows, table.py draws the runs table, wandb_report.py logs the
W&B run; this module puts them together into the page.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from protocol.atomic import atomic_write_bytes, atomic_write_text
from sweeps.report import figures as figures_module, html, replicate_page
from sweeps.report.captions import FIGURES, STUDY_FIGURES
from sweeps.report.replicate_table import configurations_csv
from sweeps.report.replicates import has_replicates
from sweeps.report.runs import Sweep
from sweeps.report.table import csv_text, display_rows, error_column_needed, fmt, missing_notes, print_table
from sweeps.report.wandb_report import log_to_wandb, wandb_skip_reason

log = logging.getLogger(__name__)

REPORT_DIR = "report"            # PNGs and runs.csv; report.html sits beside the job folders


@dataclass
class Report:
    html: Path
    csv: Path
    figures: dict[str, Path]
    wandb_run_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def make_report(sweep: Sweep, metric: str = "test/nll_iwae", use_wandb: bool = True,
                print_to=None) -> Report:
    """Write report.html, report/*.png and report/runs.csv into ``sweep.path``; log to W&B unless
    ``use_wandb`` is False or the sweep did not use W&B."""
    started = time.perf_counter()
    out = sweep.path / REPORT_DIR
    view, study_figures, found, study_notes, trials = sweep.study, {}, [], [], None
    if view is not None:
        # Optuna and its importance evaluators: imported only for a study's report
        from sweeps.report import study as study_module, study_plots

        study_figures, found, study_notes = study_plots.study_figures(view)
        trials = study_module.trial_table(view, sweep.runs)
    if view is not None and sweep.runs and not any(r.metrics for r in sweep.runs):
        figures, figure_notes = {}, ["no trial wrote a metrics.json (not runs of train.py): no rate–distortion "
                                     "plane, heatmap or mosaics, only the study's figures"]
    else:
        figures, figure_notes = figures_module.all_figures(sweep.runs, metric)
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
        heading = "Runs"
        if has_replicates(sweep.runs):
            heading, table_html = replicate_page.tables(sweep, metric, table_html)
            atomic_write_text(out / "configurations.csv", configurations_csv(sweep))
        shown = [(f"{captions[stem][0]}{' — ' + dataset if dataset else ''}", captions.get(name, captions[stem])[1],
                  figures[name])
                 for stem, dataset, name in ordered_figures(figures, FIGURES)]
        page = html.page(f"Sweep report: {sweep.name}", meta, notes, table_html, shown, table_heading=heading)
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
