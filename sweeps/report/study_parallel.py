"""Parallel coordinates of an Optuna study: one line per trial across the searched params and the
objective(s); the best trials (or the Pareto front) thick and numbered, pruned ones dashed, failed
ones dotted."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.colors
import matplotlib.patheffects
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from sweeps.report.drawing import STATE_COLOURS, plt, png
from sweeps.report.study import StudyView
from sweeps.report.study_axes import MAX_LABELS, better as _better, log_worthy as _log_worthy


class _Axis:
    """One vertical axis: maps a param's or objective's values to [0, 1] and back for its ticks."""

    def __init__(self, name: str, values: Sequence, distribution=None) -> None:
        self.name, self.choices = name, None
        if isinstance(distribution, CategoricalDistribution):
            self.choices = [str(c) for c in distribution.choices]
            return
        finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if isinstance(distribution, (FloatDistribution, IntDistribution)):
            self.log = distribution.log
            low, high = distribution.low, distribution.high
        else:
            self.log = _log_worthy(finite)
            low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
        self.low, self.high = (math.log10(low), math.log10(high)) if self.log else (low, high)
        if self.high == self.low:
            self.low, self.high = self.low - 0.5, self.high + 0.5

    def __call__(self, value) -> float:
        if value is None:
            return np.nan
        if self.choices is not None:
            index = self.choices.index(str(value)) if str(value) in self.choices else 0
            # inset from the ends, so the lines of a category don't pile into the axis' corner
            return (index + 0.5) / len(self.choices)
        value = float(value)
        if self.log:
            value = math.log10(value) if value > 0 else self.low
        return (value - self.low) / (self.high - self.low)

    def ticks(self) -> list[tuple[float, str]]:
        if self.choices is not None:
            return [(self(c), c) for c in self.choices]
        out = []
        for f in np.linspace(0, 1, 5):
            raw = self.low + f * (self.high - self.low)
            out.append((f, f"{10 ** raw if self.log else raw:.3g}"))
        return out


def parallel_coordinates(view: StudyView) -> bytes | None:
    if not view.params:
        return None
    trials = [t for t in view.trials if t.params]
    state = {t.number: view.state(t) for t in trials}
    single = not view.multi
    pruned_stop = {t.number: view.stopped_at(t) for t in trials if state[t.number] == "pruned"}
    axes_ = [_Axis(p, [t.params.get(p) for t in trials], view.distributions.get(p)) for p in view.params]
    for i, objective in enumerate(view.objectives):
        values = [view.value(t, i) for t in trials]
        if single:   # pruned trials end on this axis at their last reported value: make room for it
            values += [stop[1] for stop in pruned_stop.values() if stop]
        axes_.append(_Axis(objective, values))
    n_params = len(view.params)

    def points(trial: FrozenTrial) -> list[tuple[float, float]]:
        ys = [axis(trial.params.get(axis.name)) for axis in axes_[:n_params]]
        if state[trial.number] == "completed":
            ys += [axes_[n_params + i](view.value(trial, i)) for i in range(len(view.objectives))]
        elif state[trial.number] == "pruned" and single and pruned_stop.get(trial.number):
            ys.append(axes_[n_params](pruned_stop[trial.number][1]))
        return [(x, y) for x, y in enumerate(ys) if not np.isnan(y)]

    fig, ax = plt.subplots(figsize=(max(7.5, 1.9 * len(axes_) + 2), 5.2))
    many = len(trials) > 60
    # Failed and pruned first (underneath), then completed from worst to best, best on top.
    for kind, style in (("failed", ":"), ("pruned", "--"), ("running", ":"), ("missing", ":")):
        lines = [points(t) for t in trials if state[t.number] == kind]
        if lines:
            ax.add_collection(LineCollection(lines, colors=STATE_COLOURS[kind], linestyles=style,
                                             linewidths=1.1, alpha=0.55 if many else 0.85, zorder=1))
            ends = [line[-1] for line in lines if line]
            # where the trial stopped: above the axes' tick labels
            ax.scatter(*zip(*ends), marker="x", color=STATE_COLOURS[kind], s=28, lw=1.4, zorder=7)
    done = [t for t in view.completed if t.params]
    best = [t for t in view.best() if t.params]
    cmap = plt.get_cmap("viridis")
    norm = None
    if done:
        first = [t.values[0] for t in done]
        minimise = view.directions[0] == "minimize"
        low, high = min(first), max(first)
        # One diverged trial would paint all the others one colour: the colour scale spans the best
        # 90 % of the trials, the worst take its end colour (the colour bar's arrow).
        clipped = len(first) >= 5
        if clipped:
            cut = float(np.quantile(first, 0.9 if minimise else 0.1))
            low, high = (low, cut) if minimise else (cut, high)
        norm = (matplotlib.colors.LogNorm if _log_worthy(first) else matplotlib.colors.Normalize)(low, high, clip=True)
        # colour: bright = better, whatever the direction
        shade = (lambda v: cmap(1 - norm(v))) if minimise else (lambda v: cmap(norm(v)))
        ordered = sorted(done, key=lambda t: t.values[0], reverse=view.directions[0] == "minimize")
        rest = [t for t in ordered if t not in best]
        ax.add_collection(LineCollection([points(t) for t in rest], colors=[shade(t.values[0]) for t in rest],
                                         linewidths=0.9, alpha=0.55 if many else 0.85, zorder=3))
        for t in sorted(best, key=lambda t: t.values[0], reverse=view.directions[0] == "minimize"):
            xy = points(t)
            ax.plot(*zip(*xy), color=shade(t.values[0]), lw=2.4, zorder=4,
                    path_effects=[matplotlib.patheffects.withStroke(linewidth=3.6, foreground="black")])
        labels = sorted(((points(t)[-1][1], f"#{t.number}") for t in best[:MAX_LABELS]))
        spread = _spread([y for y, _ in labels], 0.045)
        for (y, text), placed in zip(labels, spread):
            ax.annotate(text, (len(axes_) - 1, y), xytext=(len(axes_) - 1 + 0.12, placed), fontsize=8,
                        va="center", arrowprops=dict(arrowstyle="-", color="0.5", lw=0.5))
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap if view.directions[0] == "maximize"
                                                  else cmap.reversed()), ax=ax, pad=0.02, fraction=0.04,
                     extend=("max" if minimise else "min") if clipped else "neither",
                     label=f"{view.objectives[0]} ({_better(view, 0)} is better)")
    for x, axis in enumerate(axes_):
        ax.axvline(x, color="0.3", lw=0.8, zorder=0)
        for y, text in axis.ticks():
            ax.text(x - 0.03, y, text, ha="right", va="center", fontsize=7, color="0.2", zorder=6,
                    bbox=dict(facecolor="white", edgecolor="none", alpha=0.75, pad=0.5))
    ax.set_xticks(range(len(axes_)), [a.name + (" (log)" if getattr(a, "log", False) else "") for a in axes_],
                  fontsize=9)
    for tick in ax.get_xticklabels()[n_params:]:
        tick.set_fontweight("bold")
    ax.set_xlim(-0.45, len(axes_) - 0.55 + 0.45)
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    counts = {k: sum(s == k for s in state.values()) for k in ("completed", "pruned", "failed")}
    handles = [Line2D([], [], color=cmap(0.85), lw=2.4, label=f"completed ({counts['completed']}); thick: "
                      + ("Pareto front" if view.multi else f"best {len(best)}"))]
    if counts["pruned"]:
        handles.append(Line2D([], [], color=STATE_COLOURS["pruned"], ls="--", marker="x", label=f"pruned "
                              f"({counts['pruned']})" + (": ends at its last reported value" if single else "")))
    if counts["failed"]:
        handles.append(Line2D([], [], color=STATE_COLOURS["failed"], ls=":", marker="x",
                              label=f"failed ({counts['failed']})"))
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=3, frameon=False)
    ax.set_title(f"Parallel coordinates of study {view.name} ({len(trials)} trials)", fontsize=11)
    fig.tight_layout()
    return png(fig)


def _spread(ys: Sequence[float], gap: float) -> list[float]:
    """Label heights near ``ys`` (sorted), at least ``gap`` apart, so labels don't print over each other."""
    placed: list[float] = []
    for y in ys:
        placed.append(max(y, placed[-1] + gap) if placed else y)
    overflow = placed[-1] - 1.02 if placed else 0
    return [p - overflow for p in placed] if overflow > 0 else placed


# --- optimisation history ------------------------------------------------------------------------
