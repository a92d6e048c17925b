"""A launcher's worker processes, started and prepared while the sweep's configs are checked.

- ``launcher_workers``: creates the joblib (or fused) launcher's workers early and reuses them.
The job's side (what a worker does before its first job) is named in the sweeper's config.
"""
