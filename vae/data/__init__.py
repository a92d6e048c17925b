"""Datasets as LightningDataModules, one module each (``conf/data/<name>.yaml`` names its class)."""
