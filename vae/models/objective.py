"""The β-VAE's objective, written once: the loss and the evaluation sums.

The solo model (beta_vae.py), the template (simple_vae.py) and the fused stack
(sweeps/fused/stacked_vae.py) all call these functions. Every tensor may carry leading axes in
front of the image axis: per-image terms are (N,) for one model and (K, N) for K stacked members;
per-dim terms add the latent axis last. β, the reduction and the latent mask are the only
member-specific inputs, and they broadcast the same way.

Per image, in nats:
    distortion D = −log p(x|z)         Bernoulli, summed over pixels (z ~ q(z|x), one sample)
    rate       R = KL(q(z|x) ‖ N(0, I)) summed over latent dims, closed form
Loss conventions (``reduction``):
    sum   mean_batch(D + β·R): β=1 is the plain VAE (−ELBO), β=0 a plain autoencoder.
    mean  the seed notebook's: mean over pixels of the BCE + β · mean over dims of the KL,
          = D/P + β·R/L for P pixels and L latent dims, i.e. β_eff = β·P/L in the sum convention.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal

from vae.models.bernoulli import bernoulli_nll

REDUCTIONS = ("sum", "mean")
ACTIVE_UNIT_THRESHOLD = 0.01   # Burda et al. (2015): a unit is active if Var_x(E_q[z]) > 0.01
# Floats of decoder output per evaluation chunk: a cache-sized block (~16 MB) runs about twice as
# fast per image on a CPU as one large tensor; on a GPU cache size does not matter and every chunk
# costs kernel launches, so chunks are 16 times larger there.
CHUNK_ELEMENTS = 2 ** 22
GPU_CHUNK_ELEMENTS = 2 ** 26


def beta_eff(beta: float, reduction: str, num_pixels: int, latent_size: int) -> float:
    """The β a run is equivalent to in the summed (nats per image) convention."""
    return beta * num_pixels / latent_size if reduction == "mean" else beta


def loss_weights(beta: float, reduction: str, num_pixels: int, latent_size: int) -> tuple[float, float]:
    """(a, c) with loss = a·mean(D) + c·mean(R): sum: (1, β); mean: (1/P, β/L)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}: use one of {REDUCTIONS}")
    if reduction == "mean":
        return 1.0 / num_pixels, beta / latent_size
    return 1.0, beta


def loss(distortion: torch.Tensor, rate: torch.Tensor, distortion_weight, rate_weight) -> torch.Tensor:
    """The training loss from per-image terms (..., N): one value per model, (...,)."""
    return distortion_weight * distortion.mean(-1) + rate_weight * rate.mean(-1)


def distortion(logits: torch.Tensor, x: torch.Tensor, image_dims: int) -> torch.Tensor:
    """−log p(x|z) per image: the Bernoulli NLL summed over the last ``image_dims`` axes."""
    return bernoulli_nll(logits, x).flatten(-image_dims).sum(-1)


def standard_normal(like: torch.Tensor) -> Normal:
    """The prior N(0, 1), as scalars that broadcast against any latent tensor."""
    return Normal(like.new_zeros(()), like.new_ones(()), validate_args=False)


def rate_per_dim(loc: torch.Tensor, scale: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(loc, scale) ‖ N(0, 1)) per latent dim; ``mask`` zeroes padded dims (fused members).

    torch.distributions' kl_divergence(Normal, Normal) with the prior's zeros and ones folded in
    (tests/test_objective.py checks they agree): it runs every training step, and building two
    Normals and dispatching costs more than the arithmetic (BENCHMARKS.md)."""
    variance = scale.square()
    kl = 0.5 * (loc.square() + variance - 1 - variance.log())
    return kl if mask is None else kl * mask


def iwae_nll(log_px_z: torch.Tensor, z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor,
             mask: torch.Tensor | None = None, sample_dim: int = 0) -> torch.Tensor:
    """−log p(x) with k importance samples (Burda et al. 2015) along ``sample_dim``, per image:
    log p(x) ≥ log (1/k) Σ_i p(x|z_i) p(z_i) / q(z_i|x),  z_i ~ q(z|x); k=1 is the ELBO."""
    log_pz = standard_normal(z).log_prob(z)
    log_qz = Normal(loc, scale, validate_args=False).log_prob(z)
    if mask is not None:   # padded dims are out of both densities
        log_pz, log_qz = log_pz * mask, log_qz * mask
    log_w = log_px_z + log_pz.sum(-1) - log_qz.sum(-1)
    return -(torch.logsumexp(log_w, dim=sample_dim) - math.log(z.shape[sample_dim]))


def chunks(x: torch.Tensor, copies: int) -> tuple[torch.Tensor, ...]:
    """Images x split so that ``copies`` decoded copies of a chunk (k importance samples, K
    members) stay within CHUNK_ELEMENTS floats (GPU_CHUNK_ELEMENTS on a GPU)."""
    limit = GPU_CHUNK_ELEMENTS if x.device.type == "cuda" else CHUNK_ELEMENTS
    return x.split(max(1, limit // (max(1, copies) * x[0].numel())))


class EvaluationSums:
    """Sums over an evaluation's batches, kept per model (any leading axes) and turned into
    metrics once at the end. Sums, not means: exact across ragged batches and devices."""

    def __init__(self) -> None:
        self.totals: dict[str, torch.Tensor] = {}

    def add(self, **sums: torch.Tensor) -> None:
        for key, value in sums.items():
            self.totals[key] = self.totals.get(key, 0) + value

    def add_terms(self, terms: dict[str, torch.Tensor], with_latents: bool = False) -> None:
        """One batch's per-image terms (..., N) and, for the test, per-dim terms (..., N, L)."""
        d = terms["distortion"]
        self.add(n=d.new_tensor(float(d.shape[-1])), distortion=d.sum(-1), rate=terms["rate"].sum(-1))
        if with_latents:
            loc = terms["loc"]
            self.add(kl_per_dim=terms["kl_per_dim"].sum(-2), loc=loc.sum(-2), loc_sq=loc.pow(2).sum(-2))


def validation_metrics(sums: dict[str, torch.Tensor], distortion_weight, rate_weight) -> dict[str, torch.Tensor]:
    """val/* from the sums of a validation pass: the loss as trained, and −ELBO (β=1), comparable across β."""
    d, r = sums["distortion"] / sums["n"], sums["rate"] / sums["n"]
    return {"val/loss": distortion_weight * d + rate_weight * r, "val/distortion": d, "val/rate": r,
            "val/neg_elbo": d + r}


def test_metrics(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The test metrics from the sums of a test pass (``nll``, ``nll_n``: the IWAE estimate's)."""
    n = sums["n"]
    mean_loc = sums["loc"] / n
    loc_var = sums["loc_sq"] / n - mean_loc ** 2   # variance of E_q[z] over the test set
    d, r = sums["distortion"] / n, sums["rate"] / n
    return {"distortion": d, "rate": r, "neg_elbo": d + r, "nll_iwae": sums["nll"] / sums["nll_n"],
            "active_units": (loc_var > ACTIVE_UNIT_THRESHOLD).sum(-1).to(d.dtype),
            "kl_per_dim": sums["kl_per_dim"] / n}
