"""Grid sweeps: Hydra's basic sweeper, checking every job's config before anything is written."""
