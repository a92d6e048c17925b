"""The figures of an Optuna study, drawn with matplotlib like ``plots`` (PNG bytes): parameter
importance, parallel coordinates, the optimisation history and, for several objectives, the
Pareto front. Each stays readable at 200 trials: only the best trials (or the Pareto front) carry
labels, the rest are thin lines or small points. Over 300 lines: the four figures share one
colour scale, one way of marking pruned and failed trials and one labelling rule.

Why not ``optuna.visualization.matplotlib``: it is experimental, draws pruned and failed trials
not at all (or as completed ones), and labels nothing; the report needs all three.

Over 300 lines because the four figures share their axis helpers and state styles; the
captions are in ``report.STUDY_FIGURES``.
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402
from optuna.trial import FrozenTrial  # noqa: E402

from sweeps.report.plots import STATE_COLOURS, png  # noqa: E402
from sweeps.report.study import Importance, StudyView, importances  # noqa: E402

# Longer than this, a label list would cover the figure: only its ends are labelled.
MAX_LABELS = 12


def _better(view: StudyView, index: int) -> str:
    return "lower" if view.directions[index] == "minimize" else "higher"


def _log_worthy(values: Sequence[float]) -> bool:
    """A positive range over more than two decades reads better on a log axis."""
    values = [v for v in values if v is not None]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100


# --- importance --------------------------------------------------------------------------------
def importance(view: StudyView, found: Sequence[Importance]) -> bytes:
    """One panel per objective: a bar per param and evaluator, most important param on top."""
    objectives = [o for o in view.objectives if any(i.objective == o for i in found)]
    evaluators = list(dict.fromkeys(i.evaluator for i in found))
    colours = dict(zip(evaluators, ("#4c72b0", "#55a868", "#8172b3")))
    height = 0.32 * len(view.params) * len(evaluators) + 1.3
    fig, axes = plt.subplots(len(objectives), 1, figsize=(8, height * len(objectives) + 0.6), squeeze=False)
    for ax, objective in zip(axes[:, 0], objectives):
        here = {i.evaluator: i for i in found if i.objective == objective}
        first = here[evaluators[0]] if evaluators[0] in here else next(iter(here.values()))
        order = sorted(view.params, key=lambda p: first.values.get(p, 0.0))   # most important on top
        width = 0.8 / len(evaluators)
        for k, name in enumerate(evaluators):
            if name not in here:
                continue
            values = [here[name].values.get(p, 0.0) for p in order]
            y = np.arange(len(order)) + (len(evaluators) - 1 - k - (len(evaluators) - 1) / 2) * width
            ax.barh(y, values, height=width, color=colours[name], label=f"{name}: optuna.importance.{here[name].detail}")
            for yy, v in zip(y, values):
                ax.text(v + 0.01, yy, f"{v:.2f}", va="center", fontsize=8)
        ax.set_yticks(range(len(order)), order)
        ax.set_xlim(0, 1.12)
        ax.set_xlabel("importance (sums to 1 per evaluator)")
        ax.set_title(f"{objective}: importance over {len(view.completed)} completed trials", fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        ax.grid(axis="x", alpha=0.2)
    fig.tight_layout()
    return png(fig)


# --- parallel coordinates ------------------------------------------------------------------------
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
def history(view: StudyView) -> bytes | None:
    if not view.trials:
        return None
    reported = any(t.intermediate_values for t in view.trials)
    panels = len(view.objectives) + (1 if reported else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.6), squeeze=False)
    best_numbers = {t.number for t in view.best()}
    for i, (ax, objective) in enumerate(zip(axes[0], view.objectives)):
        done = [(t.number, view.value(t, i)) for t in view.completed]
        minimise = view.directions[i] == "minimize"
        if done:
            xs, ys = zip(*done)
            ax.scatter(xs, ys, s=18, color="#1f77b4", zorder=3, label="completed")
            running = np.minimum.accumulate(ys) if minimise else np.maximum.accumulate(ys)
            ax.step(xs, running, where="post", color="black", lw=1.4, zorder=2,
                    label="best so far" + (" (this objective alone)" if view.multi else ""))
            if not view.multi:
                for t in view.best():
                    ax.annotate(f"#{t.number}", (t.number, t.values[0]), xytext=(4, -10 if minimise else 4),
                                textcoords="offset points", fontsize=7)
        stops = [(t.number, view.stopped_at(t)) for t in view.trials if view.state(t) == "pruned"]
        with_value = [(n, stop[1]) for n, stop in stops if stop is not None]
        if with_value and i == 0 and not view.multi:
            ax.scatter(*zip(*with_value), marker="x", s=30, color=STATE_COLOURS["pruned"], zorder=3,
                       label="pruned: last reported value")
        rug = [(n, "pruned") for n, stop in stops if stop is None or view.multi]
        rug += [(t.number, "failed") for t in view.trials if view.state(t) == "failed"]
        for kind in ("pruned", "failed"):
            numbers = [n for n, k in rug if k == kind]
            if numbers:
                ax.plot(numbers, [0.0] * len(numbers), "|", ms=12, mew=1.6, color=STATE_COLOURS[kind],
                        transform=ax.get_xaxis_transform(), clip_on=False, label=f"{kind} (no value)")
        if _log_worthy([y for _, y in done] + [v for _, v in with_value]):
            ax.set_yscale("log")
        ax.set(xlabel="trial number", ylabel=objective)
        ax.set_title(f"{objective} ({_better(view, i)} is better)", fontsize=10)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.2)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, frameon=False)
    if reported:
        ax = axes[0][-1]
        everything = []
        for t in view.trials:
            if not t.intermediate_values:
                continue
            steps = sorted(t.intermediate_values)
            values = [t.intermediate_values[s] for s in steps]
            everything += values
            kind = view.state(t)
            if kind == "pruned":
                ax.plot(steps, values, "--", color=STATE_COLOURS["pruned"], lw=0.9, alpha=0.8, zorder=2)
                ax.scatter([steps[-1]], [values[-1]], marker="x", s=30, color=STATE_COLOURS["pruned"], zorder=3)
            else:
                top = t.number in best_numbers
                ax.plot(steps, values, color="#1f77b4" if top else "0.6", lw=1.6 if top else 0.8,
                        alpha=1.0 if top else 0.6, zorder=3 if top else 1)
        if _log_worthy(everything):
            ax.set_yscale("log")
        handles = [Line2D([], [], color="0.6", label="completed"), Line2D([], [], color="#1f77b4", lw=1.6,
                                                                         label="best trials")]
        if any(view.state(t) == "pruned" and t.intermediate_values for t in view.trials):
            handles.append(Line2D([], [], color=STATE_COLOURS["pruned"], ls="--", marker="x",
                                  label="pruned: × where it stopped"))
        ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
        ax.set(xlabel="step", ylabel="reported value")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title("Values reported while the trials ran", fontsize=10)
        ax.grid(alpha=0.2)
    fig.suptitle(f"Optimisation history of study {view.name}")
    fig.tight_layout()
    return png(fig)


# --- Pareto front --------------------------------------------------------------------------------
def rate_distortion_order(objectives: Sequence[str]) -> tuple[int, int]:
    """(x, y) objective indices: rate on x and distortion on y when those are the objectives, as on
    the report's rate–distortion plane; else the first two in order."""
    names = [o.rsplit("/", 1)[-1] for o in objectives[:2]]
    return (1, 0) if names == ["distortion", "rate"] else (0, 1)


def pareto(view: StudyView) -> bytes | None:
    if not view.multi or not view.completed:
        return None
    xi, yi = rate_distortion_order(view.objectives)
    done = view.completed
    front = [t for t in view.best()]
    fig, ax = plt.subplots(figsize=(7, 5.5))
    xs = [t.values[xi] for t in done]
    ys = [t.values[yi] for t in done]
    dots = ax.scatter(xs, ys, c=[t.number for t in done], cmap="viridis", s=30, edgecolors="black", lw=0.3, zorder=3)
    fig.colorbar(dots, ax=ax, label="trial number")
    front.sort(key=lambda t: (t.values[xi], t.values[yi]))
    fx, fy = [t.values[xi] for t in front], [t.values[yi] for t in front]
    both_min = view.directions[xi] == view.directions[yi] == "minimize"
    ax.step(fx, fy, where="post", color="crimson", lw=1.4, alpha=0.7, zorder=2, label="Pareto front") if both_min \
        else ax.plot(fx, fy, color="crimson", lw=1.4, alpha=0.7, zorder=2, label="Pareto front")
    ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="crimson", lw=1.4, zorder=4)
    labelled = front if len(front) <= MAX_LABELS else [front[0], front[-1]]
    for k, t in enumerate(labelled):
        ax.annotate(f"#{t.number}", (t.values[xi], t.values[yi]), xytext=(7, 5 if k % 2 == 0 else -11),
                    textcoords="offset points", fontsize=8)
    others = {k: sum(view.state(t) == k for t in view.trials) for k in ("pruned", "failed", "running")}
    text = ", ".join(f"{n} {k}" for k, n in others.items() if n)
    if text:
        ax.text(0.99, 0.99, f"not on the plane: {text}", transform=ax.transAxes, ha="right", va="top", fontsize=7,
                color=STATE_COLOURS["failed"], bbox=dict(facecolor="white", edgecolor=STATE_COLOURS["failed"], alpha=0.85))
    for axis, index in (("x", xi), ("y", yi)):
        if _log_worthy([t.values[index] for t in done]):
            getattr(ax, f"set_{axis}scale")("log")
    ax.set(xlabel=f"{view.objectives[xi]} ({_better(view, xi)} is better)",
           ylabel=f"{view.objectives[yi]} ({_better(view, yi)} is better)")
    extra = f"; {len(view.objectives) - 2} more objective(s) not drawn" if len(view.objectives) > 2 else ""
    ax.set_title(f"Pareto front of study {view.name}: {len(front)} of {len(done)} completed trials{extra}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.2)
    fig.tight_layout()
    return png(fig)


def study_figures(view: StudyView) -> tuple[dict[str, bytes], list[Importance], list[str]]:
    """Every study figure that applies, by file stem; the importances; notes on what was left out."""
    found, notes = importances(view)
    figures = {"study_history": history(view), "study_importance": importance(view, found) if found else None,
               "study_parallel": parallel_coordinates(view), "study_pareto": pareto(view)}
    return {k: v for k, v in figures.items() if v is not None}, found, notes
