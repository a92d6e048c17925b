"""A sweep with replicates as tables and sentences: one row per configuration (mean and 95%
interval of each metric over its seeds), the same as CSV, and plain sentences comparing
neighbouring configurations ("beta=4 vs beta=16: MIG difference 0.17, 95% CI [0.05, 0.29] ...")."""

from __future__ import annotations

import csv
import io
import itertools
import json
from typing import Sequence

from sweeps.report.replicates import LEVEL, Configuration, Interval, configurations, difference
from sweeps.report.runs import Sweep, metric_columns
from sweeps.report.table import fmt, table_columns

# Not a configuration's params: what differs between its replicates.
PER_SEED = ("seed", "replicate_of")


def cell(interval: Interval) -> str:
    if interval.n == 0:
        return ""
    if interval.n == 1:
        return fmt(interval.mean)
    return f"{fmt(interval.mean)} [{fmt(interval.low)}, {fmt(interval.high)}]"


def param_columns(sweep: Sweep) -> list[str]:
    return [p for p in table_columns(sweep) if p not in PER_SEED]


def configuration_rows(sweep: Sweep) -> tuple[list[str], list[list[str]], list[str]]:
    """(headers, rows, row classes): one row per configuration, each metric as mean [low, high]."""
    params, metrics = param_columns(sweep), metric_columns(sweep.runs)
    headers = ["configuration", "seeds", *("β" if p == "beta" else p for p in params), *metrics.values()]
    rows, classes = [], []
    for c in configurations(sweep.runs):
        seeds = f"{len(c.done)}" + (f" of {len(c.runs)}" if len(c.done) != len(c.runs) else "")
        rows.append([c.label, seeds, *(fmt(c.params.get(p)) for p in params),
                     *(cell(c.interval(m)) for m in metrics)])
        classes.append("completed" if c.done else c.runs[0].state)
    return headers, rows, classes


def scalar_metrics(sweep: Sweep) -> list[str]:
    return list(dict.fromkeys(k for r in sweep.runs for k, v in r.metrics.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool)))


def configurations_csv(sweep: Sweep) -> str:
    """Every scalar metric of every configuration: mean, low, high, n (the interval: LEVEL, t)."""
    params = [p for p in dict.fromkeys(k for r in sweep.runs for k in r.params) if p != "seed"]
    metrics = scalar_metrics(sweep)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["configuration", "seeds", *params,
                     *(f"{m} {part}" for m in metrics for part in ("mean", "low", "high", "n"))])
    for c in configurations(sweep.runs):
        values = [getattr(c.interval(m), part) for m in metrics for part in ("mean", "low", "high", "n")]
        writer.writerow([c.label, json.dumps(sorted(r.params["seed"] for r in c.done if r.params.get("seed") is not None)),
                         *(c.params.get(p) for p in params), *values])
    return buffer.getvalue()


def neighbours(configs: Sequence[Configuration], params: Sequence[str]) -> list[tuple[Configuration, Configuration]]:
    """Pairs of configurations that differ in one param only, at neighbouring values of it
    (β=1 vs β=4, β=4 vs β=16; not β=1 vs β=16): the comparisons a reader makes first."""
    pairs = []
    for name in params:
        others = [p for p in params if p != name]
        key = lambda c: json.dumps([c.params.get(p) for p in others], default=str)   # noqa: E731
        for _, same in itertools.groupby(sorted(configs, key=key), key=key):
            ordered = sorted((c for c in same if c.params.get(name) is not None), key=lambda c: c.params[name])
            pairs += [(a, b) for a, b in zip(ordered, ordered[1:]) if a.params[name] != b.params[name]]
    return pairs


def comparison(a: Configuration, b: Configuration, metric: str, name: str) -> str | None:
    """One sentence on b − a for ``metric``; None when either has no value."""
    d = difference(b.by_seed(metric), a.by_seed(metric))
    if d.interval.n == 0 or d.interval.mean != d.interval.mean:
        return None
    level = f"{LEVEL:.0%}"
    text = f"{a.label} vs {b.label}: {name} difference {d.interval.mean:+.3g}"
    if d.interval.n < 2:
        return text + " (one seed on a side: no interval)"
    how = f"paired over {d.seeds} shared seeds" if d.paired else "Welch, seeds not shared"
    verdict = ("0 is outside the interval: more than seed noise" if d.interval.low > 0 or d.interval.high < 0
               else "the interval holds 0: not told apart from seed noise")
    return f"{text}, {level} CI [{d.interval.low:+.3g}, {d.interval.high:+.3g}] ({how}); {verdict}"


def comparisons(sweep: Sweep, metrics: dict[str, str]) -> list[str]:
    """Sentences for neighbouring configurations, for each of ``metrics`` ({key: name}) some run has."""
    configs = [c for c in configurations(sweep.runs) if c.done]
    present = {k: v for k, v in metrics.items() if any(r.metric(k) is not None for r in sweep.runs)}
    sentences = []
    for a, b in neighbours(configs, param_columns(sweep)):
        sentences += [s for key, name in present.items() if (s := comparison(a, b, key, name))]
    return sentences
