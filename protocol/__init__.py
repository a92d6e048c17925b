"""The contract between a run and whoever reads or steers it: the sweeper and the report import
this module, never the library's internals, and the library never imports them.

Two directions:

- A run leaves ``metrics.json`` in its folder (``METRICS_FILE``): ``run_name``, ``params``,
  ``status`` (one of ``STATUSES``), ``metrics`` (flat ``val/*``, ``test/*`` keys) or ``error``.
- A sweeper that wants a job to report to it puts the job's identity under a config node
  (``hydra.sweeper.trial_key``, ``TRIAL_KEY`` in this project's presets) with the fields of
  ``TRIAL_FIELDS``, and a ``_target_`` naming the Lightning callback that reports; the job
  instantiates that node as one more callback (``vae/train.py``). Stopping a run on purpose
  (pruning) raises the exception ``is_pruned`` recognises. The callback also has a plain method
  ``report(step, value)`` (value: the node's ``monitor`` metric at that training step) that raises
  that exception when the run is to stop: a job trained without a Lightning Trainer (a member of
  a fused group, ``hydra/launcher=fused``) calls it at each validation.

Optuna user attrs the sweeper writes on trials (``ATTR_*``) are read by the report too.
"""

from __future__ import annotations

import sys

METRICS_FILE = "metrics.json"

COMPLETED, FAILED, PRUNED, RUNNING = "completed", "failed", "pruned", "running"
STATUSES = (COMPLETED, FAILED, PRUNED, RUNNING)

# params[REPLICATE_OF]: the same id for runs whose configs differ in the seed only (replicates);
# the report pools them into one configuration's mean and interval.
REPLICATE_OF = "replicate_of"

TRIAL_KEY = "optuna"
TRIAL_FIELDS = ("storage", "study_name", "trial_id", "trial_number", "monitor",
                "seed_index", "seeds")   # the last two: a trial over several seeds (sweeps/optuna/seeds.py)

ATTR_FAIL_REASON = "fail_reason"      # why a trial failed, one line
ATTR_INTERRUPTED = "interrupted"      # its worker died or was stopped: the budget runs it again
ATTR_SURPLUS = "surplus"              # started after the budget was reached by other workers
ATTR_NO_OBJECTIVE = "no_objective"    # the job ran but returned nothing to optimise
ATTR_OUTPUT_DIR = "output_dir"        # the trial's job folder
ATTR_WORKER = "worker"                # {"host", "pid"} of the process running it


def is_pruned(exc: BaseException) -> bool:
    """A run stopped by its sweeper's pruner (``optuna.TrialPruned``), not a failure. Checked
    without importing Optuna: a run that never imported it cannot have been pruned by it."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(exc, optuna.TrialPruned)
