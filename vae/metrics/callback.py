"""Disentanglement metrics in the test phase of a run whose dataset declares generative factors.

After the test loop, the model's posterior means on fresh samples of the factor grid are scored
by MIG, DCI, FactorVAE and BetaVAE (vae/metrics/disentanglement.py); the scores join the run's
test metrics (``test/mig`` ...: metrics.json, the W&B summary, train()'s result, so a sweeper can
optimise them), and the latents × factors mutual-information matrix is drawn as
``images/mutual_info.png``. On data without factors (MNIST) it does nothing.
"""

from __future__ import annotations

import logging
import time

import lightning as L
import numpy as np
import torch

from vae.metrics.disentanglement import MetricSizes, evaluate

log = logging.getLogger(__name__)

SCORE_KEYS = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "factor_vae", "beta_vae")


class DisentanglementMetrics(L.Callback):
    """``sizes``: MetricSizes fields (the defaults take a few seconds on a CPU;
    ``reference: true`` for disentanglement_lib's sizes and tree ensemble)."""

    def __init__(self, seed: int = 0, reference: bool = False, **sizes):
        self.seed = seed
        base = MetricSizes.reference() if reference else MetricSizes()
        self.sizes = MetricSizes(**{**base.__dict__, **{k: v for k, v in sizes.items() if v is not None}})
        self.result = None

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        scores = self.score(pl_module, trainer.datamodule)
        if scores:
            # Logged through the module, so they reach trainer.callback_metrics (train()'s result) and the loggers.
            pl_module.log_dict(scores)

    def score(self, model: L.LightningModule, datamodule) -> dict[str, float] | None:
        """``test/<score>`` of ``model`` on ``datamodule``, or None where the data declares no
        factors (or the model has no posterior). Needs no Trainer: the fused launcher calls it per
        member. The MI matrix goes into ``model.test_results`` (the figure and metrics.json read it)."""
        info = getattr(datamodule, "info", None)
        if info is None or not info.factors or not hasattr(model, "posterior"):
            return None
        started = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            self.result = evaluate(datamodule, self._represent(model, datamodule), seed=self.seed, sizes=self.sizes)
        finally:
            model.train(was_training)
        scores = {f"test/{k}": float(v) for k, v in self.result.scores.items()}
        log.info("disentanglement: %s (%.1f s)", ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in scores.items()),
                 time.perf_counter() - started)
        results = getattr(model, "test_results", None)
        if isinstance(results, dict):
            results["mutual_info"] = self.result.normalized_mutual_info.round(4).tolist()
            results["factor_names"] = list(info.factor_names)
        return scores

    @staticmethod
    def _represent(model: L.LightningModule, datamodule):
        @torch.no_grad()
        def represent(images) -> np.ndarray:
            x = torch.as_tensor(images)
            codes = [model.posterior(datamodule.as_float(chunk).to(model.device)).loc.cpu()
                     for chunk in x.split(2048)]
            return torch.cat(codes).numpy()
        return represent
