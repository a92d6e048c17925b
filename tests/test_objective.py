"""The β-VAE's objective is written once (vae/models/objective.py): the solo model, the template
and the fused stack get their loss and evaluation numbers from the same functions."""

from functools import partial

import pytest
import torch

from sweeps.fused import stacked_evaluation
from sweeps.fused.stacked_vae import StackedVAE
from vae.data.mnist import MNISTDataModule
from vae.models import objective
from vae.models.beta_vae import BetaVAE
from vae.models.networks import MLPDecoder, MLPEncoder
from vae.models.simple_vae import SimpleVAE

INFO = MNISTDataModule.info


def images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.rand(n, 1, 28, 28, generator=g) * 0.4, generator=g)


def test_loss_weights_and_beta_eff_follow_the_two_conventions():
    assert objective.loss_weights(0.5, "sum", 784, 10) == (1.0, 0.5)
    assert objective.loss_weights(0.01, "mean", 784, 10) == pytest.approx((1 / 784, 0.001))
    # the seed notebook's β=0.01 (mean) is β_eff = 0.01·784/10 = 0.784 nats-per-image
    assert objective.beta_eff(0.01, "mean", 784, 10) == pytest.approx(0.784)
    d, r = torch.tensor([100.0, 120.0]), torch.tensor([10.0, 20.0])
    # mean convention: mean over pixels of the BCE + β·mean over dims of the KL
    assert float(objective.loss(d, r, *objective.loss_weights(0.01, "mean", 784, 10))) == pytest.approx(110 / 784 + 0.01 * 15 / 10)
    with pytest.raises(ValueError, match="reduction"):
        objective.loss_weights(1.0, "max", 784, 10)


def test_evaluation_sums_with_a_member_axis_equal_each_members_own():
    g = torch.Generator().manual_seed(0)
    terms = {"distortion": torch.rand(3, 50, generator=g) * 100, "rate": torch.rand(3, 50, generator=g),
             "loc": torch.randn(3, 50, 4, generator=g), "kl_per_dim": torch.rand(3, 50, 4, generator=g)}
    stacked = objective.EvaluationSums()
    stacked.add_terms(terms, with_latents=True)
    stacked.add(nll=terms["distortion"].sum(-1), nll_n=torch.tensor(50.0))
    together = objective.test_metrics(stacked.totals)
    for k in range(3):
        alone = objective.EvaluationSums()
        alone.add_terms({key: v[k] for key, v in terms.items()}, with_latents=True)
        alone.add(nll=terms["distortion"][k].sum(), nll_n=torch.tensor(50.0))
        for key, value in objective.test_metrics(alone.totals).items():
            torch.testing.assert_close(together[key][k], value)
    assert float(together["neg_elbo"][1]) == pytest.approx(float(terms["distortion"][1].mean() + terms["rate"][1].mean()))


def test_the_rate_is_torch_distributions_kl_to_the_standard_normal_with_its_gradients():
    from torch.distributions import Normal, kl_divergence

    g = torch.Generator().manual_seed(0)
    loc = (torch.randn(3, 64, 10, generator=g) * 3).requires_grad_()
    scale = torch.rand(3, 64, 10, generator=g).mul(4).add(1e-3).requires_grad_()
    ours = objective.rate_per_dim(loc, scale)
    theirs = kl_divergence(Normal(loc, scale), Normal(0.0, 1.0))
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), (loc, scale)),
                               torch.autograd.grad(theirs.sum(), (loc, scale)))
    mask = torch.tensor([1.0] * 7 + [0.0] * 3)
    assert objective.rate_per_dim(loc, scale, mask)[..., 7:].abs().max() == 0


@pytest.fixture
def calls(monkeypatch):
    """Every call of the objective's functions, by name (each still computes as written)."""
    seen: list[str] = []
    for name in ("loss", "rate_per_dim", "distortion", "iwae_nll", "validation_metrics", "test_metrics"):
        original = getattr(objective, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            seen.append(_name)
            return _original(*args, **kwargs)
        monkeypatch.setattr(objective, name, spy)
    return seen


def test_the_solo_model_and_the_fused_stack_get_their_numbers_from_the_objective(calls):
    torch.manual_seed(0)
    model = BetaVAE(MLPEncoder, MLPDecoder, data=INFO, latent_size=4, beta=0.5,
                    optimizer=partial(torch.optim.Adam, lr=1e-3))
    x = images(16)
    solo_loss, _ = model.training_loss((x, None), step=0)
    solo_calls = set(calls)
    calls.clear()
    stack = StackedVAE.from_members([model], [torch.Generator().manual_seed(0)])
    stack.train_step(x.unsqueeze(0))
    stacked_evaluation.validate(stack, x)
    stacked_evaluation.test(stack, x, iwae_samples=2)
    assert {"loss", "rate_per_dim", "distortion"} <= solo_calls
    assert {"loss", "rate_per_dim", "distortion", "iwae_nll", "validation_metrics", "test_metrics"} <= set(calls)


def test_a_changed_loss_formula_reaches_both_paths(monkeypatch):
    # The trial edit of the issue, as a test: change the one formula, and both paths move with it.
    torch.manual_seed(0)
    model = BetaVAE(MLPEncoder, MLPDecoder, data=INFO, latent_size=4, beta=0.5,
                    optimizer=partial(torch.optim.Adam, lr=1e-3))
    stack = StackedVAE.from_members([model], [torch.Generator().manual_seed(0)])
    x = images(16)
    torch.manual_seed(1)
    before_solo, _ = model.training_loss((x, None), step=0)
    before_stack = stack.loss(torch.full((1, 16), 100.0), torch.full((1, 16), 10.0))
    monkeypatch.setattr(objective, "loss", lambda d, r, a, c: 2 * (a * d.mean(-1) + c * r.mean(-1)))
    torch.manual_seed(1)
    after_solo, _ = model.training_loss((x, None), step=0)
    after_stack = stack.loss(torch.full((1, 16), 100.0), torch.full((1, 16), 10.0))
    torch.testing.assert_close(after_solo, 2 * before_solo)
    torch.testing.assert_close(after_stack, 2 * before_stack)
    assert float(before_stack) == pytest.approx(100 + 0.5 * 10)


def test_the_template_model_uses_the_same_objective(calls):
    model = SimpleVAE(MLPEncoder, MLPDecoder, data=INFO, latent_size=3)
    model.terms(images(8))
    assert {"rate_per_dim", "distortion"} <= set(calls)


def test_the_solo_loss_is_the_mean_of_distortion_plus_beta_rate():
    torch.manual_seed(0)
    model = BetaVAE(MLPEncoder, MLPDecoder, data=INFO, latent_size=4, beta=0.5)
    x = images(16)
    torch.manual_seed(1)
    loss, logged = model.training_loss((x, None), step=0)
    torch.manual_seed(1)
    t = model.terms(x)                       # the same noise: the same per-image terms
    torch.testing.assert_close(loss, (t["distortion"] + 0.5 * t["rate"]).mean())
    torch.testing.assert_close(logged["train/rate"], t["rate"].mean())
