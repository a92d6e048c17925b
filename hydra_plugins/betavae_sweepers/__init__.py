"""This project's Hydra sweepers. Hydra finds them because they live in the hydra_plugins namespace."""
