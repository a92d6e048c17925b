"""The model's maths: KL, loss conventions, IWAE bound, posterior scale."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vae.data.mnist import MNISTDataModule
from vae.models.beta_vae import BetaVAE
from vae.models.networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder

SHAPE = (1, 28, 28)


def make_model(latent_size=4, beta=1.0, reduction="sum", seed=0, conv=False) -> BetaVAE:
    torch.manual_seed(seed)
    enc, dec = (ConvEncoder, ConvDecoder) if conv else (MLPEncoder, MLPDecoder)
    return BetaVAE(enc, dec, data=MNISTDataModule.info, latent_size=latent_size, beta=beta, reduction=reduction)


def binary_images(n=64, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.rand(n, *SHAPE, generator=g) * 0.3, generator=g)


def test_kl_closed_form_matches_monte_carlo():
    torch.manual_seed(0)
    q = Normal(torch.randn(5) * 2, torch.rand(5) * 2 + 0.1)
    p = Normal(torch.zeros(5), torch.ones(5))
    z = q.sample((400_000,))
    log_ratio = q.log_prob(z) - p.log_prob(z)
    mc, stderr = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(z))
    closed = kl_divergence(q, p)
    assert torch.all((mc - closed).abs() < 5 * stderr + 1e-3), (mc, closed, stderr)


def test_model_rate_is_the_closed_form_kl_of_its_posterior():
    model = make_model()
    x = binary_images(16)
    q = model.posterior(x)
    expected = (-0.5 * (1 + 2 * q.scale.log() - q.loc ** 2 - q.scale ** 2)).sum(1)  # textbook formula
    torch.testing.assert_close(model.terms(x)["rate"], expected, rtol=1e-5, atol=1e-5)


def test_mean_and_sum_conventions_agree_through_beta_eff():
    latent, beta = 10, 0.01
    mean_model = make_model(latent, beta=beta, reduction="mean")
    sum_model = make_model(latent, beta=mean_model.beta_eff, reduction="sum")
    assert mean_model.beta_eff == pytest.approx(0.01 * 784 / 10)
    x = binary_images(32)
    torch.manual_seed(1)
    t_mean = mean_model.terms(x)
    torch.manual_seed(1)
    t_sum = sum_model.terms(x)
    loss_mean = mean_model.loss(t_mean["distortion"], t_mean["rate"])
    loss_sum = sum_model.loss(t_sum["distortion"], t_sum["rate"])
    # Same objective up to the constant 1/784, so the same gradients up to that factor.
    torch.testing.assert_close(loss_mean * 784, loss_sum)
    loss_mean.backward()
    loss_sum.backward()
    for p_mean, p_sum in zip(mean_model.parameters(), sum_model.parameters()):
        torch.testing.assert_close(p_mean.grad * 784, p_sum.grad, rtol=1e-4, atol=1e-5)


def test_beta_zero_is_a_plain_autoencoder_loss():
    model = make_model(beta=0.0)
    x = binary_images(8)
    t = model.terms(x)
    assert model.loss(t["distortion"], t["rate"]).item() == pytest.approx(t["distortion"].mean().item())
    assert t["rate"].mean() > 0  # the rate is still measured, only not penalised


def test_iwae_bound_is_above_the_elbo_and_tightens_with_k():
    model = make_model(latent_size=4)
    x = binary_images(256)
    torch.manual_seed(0)
    t = model.terms(x)
    neg_elbo = (t["distortion"] + t["rate"]).mean().item()
    nll = {}
    for k in (1, 10, 100):
        torch.manual_seed(k)
        nll[k] = model.iwae_nll(x, k).mean().item()
    # k=1 is an estimate of −ELBO itself; log p(x) bounds tighten (NLL estimates drop) with k.
    assert nll[1] == pytest.approx(neg_elbo, rel=0.02)
    assert nll[100] < nll[10] < nll[1]
    assert nll[100] < neg_elbo


def test_iwae_in_cache_sized_chunks_keeps_each_image_its_own_estimate(monkeypatch):
    from vae.models import objective
    model = make_model(latent_size=4)
    with torch.no_grad():
        model.decoder.out.bias.fill_(-3.0)  # dark pixels likely: blank and full images now differ
    # alternating blank and full images: their NLLs differ by thousands of nats, so a chunk
    # boundary that mixed or reordered images would show
    x = torch.zeros(64, 1, 28, 28)
    x[1::2] = 1.0
    torch.manual_seed(0)
    whole = model.iwae_nll(x, 32)
    monkeypatch.setattr(objective, "CHUNK_ELEMENTS", 32 * 784 * 5)  # chunks of 5 images
    torch.manual_seed(1)
    chunked = model.iwae_nll(x, 32)
    assert chunked.shape == whole.shape == (64,)
    assert (whole[1::2] - whole[0::2]).min() > 1000
    torch.testing.assert_close(chunked, whole, rtol=0.01, atol=5.0)  # Monte Carlo noise only


def test_posterior_scale_cannot_reach_zero():
    model = make_model()
    with torch.no_grad():
        head = model.encoder.head.linear
        head.weight.zero_()
        head.bias.fill_(-1e4)  # softplus(-1e4) == 0 in float32; the floor must hold
    q = model.posterior(binary_images(4))
    assert torch.all(q.scale > 0)
    assert torch.isfinite(q.log_prob(q.loc)).all()


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "conv"])
def test_networks_map_images_to_posteriors_and_latents_to_image_logits(conv):
    model = make_model(latent_size=3, conv=conv)
    x = binary_images(5)
    q = model.posterior(x)
    assert q.loc.shape == (5, 3) and q.scale.shape == (5, 3)
    assert model.decoder(q.rsample()).shape == (5, *SHAPE)


def test_conv_and_mlp_both_learn_on_a_fixed_batch():
    x = binary_images(64)
    for conv in (False, True):
        model = make_model(latent_size=4, conv=conv)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        losses = []
        for _ in range(30):
            t = model.terms(x)
            loss = model.loss(t["distortion"], t["rate"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.7 * losses[0], (conv, losses[0], losses[-1])
