"""What a study's figures share: how many trials get a label, which way an objective is better,
and when an axis is worth a log scale."""

from __future__ import annotations

from typing import Sequence

from sweeps.report.study import StudyView

MAX_LABELS = 12   # trials labelled in a figure; the rest stay unlabelled lines and points


def better(view: StudyView, index: int) -> str:
    return "lower" if view.directions[index] == "minimize" else "higher"


def log_worthy(values: Sequence[float]) -> bool:
    """A positive range over more than two decades reads better on a log axis."""
    values = [v for v in values if v is not None]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100

