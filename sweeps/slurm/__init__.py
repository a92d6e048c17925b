"""``hydra/launcher=slurm``: sweeps on a Slurm cluster through hydra-submitit-launcher, with checked
resources, dead jobs recorded as failed runs, and requeued jobs resumed from their checkpoint."""
