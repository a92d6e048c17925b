"""Upstream's kind of example app: returns a float for the sweeper to minimise."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="upstream")
def sphere(cfg: DictConfig) -> float:
    return float(cfg.x) ** 2 + float(cfg.y) ** 2


if __name__ == "__main__":
    sphere()
