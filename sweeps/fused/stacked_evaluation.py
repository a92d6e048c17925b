"""Validation and test metrics of every member of a StackedVAE (sweeps/fused/stacked_vae.py) in one
pass over the images, not K solo passes: each chunk of images goes through all members at once.

The metrics are BetaVAE's, from the same functions (vae/models/objective.py) with a member axis in
front. The images are the same for every member (the val and test splits do not depend on a run's
seed). Noise comes from ``generator`` (None: the global one): evaluation does not touch the
members' training streams.
"""

from __future__ import annotations

import torch

from vae.models import objective
from sweeps.fused.stacked_vae import StackedVAE


def shared(stack: StackedVAE, x: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) as every member's input (K, N, pixels): a view, no K copies in memory."""
    return x.flatten(1).expand(len(stack), -1, -1)


def noise(stack: StackedVAE, *shape: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(len(stack), *shape, stack.max_latent, generator=generator, device=stack.weights[0].device)


def _sums(stack: StackedVAE, images: torch.Tensor, generator: torch.Generator | None,
          with_latents: bool) -> objective.EvaluationSums:
    sums = objective.EvaluationSums()
    for part in objective.chunks(images, copies=len(stack)):
        sums.add_terms(stack.terms(shared(stack, part), eps=noise(stack, len(part), generator=generator)),
                       with_latents=with_latents)
    return sums


@torch.no_grad()
def validate(stack: StackedVAE, images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """BetaVAE's validation metrics, (K,) each, over images (N, C, H, W) shared by all members."""
    sums = _sums(stack, images, generator, with_latents=False)
    return objective.validation_metrics(sums.totals, stack.distortion_weight, stack.rate_weight)


@torch.no_grad()
def iwae_nll(stack: StackedVAE, x: torch.Tensor, k: int, eps: torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """−log p(x) with k importance samples (objective.iwae_nll), (K, N), for images x (N, C, H, W)
    shared by all members. ``eps``: the noise (K, k, N, L); drawn if not given."""
    out, start, K = [], 0, len(stack)
    mask = stack.mask.unsqueeze(1)                                                    # (K, 1, 1, L)
    for part in objective.chunks(x, copies=K * k):
        n, xs = len(part), shared(stack, part)
        loc, scale = (v.unsqueeze(1) for v in stack.posterior(xs))                   # (K, 1, n, L)
        e = noise(stack, k, n, generator=generator) if eps is None else eps[:, :, start:start + n]
        z = (loc + e * scale) * mask                                                  # (K, k, n, L)
        logits = stack.decode(z.flatten(1, 2)).view(K, k, n, -1)
        log_px_z = -objective.distortion(logits, xs.unsqueeze(1), image_dims=1)
        out.append(objective.iwae_nll(log_px_z, z, loc, scale, mask, sample_dim=1))
        start += n
    return torch.cat(out, dim=1) if out else x.new_zeros(K, 0)


@torch.no_grad()
def test(stack: StackedVAE, images: torch.Tensor, iwae_samples: int, nll_images: int | None = None,
         generator: torch.Generator | None = None) -> list[dict]:
    """BetaVAE.test_results for every member (a list in stack order), over test images shared by
    all; the NLL on the first ``nll_images`` (None: all), as a solo run estimates it."""
    sums = _sums(stack, images, generator, with_latents=True)
    nll_x = images if nll_images is None else images[:nll_images]
    sums.add(nll=iwae_nll(stack, nll_x, iwae_samples, generator=generator).sum(1),
             nll_n=images.new_tensor(float(len(nll_x))))
    metrics = objective.test_metrics(sums.totals)
    kl_per_dim = metrics.pop("kl_per_dim")
    return [{key: float(value[k]) for key, value in metrics.items()}
            | {"kl_per_dim": [float(v) for v in kl_per_dim[k, :size]]}
            for k, size in enumerate(stack.latent_sizes)]
