"""A launcher's worker processes, started and prepared while the sweep's configs are checked.

- ``launcher_workers``: creates the joblib (or fused) launcher's workers early and reuses them.
- ``warm_up``: what a worker does before its first job (imports, W&B's service, the data).
"""
