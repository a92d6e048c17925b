"""Validation and test metrics of every member of a StackedVAE (sweeps/fused/stacked_vae.py) in one
pass over the images, not K solo passes: each chunk of images goes through all members at once.

The metrics are BetaVAE's (vae/models/beta_vae.py), per member: validation's loss, distortion,
rate and −ELBO; the test's distortion, rate, −ELBO, IWAE NLL, active units and per-dim KL. The
images are the same for every member (the val and test splits do not depend on a run's seed).
Noise comes from ``generator`` (None: the global one): evaluation does not touch the members'
training streams.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal

from vae.models.bernoulli import bernoulli_nll
from vae.models.beta_vae import IWAE_CHUNK_ELEMENTS
from sweeps.fused.stacked_vae import StackedVAE

# Floats of decoder output per chunk, all members together: K·images·pixels stays cache-sized
# (~16 MB) on a CPU, as in BetaVAE.iwae_nll. On a GPU cache size does not matter and each chunk
# costs kernel launches: 256 MB chunks (K=256 MLPs on MNIST: 330 images a chunk, not 20).
CHUNK_ELEMENTS = IWAE_CHUNK_ELEMENTS
GPU_CHUNK_ELEMENTS = 2 ** 26


def chunk_elements(device: torch.device) -> int:
    return GPU_CHUNK_ELEMENTS if torch.device(device).type == "cuda" else CHUNK_ELEMENTS


def shared(stack: StackedVAE, x: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) as every member's input (K, N, pixels): a view, no K copies in memory."""
    return x.flatten(1).expand(len(stack), -1, -1)


def chunks(stack: StackedVAE, x: torch.Tensor, floats_per_image: int):
    return x.split(max(1, chunk_elements(x.device) // (max(1, len(stack)) * floats_per_image)))


def noise(stack: StackedVAE, *shape: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(len(stack), *shape, stack.max_latent, generator=generator, device=stack.weights[0].device)


@torch.no_grad()
def validate(stack: StackedVAE, images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """BetaVAE's validation metrics, (K,) each, over images (N, C, H, W) shared by all members."""
    d = r = 0.0
    for part in chunks(stack, images, stack.num_pixels):
        t = stack.terms(shared(stack, part), eps=noise(stack, len(part), generator=generator))
        d, r = d + t["distortion"].sum(1), r + t["rate"].sum(1)
    d, r = d / len(images), r / len(images)
    return {"val/loss": stack.distortion_weight * d + stack.rate_weight * r, "val/distortion": d,
            "val/rate": r, "val/neg_elbo": d + r}


@torch.no_grad()
def iwae_nll(stack: StackedVAE, x: torch.Tensor, k: int, eps: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """−log p(x) with k importance samples (BetaVAE.iwae_nll), (K, N), for images x (N, C, H, W)
    shared by all members. ``eps``: the noise (K, k, N, L); drawn if not given."""
    out, start, K = [], 0, len(stack)
    mask = stack.mask.unsqueeze(1)                                                    # (K, 1, 1, L)
    for part in chunks(stack, x, k * stack.num_pixels):
        n, xs = len(part), shared(stack, part)
        loc, scale = (v.unsqueeze(1) for v in stack.posterior(xs))                   # (K, 1, n, L)
        e = noise(stack, k, n, generator=generator) if eps is None else eps[:, :, start:start + n]
        z = (loc + e * scale) * mask                                                  # (K, k, n, L)
        logits = stack.decode(z.flatten(1, 2)).view(K, k, n, -1)
        log_px_z = -bernoulli_nll(logits, xs.unsqueeze(1)).sum(-1)
        prior = Normal(torch.zeros((), device=z.device), torch.ones((), device=z.device))
        log_pz = (prior.log_prob(z) * mask).sum(-1)      # padded dims masked out of both densities
        log_qz = (Normal(loc, scale, validate_args=False).log_prob(z) * mask).sum(-1)
        out.append(-(torch.logsumexp(log_px_z + log_pz - log_qz, dim=1) - math.log(k)))
        start += n
    return torch.cat(out, dim=1) if out else x.new_zeros(K, 0)


@torch.no_grad()
def test(stack: StackedVAE, images: torch.Tensor, iwae_samples: int, nll_images: int | None = None,
         generator: torch.Generator | None = None) -> list[dict]:
    """BetaVAE.test_results for every member (a list in stack order), over test images shared by
    all; the NLL on the first ``nll_images`` (None: all), as a solo run estimates it."""
    K, L = len(stack), stack.max_latent
    sums = {key: stack.weights[0].new_zeros(K) for key in ("distortion", "rate")}
    sums |= {key: stack.weights[0].new_zeros(K, L) for key in ("kl_per_dim", "loc", "loc_sq")}
    for part in chunks(stack, images, stack.num_pixels):
        t = stack.terms(shared(stack, part), eps=noise(stack, len(part), generator=generator))
        sums["distortion"] += t["distortion"].sum(1)
        sums["rate"] += t["rate"].sum(1)
        sums["kl_per_dim"] += t["kl_per_dim"].sum(1)
        sums["loc"] += t["loc"].sum(1)
        sums["loc_sq"] += t["loc"].pow(2).sum(1)
    nll_x = images if nll_images is None else images[:nll_images]
    nll = iwae_nll(stack, nll_x, iwae_samples, generator=generator).mean(1)
    n = len(images)
    loc_var = sums["loc_sq"] / n - (sums["loc"] / n) ** 2   # variance of E_q[z] over the test set
    results = []
    for k, size in enumerate(stack.latent_sizes):
        d, r = float(sums["distortion"][k] / n), float(sums["rate"][k] / n)
        results.append({"distortion": d, "rate": r, "nll_iwae": float(nll[k]), "neg_elbo": d + r,
                        "active_units": float((loc_var[k, :size] > 0.01).sum()),
                        "kl_per_dim": [float(v) for v in sums["kl_per_dim"][k, :size] / n]})
    return results
