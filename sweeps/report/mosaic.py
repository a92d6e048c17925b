"""Image mosaics: each run's own final figure (traversals, reconstructions) laid out on the
β × latent-size grid of grid.make_grid."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from sweeps.report.drawing import STATE_COLOURS, fmt_beta, plt, png
from sweeps.report.grid import best_run, make_grid
from sweeps.report.runs import Run


def _read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def mosaic(runs: Sequence[Run], images: Sequence[str], title: str, metric: str = "test/nll_iwae",
           score: str | None = None) -> bytes:
    """The runs' final figures laid out by β (rows) and latent size (columns). ``images`` are
    the names to try in order (a latent size of 1 has traversal rows but no 2-D grid). Where a
    cell holds several runs, it shows the best by ``metric``. ``score``: a metric written under
    each picture (e.g. test/mig on data with known factors)."""
    grid = make_grid(runs)
    # Cells take the pictures' shape (a traversal grid is square, reconstructions are 4:1).
    first = next((p for r in runs for name in images if (p := r.image(name)) is not None), None)
    aspect = 1.0
    if first is not None:
        height, width = _read_png(first).shape[:2]
        aspect = max(height / width, 0.25)
    fig, axes = plt.subplots(len(grid.rows), len(grid.columns), squeeze=False,
                             figsize=(2.6 * len(grid.columns) + 0.6, (2.6 * aspect + 0.45) * len(grid.rows) + 0.7))
    for i, row in enumerate(grid.rows):
        for j, column in enumerate(grid.columns):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            here = grid.runs(i, j)
            ordered = [r for r in [best_run(here, metric)] if r is not None] + here
            shown = next(((r, p) for r in ordered for name in images if (p := r.image(name)) is not None), None)
            caption = []
            if shown is not None:
                run, picture = shown
                ax.imshow(_read_png(picture), interpolation="nearest")
                if grid.binned:
                    caption.append(f"β={fmt_beta(run.beta)}")
                if run.state != "completed":
                    caption.append(run.state)
                elif score is not None and run.metric(score) is not None:
                    caption.append(f"{score.split('/')[-1].upper()} {run.metric(score):.2f}")
            else:
                why = ", ".join(sorted({r.state for r in here})) or "no run"
                ax.set_facecolor("#f2f2f2")
                ax.text(0.5, 0.5, f"{why}\n(no image)", ha="center", va="center", transform=ax.transAxes,
                        color=STATE_COLOURS.get(why, "black"), fontsize=10, fontweight="bold")
            if i == 0:
                caption.insert(0, f"latent {column}")
            if caption:
                ax.set_title("\n".join(caption), fontsize=10 if i == 0 else 8)
            if j == 0:
                ax.set_ylabel(row.replace("=", "\n") if grid.binned else row, fontsize=9 if grid.binned else 11)
    fig.suptitle(title + (" (binned β: each cell shows its best run)" if grid.binned else ""))
    fig.tight_layout()
    return png(fig)
