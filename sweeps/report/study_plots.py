"""The figures of an Optuna study, drawn with matplotlib like ``plots`` (PNG bytes): parameter
importance, parallel coordinates, the optimisation history and, for several objectives, the
Pareto front. Each stays readable at 200 trials: only the best trials (or the Pareto front) carry
labels, the rest are thin lines or small points. The four share one colour scale, one way of
marking pruned and failed trials and one labelling rule (study_axes.py).

Why not ``optuna.visualization.matplotlib``: it is experimental, draws pruned and failed trials
not at all (or as completed ones), and labels nothing; the report needs all three.

The captions are in ``report.STUDY_FIGURES``.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from sweeps.report.drawing import STATE_COLOURS, png  # noqa: E402
from sweeps.report.study_axes import MAX_LABELS, better as _better, log_worthy as _log_worthy  # noqa: E402
from sweeps.report.study_parallel import parallel_coordinates  # noqa: E402
from sweeps.report.study import Importance, StudyView, importances  # noqa: E402

# Longer than this, a label list would cover the figure: only its ends are labelled.
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
