"""Two ways to run K β-VAEs as one: the fused engine's hand-stacked layers (``StackedVAE``,
``torch.baddbmm`` per layer) against the library route, ``torch.func.stack_module_state`` +
``vmap(functional_call)`` over the solo model's own networks. Both compute the same loss from
vae/models/objective.py; timed per step (forward + backward of K members), alternating, fastest kept.

    python -m benchmarks.vmap_vs_stack [--members 6] [--steps 50] [--repeats 5]

Why it matters: the issue allowed either; the faster one is kept (BENCHMARKS.md, "One engine").
"""

from __future__ import annotations

import argparse
import copy
import time
from functools import partial

import torch
from torch.func import functional_call, stack_module_state, vmap

from sweeps.fused.stacked_vae import StackedVAE
from vae.data.mnist import MNISTDataModule
from vae.models import objective
from vae.models.beta_vae import BetaVAE
from vae.models.networks import MLPDecoder, MLPEncoder


def members(k: int) -> list[BetaVAE]:
    torch.manual_seed(0)
    return [BetaVAE(MLPEncoder, MLPDecoder, data=MNISTDataModule.info, latent_size=10, beta=0.5,
                    optimizer=partial(torch.optim.Adam, lr=1e-3)) for _ in range(k)]


def vmapped(models: list[BetaVAE]):
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    weights = objective.loss_weights(0.5, "sum", 784, 10)

    def one(p, b, x, eps):
        loc, scale = functional_call(base.encoder, ({k[8:]: v for k, v in p.items() if k.startswith("encoder.")},), (x,))
        z = loc + eps * scale
        logits = functional_call(base.decoder, ({k[8:]: v for k, v in p.items() if k.startswith("decoder.")},), (z,))
        d = objective.distortion(logits, x, image_dims=3)
        r = objective.rate_per_dim(loc, scale).sum(-1)
        return objective.loss(d, r, *weights)

    batched = vmap(one, in_dims=(0, 0, 0, 0))

    def step(x: torch.Tensor, eps: torch.Tensor) -> None:
        for p in params.values():
            p.grad = None
        batched(params, buffers, x, eps).sum().backward()
    return step, list(params.values())


def stacked(models: list[BetaVAE]):
    stack = StackedVAE.from_members(models, [torch.Generator().manual_seed(i) for i in range(len(models))])

    def step(x: torch.Tensor, eps: torch.Tensor) -> None:
        stack.zero_grad(set_to_none=True)
        t = stack.terms(x, eps=eps)
        stack.loss(t["distortion"], t["rate"]).sum().backward()
    return step, list(stack.parameters())


def time_steps(step, xs, eps) -> float:
    started = time.perf_counter()
    for x, e in zip(xs, eps):
        step(x, e)
    return (time.perf_counter() - started) / len(xs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=6)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    k = args.members
    g = torch.Generator().manual_seed(0)
    xs = [torch.bernoulli(torch.rand(k, 64, 1, 28, 28, generator=g) * 0.3, generator=g) for _ in range(args.steps)]
    eps = [torch.randn(k, 64, 10, generator=g) for _ in range(args.steps)]
    vm_step, _ = vmapped(members(k))
    st_step, _ = stacked(members(k))
    best = {"vmap": float("inf"), "stacked": float("inf")}
    for _ in range(args.repeats):
        best["vmap"] = min(best["vmap"], time_steps(vm_step, xs, eps))
        best["stacked"] = min(best["stacked"], time_steps(st_step, xs, eps))
    print(f"K={k}, one thread, forward+backward per step (fastest of {args.repeats} x {args.steps} steps):")
    for name, seconds in best.items():
        print(f"  {name:8s} {seconds * 1e3:7.2f} ms")
    print(f"  vmap / stacked: {best['vmap'] / best['stacked']:.2f}x")


if __name__ == "__main__":
    main()
