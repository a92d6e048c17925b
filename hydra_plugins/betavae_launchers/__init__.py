"""This project's Hydra launchers. Hydra finds them because they live in the hydra_plugins namespace."""
