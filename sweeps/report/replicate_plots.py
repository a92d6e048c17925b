"""The report's figures for a sweep with replicates: each configuration as its mean over seeds with
its 95% interval (replicates.py), where plots.py draws one point per run.

- ``rate_distortion``: the plane, a configuration's mean with error bars (R and D intervals), its
  seeds as faint dots behind;
- ``heatmap``: β × latent size, each cell the mean and [low, high];
- ``scores_vs_beta``: each disentanglement score against β, mean line with the interval as a band.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from sweeps.report.disentanglement_plots import SCORES, finish_scores_figure
from sweeps.report.drawing import MARKERS, fmt_beta, plt, png
from sweeps.report.grid import lower_is_better
from sweeps.report.replicates import Configuration, configurations
from sweeps.report.runs import Run


def _half(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _label(c: Configuration) -> str:
    return f"β={fmt_beta(c.beta)}, z={c.latent_size if c.latent_size is not None else '?'}"


def rate_distortion(runs: Sequence[Run]) -> bytes:
    configs = [c for c in configurations(runs) if c.interval("test/rate").n and c.interval("test/distortion").n]
    betas = sorted({c.beta for c in configs if c.beta is not None})
    sizes = sorted({c.latent_size for c in configs if c.latent_size is not None})
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for c in configs:
        rate, dist = c.interval("test/rate"), c.interval("test/distortion")
        colour = cmap(betas.index(c.beta) / max(len(betas) - 1, 1)) if c.beta in betas else "black"
        marker = MARKERS[sizes.index(c.latent_size) % len(MARKERS)] if c.latent_size in sizes else "o"
        ax.scatter([r.metric("test/rate") for r in c.done], [r.metric("test/distortion") for r in c.done],
                   color=colour, s=12, alpha=0.35, zorder=2)
        ax.errorbar(rate.mean, dist.mean, xerr=_half(rate.half), yerr=_half(dist.half), fmt=marker, color=colour,
                    ms=8, mec="black", mew=0.5, capsize=3, zorder=3, label=f"{_label(c)} (n={rate.n})")
    ax.set_xlabel("rate R = KL(q(z|x) ‖ p(z))  [nats]")
    ax.set_ylabel("distortion D = −E log p(x|z)  [nats]")
    ax.set_title("Rate–distortion plane (test set): mean over seeds, bars = 95% t interval\n"
                 "faint dots: the seeds", fontsize=11)
    if configs:
        ax.legend(fontsize=7, loc="best", framealpha=0.85)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    return png(fig)


def heatmap(runs: Sequence[Run], metric: str) -> bytes:
    configs = [c for c in configurations(runs) if c.beta is not None]
    betas = sorted({c.beta for c in configs})
    sizes = sorted({c.latent_size for c in configs}, key=lambda z: (z is None, z or 0))
    values = np.full((len(betas), len(sizes)), np.nan)
    texts = {}
    for c in configs:
        i, j = betas.index(c.beta), sizes.index(c.latent_size)
        interval = c.interval(metric)
        if interval.n:
            values[i, j] = interval.mean
            texts[(i, j)] = f"{interval.mean:.3g}" + (f"\n[{interval.low:.3g}, {interval.high:.3g}]\nn={interval.n}"
                                                       if interval.n > 1 else "\nn=1")
        else:
            texts[(i, j)] = "no value"
    fig, ax = plt.subplots(figsize=(2.0 * max(len(sizes), 1) + 2.5, 1.0 * max(len(betas), 1) + 1.8))
    image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto")
    if np.isfinite(values).any():
        fig.colorbar(image, ax=ax, label=f"{metric} (mean over seeds)")
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0
    for (i, j), text in texts.items():
        colour = "white" if np.isfinite(values[i, j]) and values[i, j] < middle else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour, fontweight="bold")
    ax.set_xticks(range(len(sizes)), [str(z) for z in sizes])
    ax.set_yticks(range(len(betas)), [fmt_beta(b) for b in betas])
    ax.set_xlabel("latent size")
    ax.set_ylabel("β")
    better = " (lower is better)" if lower_is_better(metric) else ""
    ax.set_title(f"{metric}: mean [95% t interval] over seeds{better}", fontsize=10)
    fig.tight_layout()
    return png(fig)


def scores_vs_beta(runs: Sequence[Run]) -> bytes:
    configs = [c for c in configurations(runs) if c.beta is not None and c.interval("test/mig").n]
    sizes = sorted({c.latent_size for c in configs}, key=lambda z: (z is None, z or 0))
    betas = sorted({c.beta for c in configs})
    fig, axes = plt.subplots(1, len(SCORES), figsize=(3.4 * len(SCORES), 3.3), squeeze=False)
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(sizes), 1)))
    for ax, key in zip(axes[0], SCORES):
        for colour, size in zip(colours, sizes):
            line = sorted(((c.beta, c.interval(key)) for c in configs if c.latent_size == size), key=lambda p: p[0])
            line = [(b, i) for b, i in line if i.n]
            if not line:
                continue
            xs = [b for b, _ in line]
            ax.plot(xs, [i.mean for _, i in line], "-o", color=colour, ms=4, label=f"latent {size}")
            low = [i.low if i.n > 1 else i.mean for _, i in line]
            high = [i.high if i.n > 1 else i.mean for _, i in line]
            ax.fill_between(xs, low, high, color=colour, alpha=0.2, lw=0)
            for c in configs:   # the seeds, faint, behind the band
                if c.latent_size == size and c.beta in xs:
                    seeds = [v for r in c.done if (v := r.metric(key)) is not None]
                    ax.scatter([c.beta] * len(seeds), seeds, color=colour, s=6, alpha=0.35)
    return finish_scores_figure(fig, axes, betas, "Disentanglement against β: mean over seeds, band = 95% t interval")
