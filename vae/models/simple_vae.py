"""The smallest model that plugs into this framework: a VAE written the way Lightning tutorials
write one (automatic optimisation, ``self.log``), and the template for a model of your own.

What a model must do to train, validate, test, log and appear in reports here:
- take ``data`` (the dataset's DatasetInfo: image shape, pixels) in its constructor, next to
  the keys its ``conf/model/<name>.yaml`` gives it;
- log ``val/<metric>`` in validation and ``test/<metric>`` in test (sweepers optimise
  ``val/neg_elbo`` by default, the report shows ``test/*``);
- optionally ``latent_size``, ``posterior``, ``decode_mean`` and ``reconstruct`` for the
  figures (vae/figures.py), which this model has.
It sees ordinary batches of ``data.batch_size`` images: the speed devices in vae/speed/ apply
only to models that opt in (BetaVAE does). Its distortion and rate come from objective.py, the one
definition of the β-VAE's terms.
"""

from __future__ import annotations

from typing import Callable

import lightning as L
import torch
from torch import nn
from torch.distributions import Normal

from vae.data.info import DatasetInfo
from vae.models import objective


class SimpleVAE(L.LightningModule):
    def __init__(self, encoder: Callable[..., nn.Module], decoder: Callable[..., nn.Module],
                 data: DatasetInfo, latent_size: int, beta: float = 1.0, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "decoder", "data"], logger=False)
        shapes = {"image_shape": data.image_shape, "latent_size": latent_size}
        self.encoder, self.decoder = encoder(**shapes), decoder(**shapes)
        self.latent_size, self.beta, self.lr = latent_size, beta, lr

    def posterior(self, x: torch.Tensor) -> Normal:
        return Normal(*self.encoder(x))

    def terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distortion −log p(x|z) and rate KL(q(z|x) ‖ N(0, I)) per image, in nats
        (vae/models/objective.py: the definitions every model here shares)."""
        q = self.posterior(x)
        logits = self.decoder(q.rsample())
        return objective.distortion(logits, x, image_dims=3), objective.rate_per_dim(q.loc, q.scale).sum(1)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        distortion, rate = self.terms(batch[0])
        loss = (distortion + self.beta * rate).mean()
        self.log_dict({"train/loss": loss, "train/distortion": distortion.mean(), "train/rate": rate.mean()})
        return loss

    def _evaluate(self, batch, stage: str) -> None:
        distortion, rate = self.terms(batch[0])
        self.log_dict({f"{stage}/distortion": distortion.mean(), f"{stage}/rate": rate.mean(),
                       f"{stage}/neg_elbo": (distortion + rate).mean(),
                       f"{stage}/loss": (distortion + self.beta * rate).mean()}, batch_size=len(batch[0]))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    # --- the figure interface (vae/figures.py) -------------------------------------------------
    @torch.no_grad()
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_mean(self.posterior(x).loc)
