"""The evaluation path of the Bernoulli likelihood agrees with PyTorch's BCE-with-logits."""

import torch
from torch.nn import functional as F

from vae.models.bernoulli import bernoulli_nll


def test_without_gradients_it_matches_bce_with_logits_on_binary_and_grey_targets():
    torch.manual_seed(0)
    logits = torch.randn(16, 100, 784) * 6           # saturated logits too (|l| up to ~30)
    for x in (torch.bernoulli(torch.rand(100, 784)), torch.rand(100, 784)):
        expected = F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        with torch.no_grad():
            fast = bernoulli_nll(logits, x)
        assert fast.shape == expected.shape
        assert torch.allclose(fast, expected, atol=1e-6, rtol=1e-5)
        # per image, as a run sums it: within 1e-3 nats of hundreds
        assert (fast.sum(-1) - expected.sum(-1)).abs().max() < 1e-3


def test_with_gradients_it_is_bce_with_logits_and_its_gradient():
    logits = torch.randn(8, 784, requires_grad=True)
    x = torch.bernoulli(torch.rand(8, 784))
    bernoulli_nll(logits, x).sum().backward()
    assert torch.allclose(logits.grad, torch.sigmoid(logits.detach()) - x, atol=1e-6)
    with torch.inference_mode():   # Lightning's evaluation loops run here
        assert not torch.is_grad_enabled() and bernoulli_nll(logits.detach(), x).shape == (8, 784)
