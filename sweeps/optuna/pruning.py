"""Pruning from inside a training job: report the validation loss to the Optuna trial the sweeper
started for this job, and stop when the study's pruner says so.

Why our own callback rather than ``optuna_integration.PyTorchLightningPruningCallback``: that
one needs the ``optuna.Trial`` object passed in, i.e. the objective running in the same process
as ``study.optimize``. Here the sweeper and the job may be different processes (joblib,
submitit, SLURM), so the job reopens the trial from the storage by id (``cfg.optuna``, written by
``hydra.sweeper.trial_key``). It also avoids a dependency that pins its own Optuna range.

The pruner is not stored in an Optuna study, so the sweeper stores its config as the study's
user attr ``pruner`` and the job instantiates the same pruner here.
"""

from __future__ import annotations

import logging
import math

import lightning as L

log = logging.getLogger(__name__)


class OptunaPruning(L.Callback):
    """At every validation end: ``trial.report(monitor, step=global_step)``; if the pruner says
    so, raise ``optuna.TrialPruned`` (train() records status "pruned", the sweeper PRUNED)."""

    def __init__(self, storage: str, study_name: str, trial_id: int, trial_number: int | None = None,
                 monitor: str = "val/neg_elbo", seed_index: int = 0, seeds: int = 1):
        import optuna
        from hydra.utils import instantiate

        from sweeps.optuna.storage import load_storage_from_url

        self.monitor = monitor
        self.seed_index, self.seeds = seed_index, seeds   # this job's place among its trial's seeded jobs
        study = optuna.load_study(study_name=study_name, storage=load_storage_from_url(storage))
        pruner_cfg = study.user_attrs.get("pruner")
        if pruner_cfg:
            study.pruner = instantiate(pruner_cfg)
        self.study = study
        self.trial = optuna.trial.Trial(study, trial_id)
        # Pruners only judge single-objective studies; multi-objective ones only record.
        self.can_prune = len(study.directions) == 1

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.can_prune:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        if not math.isfinite(value):
            return                          # the run's own divergence check reports this one
        self.report(trainer.global_step, value)

    def report(self, step: int, value: float) -> None:
        """Report ``value`` of the monitored metric at training step ``step``; raise
        ``optuna.TrialPruned`` if the study's pruner stops the trial. Used without a Trainer by a
        fused group, for each member at each validation (sweeps/fused/fused_training.py)."""
        import optuna

        if not self.can_prune or not math.isfinite(value):
            return
        if self.seeds > 1:
            if not self._report_mean(step, value):
                return
            # The trial as stored: another seed's job may have reported the mean (Trial.should_prune
            # judges only what this process reported).
            stop = self.study.pruner.prune(self.study, self.study._storage.get_trial(self.trial._trial_id))
        else:
            self.trial.report(value, step=step)
            stop = self.trial.should_prune()
        if stop:
            raise optuna.TrialPruned(f"trial {self.trial.number} pruned at step {step} "
                                     f"({self.monitor}={value:.3f})")

    def _report_mean(self, step: int, value: float) -> bool:
        """One of several seeds (sweeps/optuna/seeds.py): keep this seed's value at ``step``; report
        the seeds' mean at the latest step all of them have reached. False until there is one."""
        from sweeps.optuna.seeds import SEED_REPORT, mean_of_reports

        self.trial.set_user_attr(SEED_REPORT.format(step=step, index=self.seed_index), value)
        storage = self.study._storage
        attrs = storage.get_trial_user_attrs(self.trial._trial_id)
        steps = sorted({int(k.split(":")[1]) for k in attrs if k.startswith("seed_report:")}, reverse=True)
        for reached in (s for s in steps if s <= step):
            mean = mean_of_reports(attrs, reached, self.seeds)
            if mean is not None:
                if reached not in storage.get_trial(self.trial._trial_id).intermediate_values:
                    self.trial.report(mean, step=reached)
                return True
        return False
