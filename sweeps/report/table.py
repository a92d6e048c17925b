"""The runs table of a report: as text in the terminal (rich), as CSV, and as the HTML table's rows."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from sweeps.report.runs import METRICS, Sweep, metric_columns


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
