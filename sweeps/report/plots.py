"""The report's figures, drawn with matplotlib (Agg: no display needed) and returned as PNG bytes.

Each function takes the sweep's runs and draws one figure; none of them reads files except the
runs' own PNGs and history (through ``Run``).

The grid figures (heatmap, mosaics) and the rate–distortion plane share the β × latent-size grid
and its binning (grid.py); figures.py picks which figures a sweep gets.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.cm
import matplotlib.colors
import numpy as np
from matplotlib.ticker import MaxNLocator

from sweeps.report.drawing import MARKERS, STATE_COLOURS, fmt_beta, plt, png  # drawing sets the Agg backend first
from sweeps.report.grid import MAX_GRID, best_run, lower_is_better, make_grid
from sweeps.report.runs import Run


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


def _beta_colours(runs: Sequence[Run]) -> tuple[dict[float | None, tuple], "matplotlib.colors.Normalize | None"]:
    """A colour per β: evenly spaced for a grid's few values; for a continuous search (many
    values) a log scale shown as a colour bar, returned as its norm."""
    betas = sorted({r.beta for r in runs}, key=lambda b: (b is None, b or 0.0))
    cmap = plt.get_cmap("viridis")
    if len(betas) <= MAX_GRID:
        return {b: cmap(i / max(len(betas) - 1, 1)) for i, b in enumerate(betas)}, None
    positive = [b for b in betas if b is not None and b > 0]
    norm = matplotlib.colors.LogNorm(min(positive), max(positive))
    return {b: ("black" if b is None else cmap(0.0) if b <= 0 else cmap(norm(b))) for b in betas}, norm


def _latent_markers(runs: Sequence[Run]) -> dict[int | None, str]:
    sizes = sorted({r.latent_size for r in runs}, key=lambda z: (z is None, z or 0))
    return {z: MARKERS[i % len(MARKERS)] for i, z in enumerate(sizes)}


def rate_distortion(runs: Sequence[Run]) -> bytes:
    """One point per completed run on the (rate, distortion) plane, with −ELBO = D + R iso-lines
    and the Pareto front (no other run has both less rate and less distortion)."""
    done = [r for r in runs if r.metric("test/rate") is not None and r.metric("test/distortion") is not None]
    fig, ax = plt.subplots(figsize=(7, 5.5))
    (colours, norm), markers = _beta_colours(runs), _latent_markers(runs)
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
        # Continuous search: label the front (or, if it is long, its ends and the best −ELBO run).
        labelled = set(front) if len(front) <= 8 else {front[0], front[-1], best}
        rank = np.argsort(np.argsort(rates, kind="stable"), kind="stable")
        for k, (r, x, y) in enumerate(zip(done, rates, dists)):
            ax.scatter([x], [y], color=colours[r.beta], marker=markers[r.latent_size], s=70,
                       edgecolors="black", lw=0.5, zorder=3)
            if norm is not None and k not in labelled:
                continue  # a continuous search has too many runs to label all
            # Alternate labels above and below their points in order of rate, so that neighbours
            # don't print over each other.
            # Points near the right edge get their label on their left, inside the axes.
            right = x > xlim[0] + 0.75 * (xlim[1] - xlim[0])
            ax.annotate(point_label(r), (x, y), xytext=(-7 if right else 7, 5 if rank[k] % 2 == 0 else -12),
                        textcoords="offset points", fontsize=8, ha="right" if right else "left")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
    # Legend entries for β colours and latent-size markers.
    if norm is None:
        for beta, colour in colours.items():
            ax.scatter([], [], color=colour, marker="o", label=f"β={fmt_beta(beta)}")
    else:
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label="β (log scale)")
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


def heatmap(runs: Sequence[Run], metric: str = "test/nll_iwae") -> bytes:
    """β (rows) × latent size (columns), coloured by ``metric``: the mean over the runs in a cell,
    or in a binned grid (a continuous search) the best run's. Cells without a completed run are
    hatched and say why (failed, pruned, missing...)."""
    grid = make_grid(runs)
    values = np.full((len(grid.rows), len(grid.columns)), np.nan)
    for (i, j), here in grid.cells.items():
        found = [v for r in here if r.state == "completed" and (v := r.metric(metric)) is not None]
        if found:
            values[i, j] = best_run(here, metric).metric(metric) if grid.binned else float(np.mean(found))
    fig, ax = plt.subplots(figsize=(1.6 * len(grid.columns) + 2.5, 0.9 * len(grid.rows) + 1.8))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    if np.isfinite(values).any():
        fig.colorbar(image, ax=ax, label=metric)
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    # Scores in [0, 1] (MIG 0.145 vs 0.047) need three decimals; nats (~100) read well with one.
    decimals = 3 if finite.size and np.abs(finite).max() < 10 else 1
    for (i, j), here in grid.cells.items():
        problems = [r.state for r in here if r.state != "completed"]
        if np.isfinite(values[i, j]):
            text = f"{values[i, j]:.{decimals}f}"
            done = len(here) - len(problems)
            if done > 1:
                text += f"\n({'best' if grid.binned else 'mean'} of {done})"
            if problems:
                text += "\n+" + ", ".join(f"{problems.count(p)} {p}" for p in sorted(set(problems)))
            colour = "white" if values[i, j] < middle else "black"
        else:
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#f2f2f2",
                                       edgecolor=STATE_COLOURS.get(problems[0] if problems else "", "grey"),
                                       hatch="//", lw=1.5))
            text = "\n".join(sorted(set(problems))) or "no value"
            colour = STATE_COLOURS.get(problems[0] if problems else "", "black")
        ax.text(j, i, text, ha="center", va="center", fontsize=9, color=colour, fontweight="bold")
    ax.set_xticks(range(len(grid.columns)), grid.columns)
    ax.set_yticks(range(len(grid.rows)), [label.removeprefix("β=") for label in grid.rows])
    ax.set_xlabel("latent size")
    ax.set_ylabel("β (binned)" if grid.binned else "β")
    better = "lower" if lower_is_better(metric) else "higher" if metric.endswith("active_units") else None
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


def kl_per_dim(runs: Sequence[Run]) -> bytes | None:
    """Each completed run's test KL per latent dim, sorted from the largest: a row that drops to ~0
    after k dims uses only k of its latents (the rest collapsed to the prior)."""
    rows = [(r, sorted(r.metrics["test/kl_per_dim"], reverse=True)) for r in runs
            if r.state == "completed" and isinstance(r.metrics.get("test/kl_per_dim"), list)
            and r.metrics["test/kl_per_dim"]]
    if not rows:
        return None
    width = max(len(kl) for _, kl in rows)
    values = np.full((len(rows), width), np.nan)
    for i, (_, kl) in enumerate(rows):
        values[i, : len(kl)] = kl
    fig, ax = plt.subplots(figsize=(min(0.35 * width + 4.5, 16), 0.4 * len(rows) + 1.6))
    floor = 1e-3  # nats: a log scale needs a floor; anything below is "collapsed"
    image = ax.imshow(np.ma.masked_invalid(np.maximum(values, floor)), aspect="auto", cmap="magma",
                      norm=matplotlib.colors.LogNorm(vmin=floor, vmax=max(np.nanmax(values), floor * 10)))
    fig.colorbar(image, ax=ax, label="KL [nats] (log scale)")
    ax.set_yticks(range(len(rows)), [point_label(r) for r, _ in rows], fontsize=8)
    ax.set_xlabel("latent dim, sorted by KL (largest first)")
    ax.set_title("KL per latent dim (test set): dark cells are collapsed dims")
    fig.tight_layout()
    return png(fig)


def column_has_range(ax) -> bool:
    """A log axis helps when the curves span more than a factor of 10 (the first steps dwarf the rest)."""
    values = [v for line in ax.get_lines() for v in line.get_ydata()]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


__all__ = ["curves", "heatmap", "pareto_front", "rate_distortion"]
