"""The report's figures, drawn with matplotlib (Agg: no display needed) and returned as PNG bytes.

Each function takes the sweep's runs and draws one figure; none of them reads files except the
runs' own PNGs and history (through ``Run``).
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sweeps.runs import METRICS, Run  # noqa: E402

MARKERS = "os^DvPX*h<>"
LOWER_IS_BETTER = {"nll_iwae", "neg_elbo", "distortion", "loss"}
# A grid axis with more values than this (e.g. a continuous β from Optuna) is not drawn as a grid.
MAX_GRID = 12
STATE_COLOURS = {"failed": "#d62728", "pruned": "#ff7f0e", "running": "#7f7f7f", "missing": "#7f7f7f"}


def png(fig: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def fmt_beta(beta: float | None) -> str:
    return "?" if beta is None else f"{beta:g}"


def point_label(run: Run) -> str:
    return f"β={fmt_beta(run.beta)}, z={run.latent_size if run.latent_size is not None else '?'}"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (both minimised), by x.

    O(n²) and ten lines: sweeps hold tens of runs, and optuna's version works on trials,
    not on bare points, so a dependency would buy nothing here.
    """
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(xj <= xi and yj <= yi and (xj < xi or yj < yi) for j, (xj, yj) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def _beta_colours(runs: Sequence[Run]) -> dict[float | None, tuple]:
    betas = sorted({r.beta for r in runs}, key=lambda b: (b is None, b or 0.0))
    cmap = plt.get_cmap("viridis")
    return {b: cmap(i / max(len(betas) - 1, 1)) for i, b in enumerate(betas)}


def _latent_markers(runs: Sequence[Run]) -> dict[int | None, str]:
    sizes = sorted({r.latent_size for r in runs}, key=lambda z: (z is None, z or 0))
    return {z: MARKERS[i % len(MARKERS)] for i, z in enumerate(sizes)}


def rate_distortion(runs: Sequence[Run]) -> bytes:
    """One point per completed run on the (rate, distortion) plane, with −ELBO = D + R iso-lines
    and the Pareto front (no other run has both less rate and less distortion)."""
    done = [r for r in runs if r.metric("test/rate") is not None and r.metric("test/distortion") is not None]
    fig, ax = plt.subplots(figsize=(7, 5.5))
    colours, markers = _beta_colours(runs), _latent_markers(runs)
    if done:
        rates = np.array([r.metric("test/rate") for r in done])
        dists = np.array([r.metric("test/distortion") for r in done])
        xspan = max(rates.max() - rates.min(), 1.0)
        yspan = max(dists.max() - dists.min(), 1.0)
        xlim = (min(rates.min(), 0) - 0.08 * xspan, rates.max() + 0.15 * xspan)
        ylim = (dists.min() - 0.1 * yspan, dists.max() + 0.1 * yspan)
        # Iso-lines D + R = c: every point on one has the same −ELBO. Round levels across the
        # window, each labelled where it leaves the top edge.
        totals = rates + dists
        levels = MaxNLocator(8).tick_values(xlim[0] + ylim[0], xlim[1] + ylim[1])
        xs = np.array(xlim)
        for c in levels:
            ax.plot(xs, c - xs, color="0.8", lw=0.8, ls="--", zorder=0)
            x_top = c - ylim[1]
            if xlim[0] < x_top < xlim[1] - 0.04 * (xlim[1] - xlim[0]):
                ax.text(x_top, ylim[1], f"{c:g}", fontsize=7, color="0.45", ha="left", va="top")
        best = int(np.argmin(totals))
        ax.plot(xs, totals[best] - xs, color="0.45", lw=1.0, ls="-", zorder=0,
                label=f"best −ELBO = {totals[best]:.1f} ({point_label(done[best])})")
        front = pareto_front(list(zip(rates, dists)))
        ax.step(rates[front], dists[front], where="post", color="crimson", lw=1.5, alpha=0.7, zorder=1,
                label="Pareto front")
        ax.scatter(rates[front], dists[front], s=260, facecolors="none", edgecolors="crimson", lw=1.5, zorder=2)
        for k, (r, x, y) in enumerate(zip(done, rates, dists)):
            ax.scatter([x], [y], color=colours[r.beta], marker=markers[r.latent_size], s=70,
                       edgecolors="black", lw=0.5, zorder=3)
            # Alternate labels above and below their points, so neighbours don't print over each other.
            ax.annotate(point_label(r), (x, y), xytext=(7, 5 if k % 2 == 0 else -12), textcoords="offset points",
                        fontsize=8)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
    # Legend entries for β colours and latent-size markers.
    for beta, colour in colours.items():
        ax.scatter([], [], color=colour, marker="o", label=f"β={fmt_beta(beta)}")
    for size, marker in markers.items():
        ax.scatter([], [], color="white", edgecolors="black", marker=marker, label=f"latent {size}")
    not_done = [r for r in runs if r not in done]
    if not_done:
        text = "not on the plane:\n" + "\n".join(f"{point_label(r)}: {r.state}" for r in not_done[:8])
        if len(not_done) > 8:
            text += f"\n… and {len(not_done) - 8} more"
        ax.text(0.99, 0.99, text, transform=ax.transAxes, ha="right", va="top", fontsize=7, color="#d62728",
                bbox=dict(facecolor="white", edgecolor="#d62728", alpha=0.85))
    ax.set_xlabel("rate R = KL(q(z|x) ‖ p(z))  [nats]")
    ax.set_ylabel("distortion D = −E log p(x|z)  [nats]")
    ax.set_title("Rate–distortion plane (test set)\ndashed: −ELBO = D + R iso-lines, value at the top edge", fontsize=11)
    ax.legend(fontsize=7, loc="lower left", framealpha=0.85)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    return png(fig)


def grid_axes(runs: Sequence[Run]) -> tuple[list[float | None], list[int | None]] | None:
    """Sorted β (rows) and latent sizes (columns), or None if they don't form a small grid."""
    betas = sorted({r.beta for r in runs}, key=lambda b: (b is None, b or 0.0))
    sizes = sorted({r.latent_size for r in runs}, key=lambda z: (z is None, z or 0))
    if len(betas) > MAX_GRID or len(sizes) > MAX_GRID:
        return None
    return betas, sizes


def _cells(runs: Sequence[Run]) -> dict[tuple, list[Run]]:
    cells: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        cells[(r.beta, r.latent_size)].append(r)
    return cells


def heatmap(runs: Sequence[Run], metric: str = "test/nll_iwae") -> bytes | None:
    """β (rows) × latent size (columns), coloured by ``metric`` (the mean over runs in a cell).
    Cells without a completed run are hatched and say why (failed, missing...)."""
    axes = grid_axes(runs)
    if axes is None:
        return None
    betas, sizes = axes
    cells = _cells(runs)
    values = np.full((len(betas), len(sizes)), np.nan)
    for i, b in enumerate(betas):
        for j, z in enumerate(sizes):
            found = [v for r in cells.get((b, z), []) if r.state == "completed" and (v := r.metric(metric)) is not None]
            if found:
                values[i, j] = float(np.mean(found))
    fig, ax = plt.subplots(figsize=(1.6 * len(sizes) + 2.5, 0.9 * len(betas) + 1.8))
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap="viridis", aspect="auto")
    if np.isfinite(values).any():
        fig.colorbar(image, ax=ax, label=metric)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i, b in enumerate(betas):
        for j, z in enumerate(sizes):
            here = cells.get((b, z), [])
            if not here:
                continue
            problems = [r.state for r in here if r.state != "completed"]
            if np.isfinite(values[i, j]):
                text = f"{values[i, j]:.1f}"
                if len(here) > 1:
                    text += f"\n(mean of {len(here) - len(problems)})"
                if problems:
                    text += "\n+" + ", ".join(problems)
                colour = "white" if values[i, j] < middle else "black"
            else:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#f2f2f2",
                                           edgecolor=STATE_COLOURS.get(problems[0], "grey"), hatch="//", lw=1.5))
                text = "\n".join(sorted(set(problems))) or "no value"
                colour = STATE_COLOURS.get(problems[0] if problems else "", "black")
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color=colour, fontweight="bold")
    ax.set_xticks(range(len(sizes)), [f"{z}" for z in sizes])
    ax.set_yticks(range(len(betas)), [fmt_beta(b) for b in betas])
    ax.set_xlabel("latent size")
    ax.set_ylabel("β")
    better = "lower" if metric.split("/")[-1] in LOWER_IS_BETTER else "higher" if metric.endswith("active_units") else None
    ax.set_title(f"{metric} by β × latent size" + (f" ({better} is better)" if better else ""))
    fig.tight_layout()
    return png(fig)


CURVES = (("train/loss", "total loss (D + β·R)"), ("train/distortion", "reconstruction D"), ("train/rate", "KL rate R"))


def curves(runs: Sequence[Run]) -> bytes:
    """Training curves of every run overlaid: total loss, reconstruction, KL. Failed runs dashed."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    drawn = 0
    for k, run in enumerate(runs):
        history = run.history()
        if not history:
            continue
        drawn += 1
        style = "-" if run.state == "completed" else "--"
        for ax, (column, _) in zip(axes, CURVES):
            points = history.get(column) or history.get(column.replace("train/", "val/")) or []
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, color=colours(k % colours.N), marker="." if len(points) < 5 else None,
                        label=f"{point_label(run)} ({run.state})" if run.state != "completed" else point_label(run))
    for ax, (column, title) in zip(axes, CURVES):
        ax.set(title=title, xlabel="step", ylabel=f"{column} [nats]")
        ax.grid(alpha=0.2)
    if column_has_range(axes[0]):
        axes[0].set_yscale("log")
    if drawn:
        axes[-1].legend(fontsize=7, loc="best")
    else:
        axes[1].text(0.5, 0.5, "no run has a history yet (csv/metrics.csv)", ha="center", transform=axes[1].transAxes)
    fig.suptitle("Training curves across runs (dashed: not completed)")
    fig.tight_layout()
    return png(fig)


def column_has_range(ax) -> bool:
    """A log axis helps when the curves span more than a factor of 10 (the first steps dwarf the rest)."""
    values = [v for line in ax.get_lines() for v in line.get_ydata()]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


def _read_png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def mosaic(runs: Sequence[Run], images: Sequence[str], title: str) -> bytes | None:
    """The runs' final figures laid out by β (rows) and latent size (columns). ``images`` are
    the names to try in order (a latent size of 1 has traversal rows but no 2-D grid)."""
    axes_values = grid_axes(runs)
    if axes_values is None:
        return None
    betas, sizes = axes_values
    cells = _cells(runs)
    fig, axes = plt.subplots(len(betas), len(sizes), figsize=(2.6 * len(sizes) + 0.6, 2.6 * len(betas) + 0.6),
                             squeeze=False)
    for i, b in enumerate(betas):
        for j, z in enumerate(sizes):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            here = cells.get((b, z), [])
            picture = next((p for r in here for name in images if (p := r.image(name)) is not None), None)
            if picture is not None:
                ax.imshow(_read_png(picture), interpolation="nearest")
                run = next(r for r in here if any(r.image(n) == picture for n in images))
                if run.state != "completed":
                    ax.set_title(run.state, fontsize=8, color=STATE_COLOURS.get(run.state, "black"))
            else:
                why = ", ".join(sorted({r.state for r in here})) or "no run"
                ax.set_facecolor("#f2f2f2")
                ax.text(0.5, 0.5, f"{why}\n(no image)", ha="center", va="center", transform=ax.transAxes,
                        color=STATE_COLOURS.get(why, "black"), fontsize=10, fontweight="bold")
            if j == 0:
                ax.set_ylabel(f"β={fmt_beta(b)}", fontsize=11)
            if i == 0:
                ax.set_title(f"latent {z}" + (f"\n{ax.get_title()}" if ax.get_title() else ""), fontsize=11)
    fig.suptitle(title)
    fig.tight_layout()
    return png(fig)


def all_figures(runs: Sequence[Run], metric: str = "test/nll_iwae") -> tuple[dict[str, bytes], list[str]]:
    """Every figure of the report by file stem, and notes on the figures that could not be drawn."""
    if metric not in METRICS and not metric.startswith(("test/", "val/")):
        raise ValueError(f"unknown metric {metric!r}; use one of: {', '.join(METRICS)}")
    figures: dict[str, bytes] = {"rate_distortion": rate_distortion(runs)}
    notes = []
    heat = heatmap(runs, metric)
    traversals = mosaic(runs, ["traversal_grid", "traversal_rows"],
                        "Latent traversals by β (rows) and latent size (columns)")
    recons = mosaic(runs, ["reconstructions"], "Reconstructions (top: input, bottom: output) by β and latent size")
    if heat is None or traversals is None:
        notes.append(f"β × latent size is not a grid of at most {MAX_GRID}×{MAX_GRID} values; "
                     "heatmap and mosaics skipped")
    figures |= {name: fig for name, fig in
                (("heatmap", heat), ("mosaic_traversals", traversals), ("mosaic_reconstructions", recons))
                if fig is not None}
    figures["curves"] = curves(runs)
    return figures, notes


def is_blank(png_bytes: bytes, threshold: float = 2.0) -> bool:
    """True if an image is (nearly) one flat colour; tests use it to catch empty figures."""
    from PIL import Image

    with Image.open(io.BytesIO(png_bytes)) as image:
        return float(np.asarray(image.convert("L"), dtype=np.float32).std()) < threshold


__all__ = ["all_figures", "curves", "heatmap", "is_blank", "mosaic", "pareto_front", "rate_distortion"]
