"""The β-VAE as a LightningModule. Read it top to bottom.

Model:  p(z) = N(0, I)        prior
        q(z|x) = N(μ(x), σ(x)) encoder, diagonal Gaussian
        p(x|z) = Bernoulli(logits = decoder(z))

The objective — distortion, rate, β and the loss conventions, and the evaluation sums — is
written once in objective.py, which the fused stack (sweeps/fused/) calls too.
"""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch
from torch import nn
from torch.distributions import Normal

from vae.data.info import DatasetInfo
from vae.errors import DivergedError
from vae.models import objective
from vae.speed.batch_groups import TakesBatchGroups


class BetaVAE(TakesBatchGroups, L.LightningModule):
    """Built from ``conf/model/mlp.yaml`` (or conv.yaml): ``encoder``/``decoder`` are partial
    network constructors that this class completes with the data's image shape and the latent
    size; ``optimizer`` a partial optimiser; ``data`` is the dataset's DatasetInfo, given by train().

    Training opts in to batch groups (vae/speed/batch_groups.py): ``training_loss`` is the step's
    loss, and the mixin makes the optimiser step and logs, as Lightning's automatic loop would."""

    def __init__(self, encoder: Callable[..., nn.Module], decoder: Callable[..., nn.Module],
                 data: DatasetInfo, latent_size: int, beta: float = 1.0, reduction: str = "sum",
                 optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
                 iwae_samples: int = 16, nll_images: int | None = None,
                 gradient_clip_val: float | None = None):
        super().__init__()
        # Networks are rebuilt from the config on resume; only scalars go in the checkpoint's hparams.
        self.save_hyperparameters(ignore=["encoder", "decoder", "optimizer", "data"], logger=False)
        shapes = {"image_shape": data.image_shape, "latent_size": latent_size}
        self.encoder, self.decoder = encoder(**shapes), decoder(**shapes)
        self.data_info = data
        self.latent_size, self.beta, self.reduction = latent_size, beta, reduction
        self.loss_weights = objective.loss_weights(beta, reduction, data.num_pixels, latent_size)
        self.optimizer_factory = optimizer
        self.gradient_clip_val = gradient_clip_val
        self.iwae_samples = iwae_samples
        self.nll_images = nll_images  # the IWAE NLL costs k decoder passes per image: a subset by default
        self.test_results: dict = {}

    @property
    def lr(self) -> float | None:
        """The optimiser's learning rate, for messages (a partial optimiser holds it)."""
        return getattr(self.optimizer_factory, "keywords", {}).get("lr")

    @property
    def beta_eff(self) -> float:
        """The β this run is equivalent to in the summed (nats per image) convention."""
        return objective.beta_eff(self.beta, self.reduction, self.data_info.num_pixels, self.latent_size)

    # --- the model -----------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> Normal:
        loc, scale = self.encoder(x)
        # validate_args off: the encoder's scale is positive by construction, and the check costs per step
        return Normal(loc, scale, validate_args=False)

    def terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-image distortion and rate (and per-dim KL), with one reparameterised sample."""
        q = self.posterior(x)
        kl_per_dim = objective.rate_per_dim(q.loc, q.scale)
        logits = self.decoder(q.rsample())
        return {"distortion": objective.distortion(logits, x, image_dims=x.dim() - 1),
                "rate": kl_per_dim.sum(-1), "kl_per_dim": kl_per_dim, "loc": q.loc}

    def loss(self, distortion: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
        return objective.loss(distortion, rate, *self.loss_weights)

    def configure_optimizers(self):
        return self.optimizer_factory(self.parameters())

    # --- training ------------------------------------------------------------------------
    def training_loss(self, batch, step: int) -> tuple[torch.Tensor, dict]:
        x, _ = batch
        t = self.terms(x)
        loss = self.loss(t["distortion"], t["rate"])
        if not torch.isfinite(loss):
            raise DivergedError(
                f"loss became {loss.item()} at step {step} (beta={self.beta}, lr={self.lr}); "
                f"lower model.optimizer.lr or beta, or add trainer.gradient_clip_val=1")
        return loss, {"train/loss": loss, "train/distortion": t["distortion"].mean(), "train/rate": t["rate"].mean()}

    # --- validation: the same terms, plus −ELBO (β=1), comparable across β ----------------
    # Sums are kept per batch and logged once per validation: a self.log per batch costs more
    # than a small batch's bookkeeping is worth.
    def on_validation_epoch_start(self) -> None:
        self._val_sums = objective.EvaluationSums()

    def validation_step(self, batch, batch_idx: int) -> None:
        self._val_sums.add_terms(self.terms(batch[0]))

    def on_validation_epoch_end(self) -> None:
        metrics = objective.validation_metrics(self._gathered(self._val_sums), *self.loss_weights)
        self.log_dict(metrics | {"step": float(self.global_step)})

    # --- test: rate, distortion, −ELBO, IWAE NLL, active units, per-dim KL ---------------
    @torch.no_grad()
    def iwae_nll(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """−log p(x) estimated with k importance samples, per image (objective.iwae_nll)."""
        return torch.cat([self._iwae_nll_chunk(part, k) for part in objective.chunks(x, copies=k)])

    def _iwae_nll_chunk(self, x: torch.Tensor, k: int) -> torch.Tensor:
        q = self.posterior(x)
        z = q.sample((k,))                                            # (k, B, L)
        logits = self.decoder(z.flatten(0, 1)).view(k, *x.shape)      # (k, B, C, H, W)
        log_px_z = -objective.distortion(logits, x, image_dims=x.dim() - 1)  # x broadcasts: no k copies
        return objective.iwae_nll(log_px_z, z, q.loc, q.scale)

    def on_test_epoch_start(self) -> None:
        self.test_results = {}
        self._test_sums = objective.EvaluationSums()

    def test_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        self._test_sums.add_terms(self.terms(x), with_latents=True)
        # The NLL is estimated on the first nll_images test images (the same ones in every run).
        seen = self._test_sums.totals["n"] - len(x)
        nll_x = x if self.nll_images is None else x[: max(0, self.nll_images - int(seen))]
        nll = self.iwae_nll(nll_x, self.iwae_samples).sum() if len(nll_x) else x.new_zeros(())
        self._test_sums.add(nll=nll, nll_n=x.new_tensor(float(len(nll_x))))

    def on_test_epoch_end(self) -> None:
        results = objective.test_metrics(self._gathered(self._test_sums))
        kl_per_dim = results.pop("kl_per_dim")
        self.log_dict({f"test/{k}": v for k, v in results.items()} | {"step": float(self.global_step)})
        # update, not replace: callbacks (vae/metrics/callback.py) add their results in the same hook
        self.test_results.update({k: float(v) for k, v in results.items()})
        self.test_results["kl_per_dim"] = [float(v) for v in kl_per_dim]

    def _gathered(self, sums: objective.EvaluationSums) -> dict[str, torch.Tensor]:
        """Sums, not means, are gathered, so results are exact across devices and ragged batches."""
        if self.trainer.world_size > 1:
            return {k: self.all_gather(v).sum(0) for k, v in sums.totals.items()}
        return sums.totals

    # --- helpers for figures -------------------------------------------------------------
    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli means in [0, 1] for latents z."""
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_mean(self.posterior(x).loc)
