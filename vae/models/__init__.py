"""Models: LightningModules a config's ``model._target_`` names, and the networks they are built from."""
