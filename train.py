"""Train one β-VAE, or sweep many:  python train.py -m beta=0,0.01,1 latent_size=2,10"""

import hydra
from omegaconf import DictConfig

from vae.cli import run_cli, run_task
from vae.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    return run_task(train, cfg)


if __name__ == "__main__":
    run_cli(main)
