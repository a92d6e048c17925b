"""The fused engine (sweeps/fused/stacked_vae.py, member_batches.py): each member of a stack is the
solo model it was built from — same loss, gradients, updates, data order — and leaves no trace
on the others when it diverges or is pruned."""

import lightning as L
import pytest
from functools import partial

import torch

from vae.data.mnist import MNISTDataModule
from vae.data.batches import TensorBatches
from vae.models.beta_vae import BetaVAE
from vae.models.networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from sweeps.fused.member_batches import MemberBatches, member_generator
from sweeps.fused import stacked_evaluation as evaluation   # (its `test` is no pytest test)
from sweeps.fused.stackable import stack_key
from sweeps.fused.stacked_vae import StackedVAE

MNIST_INFO = MNISTDataModule.info
SHAPE = (1, 28, 28)
# (latent size, β, reduction, lr, gradient clip): both latent sizes of the used-by sweep, both
# loss conventions, a learning rate off Adam's default, and a member whose gradients get clipped.
MEMBERS = [(2, 1.0, "sum", 1e-3, None), (10, 0.01, "mean", 3e-4, None),
           (2, 4.0, "mean", 2e-3, None), (10, 0.0, "sum", 1e-3, 5.0)]


def solo(latent, beta, reduction="sum", lr=1e-3, clip=None, seed=0) -> BetaVAE:
    torch.manual_seed(seed)
    return BetaVAE(MLPEncoder, MLPDecoder, data=MNIST_INFO, latent_size=latent, beta=beta,
                   reduction=reduction, optimizer=partial(torch.optim.Adam, lr=lr), gradient_clip_val=clip)


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def binary_images(*shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.rand(*shape, *SHAPE, generator=g) * 0.4, generator=g)


@pytest.fixture(scope="module")
def mnist(data_dir):
    data = MNISTDataModule(data_dir=str(data_dir), batch_size=64, val_size=1000, train_subset=4000,
                           download=False)
    data.setup()
    return data


def test_padded_members_compute_their_solo_loss_gradients_and_updates():
    models = [solo(*m, seed=k) for k, m in enumerate(MEMBERS)]
    stack = StackedVAE.from_members(models, generators([100, 101, 102, 103]))
    optimizers = [torch.optim.Adam(m.parameters(), lr=m.lr) for m in models]
    rng_states = []                     # each solo model's global generator, seeded as its member's
    for k in range(len(models)):
        torch.manual_seed(100 + k)
        rng_states.append(torch.get_rng_state())
    for step in range(3):
        x = binary_images(len(models), 32, seed=step)
        result = stack.train_step(x)            # noise: each member's generator
        for k, (model, optimizer) in enumerate(zip(models, optimizers)):
            torch.set_rng_state(rng_states[k])
            st = model.terms(x[k])
            rng_states[k] = torch.get_rng_state()
            solo_loss = model.loss(st["distortion"], st["rate"])
            optimizer.zero_grad()
            solo_loss.backward()
            if model.gradient_clip_val:          # as Lightning's clip_gradients(..., "norm")
                assert torch.nn.utils.clip_grad_norm_(model.parameters(), model.gradient_clip_val) > 5.0
            optimizer.step()
            torch.testing.assert_close(result.loss[k], solo_loss.detach(), rtol=1e-6, atol=0)
            # Gradients (after clipping) to float rounding; parameters after Adam's steps to 1% of
            # a step: Adam divides by √v, so a gradient at rounding level can move its update by that.
            stacked_state = stack.member_state_dict(k)
            for stacked_grad, (name, p) in zip(stack.member_gradients(k), model.named_parameters()):
                torch.testing.assert_close(stacked_grad, p.grad, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")
                torch.testing.assert_close(stacked_state[name], p.detach(), rtol=0, atol=1e-2 * model.lr,
                                           msg=lambda m: f"{name}: {m}")
        # Padded units of a latent-2 member (stack latent 10): zero gradient, so never moved.
        head, first_decoder = stack.n_enc - 1, stack.n_enc
        assert stack.weights[head].grad[0][:, 2:10].abs().max() == 0
        assert stack.weights[head].grad[0][:, 12:].abs().max() == 0
        assert stack.weights[first_decoder].grad[0][2:].abs().max() == 0
    assert stack.weights[head][0][:, 2:10].abs().max() == 0
    assert stack.weights[first_decoder][2][2:].abs().max() == 0


def test_member_checkpoints_load_into_solo_models_and_a_stack_resumes_from_them_exactly():
    models = [solo(*m, seed=k) for k, m in enumerate(MEMBERS)]
    stack = StackedVAE.from_members(models, generators(range(4)))
    batches = MemberBatches(binary_images(200), 16, seeds=range(4), generators=stack.generators)
    for step in range(3):
        stack.train_step(batches.batch(step))
    x = binary_images(8, seed=5)
    loc, scale = stack.posterior(evaluation.shared(stack, x))
    z = torch.randn(4, 8, stack.max_latent) * stack.mask
    logits = stack.decode(z)
    restored, optimizer_states = [], []
    for k, (latent, beta, reduction, lr, clip) in enumerate(MEMBERS):
        member = solo(latent, beta, reduction, lr, clip, seed=99)      # other initial weights
        member.load_state_dict(stack.member_state_dict(k))              # strict: every key, every shape
        q = member.posterior(x)
        torch.testing.assert_close(q.loc, loc[k, :, :latent])
        torch.testing.assert_close(q.scale, scale[k, :, :latent])
        torch.testing.assert_close(member.decoder(z[k, :, :latent]).flatten(1), logits[k])
        # Adam's state loads into the solo optimiser the model would have, and stacks back.
        optimizer = torch.optim.Adam(member.parameters(), lr=lr)
        optimizer.load_state_dict(stack.member_optimizer_state_dict(k))
        restored.append(member)
        optimizer_states.append(optimizer.state_dict())
    # Resume, as after a kill: solo checkpoints, the generators' states, the step to continue at.
    resumed_generators = [torch.Generator().set_state(g.get_state()) for g in stack.generators]
    again = StackedVAE.from_members(restored, resumed_generators, optimizer_states=optimizer_states)
    again_batches = MemberBatches(binary_images(200), 16, seeds=range(4), generators=resumed_generators)
    for step in range(3, 6):
        stack.train_step(batches.batch(step))
        again.train_step(again_batches.batch(step))
    for a, b in zip(stack.parameters(), again.parameters()):
        assert torch.equal(a, b)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(stack.optimizer.state[a][key], again.optimizer.state[b][key])


def test_each_member_sees_its_solo_runs_batches_in_order(mnist):
    train_x = mnist.split("train").images
    seeds = [0, 7, 123]
    mnist.batches_per_fetch = 4     # the solo stream is the same whatever the group size
    solo_batches = {}
    for seed in seeds:
        L.seed_everything(seed, verbose=False)
        stream = mnist.train_dataloader()        # the datamodule's own TensorBatches, seeded as in a run
        # Three Lightning epochs of groups of 4 batches, as Lightning iterates the dataloader.
        solo_batches[seed] = torch.cat([x for _ in range(3) for x, _ in stream]).split(64)
    steps = len(solo_batches[0])                 # > 2 passes of 62 batches: crosses pass boundaries
    assert steps > 2 * (len(train_x) // 64)
    batches = MemberBatches(train_x, 64, seeds, generators=generators(seeds), binarize=False, prefetch=16)
    for step in range(steps):
        x = batches.batch(step)
        for k, seed in enumerate(seeds):
            assert torch.equal(x[k], solo_batches[seed][step]), (seed, step)
    # Dynamic binarisation: a member's own generator, as the solo run's global one.
    binarized = MemberBatches(train_x, 64, seeds, generators=generators([5, 6, 7]))
    fused = [binarized.batch(step) for step in range(3)]
    for k, seed in enumerate(seeds):
        torch.manual_seed(5 + k)
        for step in range(3):
            assert torch.equal(fused[step][k], torch.bernoulli(solo_batches[seed][step]))


def test_a_diverged_member_is_removed_and_the_others_continue_bit_identically():
    images = binary_images(300)
    members = [solo(*m, seed=k) for k, m in enumerate(MEMBERS[:3])]

    def stack_of(ids):
        # The same padded latent size (10) with or without member 1: it sets the matrix shapes.
        stack = StackedVAE.from_members([members[i] for i in ids], generators([10 + i for i in ids]),
                                        member_ids=ids, padded_latent=10)
        return stack, MemberBatches(images, 32, seeds=ids, generators=stack.generators)

    (full, full_batches), (without, without_batches) = stack_of([0, 1, 2]), stack_of([0, 2])
    for step in range(12):
        if step == 4:                            # member 1 diverges: a non-finite weight
            with torch.no_grad():
                full.weights[0][1, 0, 0] = float("inf")
        if step == 8:                            # member 2 is pruned in both
            full.remove_members([0])
            full_batches.remove_members([0])
            without.remove_members([0])
            without_batches.remove_members([0])
        result = full.train_step(full_batches.batch(step))
        if step == 4:
            assert result.finite.tolist() == [True, False, True] and result.diverged == [1]
            full_batches.remove_members(result.kept)
        else:
            assert bool(result.finite.all()) and result.diverged == [] and result.kept is None
        without.train_step(without_batches.batch(step))
    assert full.member_ids == without.member_ids == [0]
    for a, b in zip(full.parameters(), without.parameters()):
        assert torch.equal(a, b)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(full.optimizer.state[a][key], without.optimizer.state[b][key])


def test_a_group_generator_draws_once_for_all_members_and_a_stack_can_empty():
    stack = StackedVAE.from_members([solo(*m, seed=k) for k, m in enumerate(MEMBERS[:3])],
                                    torch.Generator().manual_seed(0))
    batches = MemberBatches(binary_images(100), 16, seeds=range(3), generators=stack.group_generator)
    replica = torch.Generator().set_state(stack.group_generator.get_state())
    assert torch.equal(stack.member_noise(5), torch.randn(3, 5, 10, generator=replica))
    for step in range(2):
        assert bool(stack.train_step(batches.batch(step)).finite.all())
    with torch.no_grad():
        stack.weights[0][:, 0, 0] = float("nan")      # every member diverges
    result = stack.train_step(batches.batch(2))
    batches.remove_members(result.kept)
    assert result.diverged == [0, 1, 2] and len(stack) == 0 and len(batches) == 0
    assert stack.train_step(batches.batch(3)).loss.shape == (0,)


def test_batched_evaluation_equals_each_members_solo_evaluation(monkeypatch):
    models = [solo(*m, seed=k) for k, m in enumerate(MEMBERS)]
    stack = StackedVAE.from_members(models, generators(range(4)))
    x, k_samples = binary_images(24, seed=3), 5
    eps = torch.randn(4, k_samples, 24, stack.max_latent)
    nll = evaluation.iwae_nll(stack, x, k_samples, eps=eps)
    metrics = evaluation.validate(stack, x)
    for k, model in enumerate(models):
        latent = model.latent_size
        # The solo model's own IWAE code, its posterior samples taken from the same noise.
        monkeypatch.setattr(torch.distributions.Normal, "sample",
                            lambda q, shape=(): q.loc + eps[k, :, :, :latent] * q.scale)
        torch.testing.assert_close(nll[k], model.iwae_nll(x, k_samples), rtol=1e-5, atol=1e-4)
        monkeypatch.undo()
        # Validation's rate is the closed-form KL of the posterior: no noise in it.
        torch.testing.assert_close(metrics["val/rate"][k], model.terms(x)["rate"].mean(), rtol=1e-5, atol=1e-5)
    assert metrics["val/neg_elbo"].shape == (4,)


def test_members_of_different_architectures_are_refused():
    conv = BetaVAE(ConvEncoder, ConvDecoder, data=MNIST_INFO, latent_size=2)
    assert stack_key(conv) is None
    assert stack_key(solo(2, 0.0, "mean", lr=1e-4)) == stack_key(solo(10, 1.0)) is not None
    with pytest.raises(ValueError, match="MLPEncoder"):
        StackedVAE.from_members([solo(2, 1.0), conv], generators([0, 1]))
    wider = BetaVAE(partial(MLPEncoder, hidden_sizes=(200, 100)), MLPDecoder, data=MNIST_INFO, latent_size=2)
    assert stack_key(wider) != stack_key(solo(2, 1.0))
    with pytest.raises(ValueError, match="more than the latent size"):
        StackedVAE.from_members([solo(2, 1.0), wider], generators([0, 1]))


def lean_solo_training(model: BetaVAE, train_x: torch.Tensor, seed: int, steps: int) -> None:
    """A solo run without Lightning: the model's own loss, its data stream, its global RNG."""
    stream = TensorBatches(train_x, None, 64, shuffle=True, seed=seed, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=model.lr)
    for step in range(steps):
        x = torch.bernoulli(train_x[stream.stream_rows(step, 1)])
        t = model.terms(x)
        loss = model.loss(t["distortion"], t["rate"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.slow   # 300 steps of four members, fused and solo: the fused path's quality check
def test_fused_members_reach_their_solo_test_elbo(mnist):
    """Quality at a small budget: each member's test −ELBO within 2% of the same config trained
    solo, over several seeds; both evaluated by the solo model's code on the same test images."""
    train_x, test_x = mnist.split("train").images, mnist.split("test").images[:1000]
    configs = [(2, 1.0, "sum", 0), (10, 1.0, "sum", 1), (10, 0.01, "mean", 2), (2, 0.01, "mean", 3)]
    steps = 300
    models, noise = [], []
    for latent, beta, reduction, seed in configs:
        L.seed_everything(seed, verbose=False)
        models.append(solo(latent, beta, reduction, seed=seed))
        noise.append(member_generator())          # the RNG stream the solo run trains with
    stack = StackedVAE.from_members(models, noise)
    batches = MemberBatches(train_x, 64, seeds=[c[3] for c in configs], generators=noise)
    for step in range(steps):
        stack.train_step(batches.batch(step))
    fused_results = evaluation.test(stack, test_x, iwae_samples=2)

    def neg_elbo(model):
        torch.manual_seed(0)
        with torch.no_grad():
            t = model.terms(test_x)
        return float((t["distortion"] + t["rate"]).mean())

    for k, (latent, beta, reduction, seed) in enumerate(configs):
        fused = solo(latent, beta, reduction, seed=99)
        fused.load_state_dict(stack.member_state_dict(k))
        L.seed_everything(seed, verbose=False)
        alone = solo(latent, beta, reduction, seed=seed)
        lean_solo_training(alone, train_x, seed, steps)
        fused_elbo, solo_elbo = neg_elbo(fused), neg_elbo(alone)
        assert abs(fused_elbo - solo_elbo) <= 0.02 * solo_elbo, (configs[k], fused_elbo, solo_elbo)
        # The stack's own batched test metrics agree with the solo evaluation of the same weights
        # (different noise: within Monte Carlo error of a one-sample −ELBO on 1000 images).
        assert fused_results[k]["neg_elbo"] == pytest.approx(fused_elbo, rel=0.01)
        assert fused_results[k]["nll_iwae"] <= fused_results[k]["neg_elbo"] + 1   # a tighter bound
        assert len(fused_results[k]["kl_per_dim"]) == latent
