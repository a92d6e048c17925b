"""What the released hydra-optuna-sweeper accepted and Optuna 5 no longer has: its deprecated
``search_space:`` dicts and ``sampler=motpe``, kept so that an upstream config runs unchanged."""

from __future__ import annotations

from typing import Any, Mapping

import optuna

from sweeps.optuna.search_space import format_value
from protocol.errors import ConfigError


def search_space_from_config(search_space: Mapping[str, Any]) -> dict[str, str]:
    """The upstream plugin's deprecated ``search_space:`` dicts, as sweep strings."""
    out = {}
    for name, spec in search_space.items():
        kind = str(spec.get("type", "")).split(".")[-1]
        if kind == "categorical":
            out[name] = "choice(" + ",".join(format_value(c) for c in spec["choices"]) + ")"
        elif kind in ("int", "float"):
            low, high = spec["low"], spec["high"]
            low, high = (int(low), int(high)) if kind == "int" else (float(low), float(high))
            if spec.get("step") is not None and not spec.get("log"):
                out[name] = f"range({low},{high},{spec['step']})"
            else:
                inner = f"interval({low},{high})" if kind == "float" else f"int(interval({low},{high}))"
                out[name] = f"tag(log,{inner})" if spec.get("log") else inner
        else:
            raise ConfigError(f"hydra.sweeper.search_space.{name}.type={kind} is not one of: int, float, categorical")
    return out


def motpe_sampler(n_ehvi_candidates: int = 24, **kwargs: Any) -> optuna.samplers.TPESampler:
    """Upstream's ``sampler=motpe`` on Optuna 5, where TPESampler handles several objectives."""
    return optuna.samplers.TPESampler(n_ei_candidates=n_ehvi_candidates, **kwargs)
