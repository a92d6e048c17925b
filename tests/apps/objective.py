"""A tiny Hydra app for the sweeper's tests: a quadratic objective in x (float) and y (int),
with switches for the cases a sweep must survive. Returns a dict, like vae.train.train.

Run through vae.cli.run_cli, as train.py is. Each job writes job.json (pid, start, end, params) into its output dir, so tests can see which
jobs overlapped and which process ran them.
"""

import json
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="objective")
def main(cfg: DictConfig) -> dict:
    start = time.time()
    slow = cfg.slow_job is not None and HydraConfig.get().job.num == cfg.slow_job
    time.sleep(cfg.sleep * (6 if slow else 1))
    if cfg.crash_on is not None and cfg.y == cfg.crash_on:
        raise RuntimeError(f"crash_on: y={cfg.y}")
    if cfg.prune_on is not None and cfg.y == cfg.prune_on:
        import optuna

        raise optuna.TrialPruned(f"prune_on: y={cfg.y}")
    if cfg.crash_on_seed is not None and cfg.seed == cfg.crash_on_seed:
        raise RuntimeError(f"crash_on_seed: seed={cfg.seed}")
    loss = (cfg.x - 1.0) ** 2 + cfg.y + cfg.seed_shift * cfg.seed
    if cfg.nan_on is not None and cfg.y == cfg.nan_on:
        loss = float("nan")
    out = Path(HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "job.json").write_text(json.dumps({"pid": os.getpid(), "start": start, "end": time.time(),
                                              "x": cfg.x, "y": cfg.y}))
    return {"loss": loss, "x_abs": abs(cfg.x), "y": cfg.y}


if __name__ == "__main__":
    from vae.cli import run_cli

    run_cli(main)      # as train.py: a user-fixable error is one line on stderr, exit code 2
