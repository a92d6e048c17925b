"""Train one β-VAE, or sweep many:  python train.py -m beta=0,0.01,1 latent_size=2,10"""

import hydra
from omegaconf import DictConfig

from vae.cli import run_cli, run_task


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> dict:
    # Imported here, not at the top: when a launcher runs jobs in worker processes, the parent
    # never trains and need not spend ~6 s importing Lightning and torchvision.
    from vae.train import train

    return run_task(train, cfg)


if __name__ == "__main__":
    run_cli(main)
