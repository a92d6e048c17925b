"""``seeds=N`` in a grid sweep: every configuration with N seeds (seed, seed+1, ..., seed+N-1).

Done by rewriting the overrides into Hydra's own seed sweep (``seed=0,1,2``), the last override so
that a configuration's replicates are neighbouring jobs (the fused launcher stacks them). The key
names come from the sweeper's config; nothing here knows the application.
"""

from __future__ import annotations

from typing import Any, List, Optional

from omegaconf import OmegaConf

from protocol.errors import ConfigError


def expand_replicates(arguments: List[str], parsed: list, config: Any, replicates_key: Optional[str],
                      seed_key: str) -> List[str]:
    """``arguments`` (and ``parsed``, Hydra's parse of them) with ``replicates_key=N`` > 1 turned
    into a sweep of ``seed_key``; unchanged when there are no replicates."""
    if not replicates_key:
        return list(arguments)
    count = OmegaConf.select(config, replicates_key, default=None) if config is not None else None
    base = OmegaConf.select(config, seed_key, default=None) if config is not None else None
    seed_sweep = None
    kept = []
    for argument, override in zip(arguments, parsed):
        key = override.get_key_element()
        if key == replicates_key:
            if override.is_sweep_override():
                raise ConfigError(f"{argument}: {replicates_key} takes one number of seeds per configuration, "
                                  f"e.g. {replicates_key}=3")
            count = override.value()
        elif key == seed_key:
            if override.is_sweep_override():
                seed_sweep = argument
            else:
                base = override.value()
        if key != seed_key:
            kept.append(argument)
    if count in (None, 1):
        return list(arguments)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"{replicates_key}={count} is invalid; it must be an integer ≥ 1, e.g. {replicates_key}=3")
    if seed_sweep is not None:
        raise ConfigError(f"{replicates_key}={count} and {seed_sweep} both set the seeds; give one: "
                          f"{replicates_key}={count} runs {seed_key}=base..base+{count - 1}")
    base = int(base or 0)
    return kept + [f"{seed_key}=" + ",".join(str(base + i) for i in range(count))]
