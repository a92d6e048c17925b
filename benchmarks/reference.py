"""The lean reference every benchmark compares against: the seed model trained by a plain PyTorch
loop written for speed, and its test −ELBO. One copy, imported by speed.py, fused.py and
fused_sweeps.py.

The same networks as the project (vae.models.networks), the training tensor sliced in place,
dynamic binarisation, the explicit KL formula, Adam 1e-3. It uses the RNG in the project's order
(initialisation, data order, binarisation, reparameterisation), so that with the same seed the
project and the reference train on the same data in the same order.
"""

from __future__ import annotations

import time

import torch
from torch.nn import functional as F

from vae.models.networks import MLPDecoder, MLPEncoder

SHAPE = (1, 28, 28)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lean_training(train_x: torch.Tensor, steps: int, latent_size: int = 10, beta: float = 1.0,
                  seed: int = 0, batch_size: int = 64, fused_adam: bool = False):
    """One model trained on ``train_x``'s device (floats in [0, 1]). Returns (seconds, encoder,
    decoder). ``fused_adam``: Adam's one-kernel step (for context in benchmarks/fused.py)."""
    device = train_x.device
    torch.manual_seed(seed)
    encoder, decoder = MLPEncoder(SHAPE, latent_size).to(device), MLPDecoder(SHAPE, latent_size).to(device)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-3,
                                 fused=True if fused_adam else None)
    per_pass = len(train_x) // batch_size
    sync(device)
    started = time.perf_counter()
    for step in range(steps):
        if step % per_pass == 0:   # pass p is shuffled with seed + p, as TensorBatches does
            generator = torch.Generator().manual_seed(seed + step // per_pass)
            order = torch.randperm(len(train_x), generator=generator).to(device)
        i = step % per_pass
        x = torch.bernoulli(train_x[order[i * batch_size:(i + 1) * batch_size]])
        loc, scale = encoder(x)
        z = loc + scale * torch.randn_like(loc)
        distortion = F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").flatten(1).sum(1)
        rate = 0.5 * (loc ** 2 + scale ** 2 - 1 - 2 * scale.log()).sum(1)
        loss = (distortion + beta * rate).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - started, encoder, decoder


@torch.no_grad()
def test_neg_elbo(encoder, decoder, test_x: torch.Tensor, seed: int = 0) -> float:
    """−ELBO in nats per image on the (binarised) test set, one reparameterised sample."""
    torch.manual_seed(seed)
    loc, scale = encoder(test_x)
    z = loc + scale * torch.randn_like(loc)
    distortion = F.binary_cross_entropy_with_logits(decoder(z), test_x, reduction="none").flatten(1).sum(1)
    rate = 0.5 * (loc ** 2 + scale ** 2 - 1 - 2 * scale.log()).sum(1)
    return float((distortion + rate).mean())
