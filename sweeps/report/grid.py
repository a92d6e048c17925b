"""Where each run of a sweep sits on the β × latent-size grid, and which run is best in a cell.

The grid figures (heatmap, mosaics) and the rate–distortion plane's colours share this placement:
a sweep over a grid gets one row per value; a search over a continuous range (Optuna) gets
log-spaced bins, β = 0 a row of its own.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sweeps.report.runs import Run

LOWER_IS_BETTER = {"nll_iwae", "neg_elbo", "distortion", "loss"}
# A grid axis with more values than this (e.g. a continuous β from Optuna) is not drawn as a grid.
MAX_GRID = 12
BINS = 6


@dataclass
class Grid:
    """Runs placed on β (rows) × latent size (columns). A sweep over a grid gets one row per value;
    a search over a continuous range (Optuna) gets log-spaced bins, β = 0 a row of its own."""
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[int, int], list[Run]]
    binned: bool

    def runs(self, i: int, j: int) -> list[Run]:
        return self.cells.get((i, j), [])


def _axis(values: Sequence[float | None], name: str) -> tuple[list[str], list[int], bool]:
    """(labels, index of each value, binned?) for one axis of the grid."""
    distinct = sorted({v for v in values if v is not None})
    labels = [f"{name}{v:g}" for v in distinct]
    if len(distinct) <= MAX_GRID:
        index = {v: k for k, v in enumerate(distinct)}
        binned = False
    else:
        positive = [v for v in distinct if v > 0]
        edges = np.geomspace(min(positive), max(positive), BINS + 1) if len(positive) > 1 else np.array(positive * 2)
        labels = [f"{name}0"] if any(v <= 0 for v in distinct) else []
        offset = len(labels)
        labels += [f"{name}{lo:.2g}–{hi:.2g}" for lo, hi in zip(edges[:-1], edges[1:])]
        index = {v: 0 if v <= 0 else offset + min(int(np.searchsorted(edges, v, side="right")) - 1, BINS - 1)
                 for v in distinct}
        binned = True
    if any(v is None for v in values):
        labels.append(f"{name}?")
    unknown = len(labels) - 1
    return labels, [unknown if v is None else index[v] for v in values], binned


def make_grid(runs: Sequence[Run]) -> Grid:
    rows, row_of, binned_rows = _axis([r.beta for r in runs], "β=")
    columns, column_of, binned_columns = _axis([r.latent_size for r in runs], "")
    cells: dict[tuple[int, int], list[Run]] = defaultdict(list)
    for run, i, j in zip(runs, row_of, column_of):
        cells[(i, j)].append(run)
    # Drop rows and columns no run falls into (empty bins).
    used_rows = sorted({i for i, _ in cells})
    used_columns = sorted({j for _, j in cells})
    cells = {(used_rows.index(i), used_columns.index(j)): here for (i, j), here in cells.items()}
    return Grid([rows[i] for i in used_rows], [columns[j] for j in used_columns], cells,
                binned_rows or binned_columns)


def lower_is_better(metric: str) -> bool:
    return metric.split("/")[-1] in LOWER_IS_BETTER


def best_run(here: Sequence[Run], metric: str) -> Run | None:
    scored = [r for r in here if r.state == "completed" and r.metric(metric) is not None]
    if not scored:
        return None
    return (min if lower_is_better(metric) else max)(scored, key=lambda r: r.metric(metric))
