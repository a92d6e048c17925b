"""The search space: Hydra's sweep syntax (as the upstream Optuna sweeper reads it) to Optuna
distributions, and a sampled trial back to job overrides.

    key: choice(a, b, c)  or  a,b,c        categorical
    key: range(1, 10)  / range(1, 10, 2)   integers from 1 to 10 with a step (as upstream: 10 included
                                           when the step lands on it); float bounds or step: floats
    key: interval(0.1, 1)                  uniform float;  int(interval(1, 8)): uniform integer
    key: tag(log, interval(1e-3, 10))      log-uniform (positive bounds)
    key: 5                                 fixed: passed to every job, not searched

``zero_below`` (ours): ``{beta: 2e-3}`` sends 0 to the job whenever the sampled value is below
2e-3, so a log-scale search over β can still try β = 0 (the plain autoencoder). Optuna keeps the
value it sampled (the model stays continuous); the job and ``overrides`` user attr see 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from protocol.errors import ConfigError


@dataclass
class SearchSpace:
    """Searched keys with their distributions, fixed keys with their values, in the order given."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    zero_below: dict[str, float] = field(default_factory=dict)

    def grid(self) -> Optional[list[dict[str, Any]]]:
        """Every combination, in order, if the space is made of choices only; else None.

        A space of finite choices is walked as a grid (each point once): sampling it at random
        would re-run identical configurations. No searched key at all is a grid of one point.
        """
        if not all(isinstance(d, CategoricalDistribution) for d in self.distributions.values()):
            return None
        names = list(self.distributions)
        choices = [self.distributions[n].choices for n in names]
        return [dict(zip(names, combo)) for combo in itertools.product(*choices)]

    def job_value(self, name: str, value: Any) -> Any:
        floor = self.zero_below.get(name)
        if floor is not None and isinstance(value, (int, float)) and value < floor:
            return 0
        return value

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The job's overrides: searched and fixed keys in the order the user wrote them."""
        out = []
        for name in self.order:
            if name in self.fixed:
                out.append(f"{name}={self.fixed[name]}")
            else:
                out.append(f"{name}={format_value(self.job_value(name, params[name]))}")
        return out


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _bad(key: str, text: str, why: str) -> ConfigError:
    return ConfigError(f"hydra.sweeper.params: {key}={text} {why}")


def distribution_from_override(override: Override) -> BaseDistribution | str:
    """An Optuna distribution for a sweep override, or the value string for a fixed one."""
    key = override.get_key_element()
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    text = override.input_line.split("=", 1)[-1] if override.input_line else "?"
    value = override.value()
    if override.is_choice_sweep() or (isinstance(value, RangeSweep) and value.shuffle):
        assert isinstance(value, (ChoiceSweep, RangeSweep))
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        if not choices:
            raise _bad(key, text, "has no choices; give at least one")
        for choice in choices:
            if not isinstance(choice, (str, int, float, bool, type(None))):
                raise _bad(key, text, f"has a choice of type {type(choice).__name__}; "
                                      "choices must be str, int, float, bool or null")
        return CategoricalDistribution(choices)
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if step is None or step <= 0 or stop is None or start is None or stop < start:
            raise _bad(key, text, "is empty or inverted; write range(low, high[, step>0]) with low ≤ high")
        if any(isinstance(v, float) for v in (start, stop, step)):
            return FloatDistribution(float(start), float(stop), step=float(step))
        return IntDistribution(int(start), int(stop), step=int(step))
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if low is None or high is None or not low < high:
            raise _bad(key, text, f"is empty or inverted ({low} ≥ {high}); write interval(low, high) with low < high")
        log = "log" in value.tags
        if log and low <= 0:
            raise _bad(key, text, "is a log interval with a bound ≤ 0; use positive bounds "
                                  "(to include 0, add it with hydra.sweeper.zero_below)")
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise _bad(key, text, "has an infinite bound")
        return FloatDistribution(float(low), float(high), log=log)
    raise _bad(key, text, "is a sweep the Optuna sweeper cannot search")


def parse_search_space(params: Optional[Mapping[str, Any]], arguments: Sequence[str],
                       zero_below: Optional[Mapping[str, Any]] = None) -> SearchSpace:
    """``hydra.sweeper.params`` first, then command-line arguments (which win on the same key)."""
    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(lines)
    except Exception as exc:  # noqa: BLE001 - Hydra's parse errors, reworded as one line
        first = str(exc).splitlines()
        raise ConfigError(f"cannot parse the search space: {' '.join(first[:2])}") from None
    space = SearchSpace()
    for override in parsed:
        name = override.get_key_element()
        result = distribution_from_override(override)
        space.distributions.pop(name, None)
        space.fixed.pop(name, None)
        if name in space.order:
            space.order.remove(name)
        space.order.append(name)
        if isinstance(result, BaseDistribution):
            space.distributions[name] = result
        else:
            space.fixed[name] = result
    for name, floor in (zero_below or {}).items():
        dist = space.distributions.get(name)
        if not isinstance(dist, (FloatDistribution, IntDistribution)):
            raise ConfigError(f"hydra.sweeper.zero_below.{name}: {name} is not searched over an interval; "
                              "zero_below applies to interval(...) or range(...) params")
        if not dist.low < float(floor) <= dist.high:
            raise ConfigError(f"hydra.sweeper.zero_below.{name}={floor} must lie inside {name}'s "
                              f"range ({dist.low}, {dist.high}]")
        space.zero_below[name] = float(floor)
    return space
