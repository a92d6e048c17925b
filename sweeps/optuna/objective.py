"""A job's result as Optuna values: the keys ``hydra.sweeper.objective`` names, one per direction,
finite; the upstream habit of returning the value itself still works."""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping, Optional

from omegaconf import ListConfig


def is_numeric(value: Any) -> bool:
    items = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    return bool(items) and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items)


def objective_values(value: Any, keys: Optional[list[str]], n_directions: int) -> list[float]:
    """The objective value(s) of a job's result: ``keys`` of a dict, or the value itself (upstream);
    ValueError says why a result cannot be told to Optuna."""
    if keys is not None:
        if not isinstance(value, Mapping):
            raise ValueError(f"hydra.sweeper.objective={keys} needs the task to return a dict; it returned {value!r}")
        missing = [k for k in keys if k not in value]
        if missing:
            raise ValueError(f"the task's result has no {missing}; it has {sorted(value)[:12]}")
        raw = [value[k] for k in keys]
    else:
        raw = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    try:
        values = [float(v) for v in raw]
    except (TypeError, ValueError):
        raise ValueError(f"the objective must be numbers; got {raw!r}") from None
    if len(values) != n_directions:
        raise ValueError(f"the task returned {len(values)} objective value(s) for "
                         f"{n_directions} direction(s)")
    bad = [f"{k}={v}" for k, v in zip(keys or ["objective"] * len(values), values) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"objective is not finite ({', '.join(bad)}): the run diverged")
    return values
