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

import lightning as L
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence
from torch.nn import functional as F

from vae.errors import DivergedError

REDUCTIONS = ("sum", "mean")


class BetaVAE(L.LightningModule):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent_size: int, beta: float = 1.0,
                 reduction: str = "sum", lr: float = 1e-3, iwae_samples: int = 16,
                 image_shape: tuple[int, ...] = (1, 28, 28)):
        super().__init__()
        # Networks are rebuilt from the config on resume; only scalars go in the checkpoint's hparams.
        self.save_hyperparameters(ignore=["encoder", "decoder"], logger=False)  # the full config is logged instead
        self.encoder, self.decoder = encoder, decoder
        self.latent_size, self.beta, self.reduction, self.lr = latent_size, beta, reduction, lr
        self.iwae_samples = iwae_samples
        self.num_pixels = math.prod(image_shape)
        self.register_buffer("prior_loc", torch.zeros(latent_size))
        self.register_buffer("prior_scale", torch.ones(latent_size))
        self.test_results: dict = {}

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
        return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)

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

    # --- training ------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, _ = batch
        t = self.terms(x)
        loss = self.loss(t["distortion"], t["rate"])
        if not torch.isfinite(loss):
            raise DivergedError(
                f"loss became {loss.item()} at step {self.global_step} (beta={self.beta}, lr={self.lr}); "
                f"lower model.optimizer.lr or beta, or add trainer.gradient_clip_val=1")
        # self.log costs ~0.6 ms a call, a fifth of a step; only log on the steps the logger
        # writes, which Lightning picks as (step + 1) % log_every_n_steps == 0.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log_dict({"train/loss": loss, "train/distortion": t["distortion"].mean(),
                           "train/rate": t["rate"].mean()}, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    # --- validation: the same terms, plus −ELBO (β=1), comparable across β ----------------
    def validation_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        t = self.terms(x)
        d, r = t["distortion"].mean(), t["rate"].mean()
        self.log_dict({"val/loss": self.loss(t["distortion"], t["rate"]), "val/distortion": d,
                       "val/rate": r, "val/neg_elbo": d + r},
                      on_epoch=True, batch_size=len(x), sync_dist=True)

    # --- test: rate, distortion, −ELBO, IWAE NLL, active units, per-dim KL ---------------
    @torch.no_grad()
    def iwae_nll(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """−log p(x) estimated with k importance samples (Burda et al. 2015), per image.

        log p(x) ≥ log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x); k=1 is the ELBO.
        """
        q = self.posterior(x)
        z = q.sample((k,))                                            # (k, B, L)
        logits = self.decoder(z.flatten(0, 1))                        # (k·B, C, H, W)
        log_px_z = -self.distortion(logits, x.repeat(k, 1, 1, 1)).view(k, -1)
        log_w = log_px_z + self.prior().log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
        return -(torch.logsumexp(log_w, dim=0) - math.log(k))

    def on_test_epoch_start(self) -> None:
        self._test_sums: dict[str, torch.Tensor] = {}

    def test_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        t = self.terms(x)
        loc = t["loc"]
        sums = {"n": torch.tensor(float(len(x)), device=x.device),
                "distortion": t["distortion"].sum(), "rate": t["rate"].sum(),
                "nll": self.iwae_nll(x, self.iwae_samples).sum(),
                "kl_per_dim": t["kl_per_dim"].sum(0), "loc": loc.sum(0), "loc_sq": (loc ** 2).sum(0)}
        for key, value in sums.items():
            self._test_sums[key] = self._test_sums.get(key, 0) + value

    def on_test_epoch_end(self) -> None:
        # Sums, not means, are gathered, so the result is exact across devices and ragged batches.
        s = self._test_sums
        if self.trainer.world_size > 1:
            s = {k: self.all_gather(v).sum(0) for k, v in s.items()}
        n = s["n"]
        mean_loc = s["loc"] / n
        loc_var = s["loc_sq"] / n - mean_loc ** 2   # variance of E_q[z] over the test set
        kl_per_dim = s["kl_per_dim"] / n
        results = {"distortion": s["distortion"] / n, "rate": s["rate"] / n,
                   "nll_iwae": s["nll"] / n, "active_units": (loc_var > 0.01).sum().float()}
        results["neg_elbo"] = results["distortion"] + results["rate"]
        self.log_dict({f"test/{k}": v for k, v in results.items()})
        self.test_results = {k: float(v) for k, v in results.items()}
        self.test_results["kl_per_dim"] = [float(v) for v in kl_per_dim]

    # --- helpers for figures -------------------------------------------------------------
    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli means in [0, 1] for latents z."""
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_mean(self.posterior(x).loc)
