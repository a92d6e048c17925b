"""The Optuna sweeper's logic (``hydra/sweeper=optuna``; see docs/sweeps.md).

- ``optuna_sweeper``: the sweep loop: one-job launches per free slot, the study-wide budget,
  failures, dead workers, ``optimization_results.yaml``.
- ``search_space``: Hydra's sweep syntax to Optuna distributions and back to job overrides.
- ``storage``: the storage setting checked and opened, and the lock workers share.
- ``pruning``: the callback a trial's job runs to report to its trial and be pruned.
- ``workers``, ``warm_up``: the launcher's worker processes, started and prepared early.

Hydra discovers the sweeper through the thin ``hydra_plugins/betavae_sweepers/optuna_sweeper.py``.
"""
