"""The report's disentanglement figures, for sweeps on data with known factors (runs whose
metrics.json holds test/mig ...; vae/metrics/callback.py writes them).

- ``scores_vs_beta``: each score against β, one line per latent size: what β buys.
- ``best_mutual_info``: the latents × factors mutual-information matrix of the run with the best MIG.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sweeps.report.drawing import fmt_beta, plt, png
from sweeps.report.runs import Run

SCORES = {"test/mig": "MIG", "test/dci_disentanglement": "DCI disentanglement",
          "test/factor_vae": "FactorVAE score", "test/beta_vae": "BetaVAE score"}


def has_scores(runs: Sequence[Run]) -> bool:
    return any(r.state == "completed" and r.metric("test/mig") is not None for r in runs)


def scores_vs_beta(runs: Sequence[Run]) -> bytes:
    scored = [r for r in runs if r.state == "completed" and r.metric("test/mig") is not None and r.beta is not None]
    latents = sorted({r.latent_size for r in scored}, key=lambda v: (v is None, v))
    betas = sorted({r.beta for r in scored})
    fig, axes = plt.subplots(1, len(SCORES), figsize=(3.4 * len(SCORES), 3.3), squeeze=False)
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(latents), 1)))
    for ax, key in zip(axes[0], SCORES):
        for colour, latent in zip(colours, latents):
            points = sorted((r.beta, r.metric(key)) for r in scored if r.latent_size == latent and r.metric(key) is not None)
            if not points:
                continue
            by_beta: dict[float, list[float]] = {}
            for b, v in points:
                by_beta.setdefault(b, []).append(v)
            xs = sorted(by_beta)
            means = [float(np.mean(by_beta[b])) for b in xs]
            ax.plot(xs, means, "-o", color=colour, label=f"latent {latent}", ms=4)
            for b in xs:   # several seeds: every run as a dot behind the mean
                if len(by_beta[b]) > 1:
                    ax.scatter([b] * len(by_beta[b]), by_beta[b], color=colour, s=8, alpha=0.4)
    return finish_scores_figure(fig, axes, betas, "Disentanglement against β (test-phase scores, fixed seed)")


def finish_scores_figure(fig, axes, betas: Sequence[float], title: str) -> bytes:
    """One panel per score against β (β = 0 has no logarithm: a symmetric-log axis keeps it beside
    0.01 and 16), shared by the one-run and the
    mean-over-seeds versions of the figure."""
    positive = [b for b in betas if b > 0]
    for ax, panel in zip(axes[0], SCORES.values()):
        ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
        ax.set_xticks(betas, [fmt_beta(b) for b in betas], fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("β")
        ax.grid(alpha=0.2)
    axes[0][0].set_ylabel("score (1 = disentangled)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return png(fig)


def best_mutual_info(runs: Sequence[Run]) -> tuple[bytes, Run] | None:
    """The best-MIG run's own mutual-information figure (images/mutual_info.png), as drawn by the run."""
    scored = [r for r in runs if r.state == "completed" and r.metric("test/mig") is not None
              and r.image("mutual_info") is not None]
    if not scored:
        return None
    best = max(scored, key=lambda r: r.metric("test/mig"))
    return best.image("mutual_info").read_bytes(), best
