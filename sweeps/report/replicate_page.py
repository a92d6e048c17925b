"""The top of a report page for a sweep with replicates: one row per configuration (mean [95%
interval] over its seeds), every run's row folded away below it, and sentences comparing
neighbouring configurations. The W&B report run gets the same configuration table."""

from __future__ import annotations

from sweeps.report import html
from sweeps.report.replicate_table import comparisons, configuration_rows
from sweeps.report.runs import METRICS, Sweep

COMPARED = {"test/mig": "MIG"}


def compared_metrics(metric: str) -> dict[str, str]:
    return {metric: METRICS.get(metric, metric), **COMPARED}


def tables(sweep: Sweep, metric: str, runs_table_html: str) -> tuple[str, str]:
    """(heading, HTML) for the page's table section."""
    headers, rows, classes = configuration_rows(sweep)
    configuration_table = html.table(headers, rows, classes, text_columns=("configuration",))
    said = comparisons(sweep, compared_metrics(metric))
    compared = ("<h2>Comparisons (95% t intervals; paired per seed where the seeds are shared)</h2>\n"
                + html.sentences(said)) if said else ""
    runs = html.details(f"Every run ({len(sweep.runs)}, one row per seed): click to open", runs_table_html)
    heading = f"Configurations ({len(rows)}; mean [95% t interval] over seeds)"
    return heading, f"{configuration_table}\n{runs}\n{compared}"
