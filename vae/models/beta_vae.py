"""The β-VAE as a LightningModule. Read it top to bottom.

Model:  p(z) = N(0, I)        prior
        q(z|x) = N(μ(x), σ(x)) encoder, diagonal Gaussian
        p(x|z) = Bernoulli(logits = decoder(z))

Per image, in nats:
        distortion D = −log p(x|z)         summed over pixels  (z ~ q(z|x), one sample)
        rate       R = KL(q(z|x) ‖ p(z))   summed over latent dims, closed form

Loss conventions (``loss.reduction``):
  sum   loss = mean_batch(D + β·R).  β=1 is the plain VAE (−ELBO), β=0 a plain autoencoder.
  mean  the seed notebook's: mean over pixels of the BCE + β · mean over dims of the KL,
        = (D + β·(P/L)·R) / P for P pixels and L latent dims. Its β is equivalent to
        β_eff = β·P/L in the sum convention; the run logs β_eff either way.
"""

from __future__ import annotations

import math
from typing import Callable

import lightning as L
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from vae.data.base import DatasetInfo
from vae.errors import DivergedError
from vae.models.bernoulli import bernoulli_nll
from vae.speed.batch_groups import TakesBatchGroups

REDUCTIONS = ("sum", "mean")
IWAE_CHUNK_ELEMENTS = 2 ** 22  # floats per chunk of the IWAE estimate (see iwae_nll)


class BetaVAE(TakesBatchGroups, L.LightningModule):
    """Built from ``conf/model/mlp.yaml`` (or conv.yaml): ``encoder``/``decoder`` are partial
    network constructors that this class completes with the data's image shape and the latent
    size; ``optimizer`` a partial optimiser; ``data`` is the dataset's DatasetInfo, given by train()."""

    def __init__(self, encoder: Callable[..., nn.Module], decoder: Callable[..., nn.Module],
                 data: DatasetInfo, latent_size: int, beta: float = 1.0, reduction: str = "sum",
                 optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
                 iwae_samples: int = 16, nll_images: int | None = None,
                 gradient_clip_val: float | None = None):
        super().__init__()
        # Manual optimisation (TakesBatchGroups): one optimiser step per batch, written out;
        # Lightning's automatic loop adds ~1.5 ms of bookkeeping per step, half this model's step.
        self.gradient_clip_val = gradient_clip_val
        # Networks are rebuilt from the config on resume; only scalars go in the checkpoint's hparams.
        self.save_hyperparameters(ignore=["encoder", "decoder", "optimizer", "data"], logger=False)
        shapes = {"image_shape": data.image_shape, "latent_size": latent_size}
        self.encoder, self.decoder = encoder(**shapes), decoder(**shapes)
        self.data_info = data
        self.latent_size, self.beta, self.reduction = latent_size, beta, reduction
        self.optimizer_factory = optimizer
        self.iwae_samples = iwae_samples
        self.nll_images = nll_images  # the IWAE NLL costs k decoder passes per image: a subset by default
        self.num_pixels = data.num_pixels
        self.register_buffer("prior_loc", torch.zeros(latent_size))
        self.register_buffer("prior_scale", torch.ones(latent_size))
        self.test_results: dict = {}

    @property
    def lr(self) -> float | None:
        """The optimiser's learning rate, for messages (a partial optimiser holds it)."""
        return getattr(self.optimizer_factory, "keywords", {}).get("lr")

    # --- the model -----------------------------------------------------------------------
    @property
    def beta_eff(self) -> float:
        """The β this run is equivalent to in the summed (nats per image) convention."""
        return self.beta * self.num_pixels / self.latent_size if self.reduction == "mean" else self.beta

    def prior(self) -> Normal:
        return Normal(self.prior_loc, self.prior_scale, validate_args=False)

    def posterior(self, x: torch.Tensor) -> Normal:
        loc, scale = self.encoder(x)
        # validate_args off: the encoder's scale is positive by construction, and the check costs per step
        return Normal(loc, scale, validate_args=False)

    def distortion(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x|z) per image. BCE-with-logits is the Bernoulli log-likelihood, and also
        accepts grey targets (binarize=none), which Bernoulli.log_prob would reject."""
        return bernoulli_nll(logits, x).flatten(1).sum(1)

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image distortion and rate (and per-dim KL), with one reparameterised sample."""
        q = self.posterior(x)
        z = q.rsample()
        kl_per_dim = kl_divergence(q, self.prior())
        return {"distortion": self.distortion(self.decoder(z), x), "rate": kl_per_dim.sum(1),
                "kl_per_dim": kl_per_dim, "loc": q.loc}

    def loss(self, distortion: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        if self.reduction == "mean":
            return distortion.mean() / self.num_pixels + self.beta * rate.mean() / self.latent_size
        return (distortion + self.beta * rate).mean()

    # --- training: one optimiser step per batch (TakesBatchGroups hands them out) ---------
    def train_on_batch(self, batch, step: int, log: bool) -> torch.Tensor:
        x, _ = batch
        t = self.terms(x)
        loss = self.loss(t["distortion"], t["rate"])
        if not torch.isfinite(loss):
            raise DivergedError(
                f"loss became {loss.item()} at step {step} (beta={self.beta}, lr={self.lr}); "
                f"lower model.optimizer.lr or beta, or add trainer.gradient_clip_val=1")
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")
        optimizer.step()
        if log:
            self.log_training_metrics(step, {"train/loss": loss, "train/distortion": t["distortion"].mean(),
                                             "train/rate": t["rate"].mean()})
        return loss

    def log_training_metrics(self, step: int, metrics: dict[str, torch.Tensor]) -> None:
        """Hand training scalars to the loggers directly, as Lightning's logger connector does
        (log_metrics, then save), at optimiser step ``step``.

        Not self.log: for a step-only metric Lightning builds and moves a result object on every
        call, ~0.8 ms a key (0.2 s of a 1024-step run, 5% of its training time, measured with
        cProfile), and nothing reads training values back from trainer.callback_metrics.
        Validation and test metrics do go through self.log (pruning and checkpoints read them).
        """
        scalars = {key: value.item() for key, value in metrics.items()}
        for logger in self.loggers:
            logger.log_metrics(scalars, step=step)
            logger.save()

    def configure_optimizers(self):
        return self.optimizer_factory(self.parameters())

    # --- validation: the same terms, plus −ELBO (β=1), comparable across β ----------------
    # Sums are kept per batch and logged once per validation: a self.log per batch costs more
    # than the batch's bookkeeping is worth (~3 ms of a 12 ms batch of 1000 images).
    def on_validation_epoch_start(self) -> None:
        self._val_sums: dict[str, torch.Tensor] = {}

    def validation_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        t = self.terms(x)
        self._accumulate(self._val_sums, {
            "n": torch.tensor(float(len(x)), device=x.device), "distortion": t["distortion"].sum(),
            "rate": t["rate"].sum(), "loss": self.loss(t["distortion"], t["rate"]) * len(x)})

    def on_validation_epoch_end(self) -> None:
        s = self._gathered(self._val_sums)
        d, r = s["distortion"] / s["n"], s["rate"] / s["n"]
        self.log_dict({"val/loss": s["loss"] / s["n"], "val/distortion": d, "val/rate": r,
                       "val/neg_elbo": d + r, "step": float(self.global_step)})

    # --- test: rate, distortion, −ELBO, IWAE NLL, active units, per-dim KL ---------------
    @torch.no_grad()
    def iwae_nll(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """−log p(x) estimated with k importance samples (Burda et al. 2015), per image.

        log p(x) ≥ log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x); k=1 is the ELBO.
        """
        # Chunks of images whose k decoded copies stay cache-sized (~16 MB of logits): one
        # (k, 1000, 784) tensor is 50 MB and runs twice as slowly per image on a CPU.
        chunk = max(1, IWAE_CHUNK_ELEMENTS // (k * self.num_pixels))
        return torch.cat([self._iwae_nll_chunk(part, k) for part in x.split(chunk)])

    def _iwae_nll_chunk(self, x: torch.Tensor, k: int) -> torch.Tensor:
        q = self.posterior(x)
        z = q.sample((k,))                                            # (k, B, L)
        logits = self.decoder(z.flatten(0, 1)).view(k, *x.shape)      # (k, B, C, H, W)
        log_px_z = -bernoulli_nll(logits, x).flatten(2).sum(2)      # x broadcasts: not k copies in memory
        log_w = log_px_z + self.prior().log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
        return -(torch.logsumexp(log_w, dim=0) - math.log(k))

    def on_test_epoch_start(self) -> None:
        self.test_results = {}
        self._test_sums: dict[str, torch.Tensor] = {}
        self._test_seen = 0

    def test_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        t = self.terms(x)
        loc = t["loc"]
        # The NLL is estimated on the first nll_images test images (the same ones in every run).
        nll_x = x if self.nll_images is None else x[: max(0, self.nll_images - self._test_seen)]
        self._test_seen += len(x)
        nll = self.iwae_nll(nll_x, self.iwae_samples).sum() if len(nll_x) else x.new_zeros(())
        sums = {"n": torch.tensor(float(len(x)), device=x.device),
                "nll_n": torch.tensor(float(len(nll_x)), device=x.device),
                "distortion": t["distortion"].sum(), "rate": t["rate"].sum(), "nll": nll,
                "kl_per_dim": t["kl_per_dim"].sum(0), "loc": loc.sum(0), "loc_sq": (loc ** 2).sum(0)}
        self._accumulate(self._test_sums, sums)

    def on_test_epoch_end(self) -> None:
        s = self._gathered(self._test_sums)
        n = s["n"]
        mean_loc = s["loc"] / n
        loc_var = s["loc_sq"] / n - mean_loc ** 2   # variance of E_q[z] over the test set
        kl_per_dim = s["kl_per_dim"] / n
        results = {"distortion": s["distortion"] / n, "rate": s["rate"] / n,
                   "nll_iwae": s["nll"] / s["nll_n"], "active_units": (loc_var > 0.01).sum().float()}
        results["neg_elbo"] = results["distortion"] + results["rate"]
        self.log_dict({f"test/{k}": v for k, v in results.items()} | {"step": float(self.global_step)})
        # update, not replace: callbacks (vae/metrics/callback.py) add their results in the same hook
        self.test_results.update({k: float(v) for k, v in results.items()})
        self.test_results["kl_per_dim"] = [float(v) for v in kl_per_dim]

    # --- sums over an evaluation ---------------------------------------------------------
    @staticmethod
    def _accumulate(totals: dict[str, torch.Tensor], sums: dict[str, torch.Tensor]) -> None:
        for key, value in sums.items():
            totals[key] = totals.get(key, 0) + value

    def _gathered(self, sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sums, not means, are gathered, so results are exact across devices and ragged batches."""
        if self.trainer.world_size > 1:
            return {k: self.all_gather(v).sum(0) for k, v in sums.items()}
        return sums

    # --- helpers for figures -------------------------------------------------------------
    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli means in [0, 1] for latents z."""
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_mean(self.posterior(x).loc)
