"""Fused training (sweeps/fused/stacked_vae.py) against the same trainings one after another, as
ratios measured in one run.

    python -m benchmarks.fused            # every case, ~7 min on 2 busy cores
    python -m benchmarks.fused --quick    # a few steps of each: checks the script, numbers mean nothing

Cases (batch 64, Adam 1e-3, the seed MLP [100, 100], real MNIST training images, dynamically binarised):
- threads: the two stacks below on 1 torch thread vs all usable cores, a quarter of their steps
  each, to choose the fused default; the faster runs the next two cases.
- used-by: K=6 members (β 0/0.01/1 × latent 2/10), 1024 steps: one stack vs six lean loops one after
  another on one thread; and each member's test −ELBO against its lean loop's.
- grid64: K=64 members (8 β × 8 latent sizes), 256 steps: one stack vs 64 lean loops (target ≥ 3×).
- gpu (only when CUDA is available): K = 1, 16, 64, 256 members, member-steps per second of one
  stack against one lean loop on the same GPU.

The reference is a lean loop, not this project's code: the same networks (vae.models.networks), the
training tensor sliced in place, explicit KL formula, one torch thread (benchmarks/speed.py's
lean_training, on the data's device). It uses the RNG in a solo run's order, and each member draws from
a generator continuing its solo RNG (member_generator), so each member trains on the same data and
noise as its lean loop. Nothing here asserts a time: it reports. On a shared machine the numbers
move with the other processes' load; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import time

from functools import partial

import torch

from vae.config import PROJECT_ROOT
from vae.data.mnist import MNISTDataModule
from vae.data.mnist_files import ensure_mnist
from vae.models.beta_vae import BetaVAE
from vae.models.networks import MLPDecoder, MLPEncoder
from sweeps.fused.member_batches import MemberBatches, member_generator
from sweeps.fused.fused_launcher import usable_cores
from sweeps.fused.stacked_vae import StackedVAE
from benchmarks.reference import lean_training, sync, test_neg_elbo

MNIST_INFO = MNISTDataModule.info
ADAM = partial(torch.optim.Adam, lr=1e-3)   # the seed model's optimiser
BATCH = 64
USED_BY = [(beta, latent) for beta in (0.0, 0.01, 1.0) for latent in (2, 10)]
GRID_BETAS = (0.0, 0.001, 0.01, 0.1, 0.3, 1.0, 2.0, 4.0)
GRID_LATENTS = (2, 4, 6, 8, 10, 12, 16, 20)
GRID = [(beta, latent) for beta in GRID_BETAS for latent in GRID_LATENTS]


def sequential(train_x: torch.Tensor, members: list[tuple[float, int]], steps: int, fused_adam: bool = False):
    """The members' lean trainings one after another on one thread: (seconds, [(encoder, decoder)])."""
    torch.set_num_threads(1)
    runs = [lean_training(train_x, steps, latent, beta, seed, fused_adam=fused_adam)
            for seed, (beta, latent) in enumerate(members)]
    return sum(r[0] for r in runs), [(r[1], r[2]) for r in runs]


# --- this project's side: one stack ----------------------------------------------------------
def fused_training(train_x: torch.Tensor, members: list[tuple[float, int]], steps: int, threads: int):
    """The members as one stack, built as a launcher would build it. Returns (seconds, stack)."""
    device = train_x.device
    torch.set_num_threads(threads)
    models, generators = [], []
    for seed, (beta, latent) in enumerate(members):
        torch.manual_seed(seed)
        models.append(BetaVAE(MLPEncoder, MLPDecoder, data=MNIST_INFO, latent_size=latent, beta=beta, optimizer=ADAM))
        generators.append(member_generator(device))    # the RNG stream its solo run trains with
    stack = StackedVAE.from_members(models, generators, device=device)
    batches = MemberBatches(train_x, BATCH, seeds=range(len(members)), generators=generators)
    sync(device)
    started = time.perf_counter()
    for step in range(steps):
        result = stack.train_step(batches.batch(step))
        if result.kept is not None:
            batches.remove_members(result.kept)
    sync(device)
    return time.perf_counter() - started, stack


def member_networks(stack: StackedVAE, k: int, beta: float, latent: int):
    model = BetaVAE(MLPEncoder, MLPDecoder, data=MNIST_INFO, latent_size=latent, beta=beta, optimizer=ADAM)
    model.load_state_dict(stack.member_state_dict(k))
    return model.encoder, model.decoder


# --- the cases -------------------------------------------------------------------------------
def thread_probe(train_x, members: list[tuple[float, int]], steps: int) -> tuple[int, str]:
    """The stack's torch threads, 1 vs all usable cores, on the same steps: (the faster, a line)."""
    cores = usable_cores()
    if cores == 1:
        return 1, f"threads  K={len(members)}: one usable core"
    times = {n: fused_training(train_x, members, steps, n)[0] for n in (1, cores)}
    best = min(times, key=times.get)
    return best, (f"threads  K={len(members)} × {steps} steps: 1 thread {times[1]:.2f} s, {cores} threads "
                  f"{times[cores]:.2f} s: {cores} threads take {times[cores] / times[1]:.2f}× the time; "
                  f"the faster, {best}, runs the cases below")


def cpu_cases(train_x, test_x, steps_used_by: int, steps_grid: int) -> list[str]:
    lines = []
    threads_small, line = thread_probe(train_x, USED_BY, steps_used_by // 4)
    lines.append(line)
    threads_large, line = thread_probe(train_x, GRID, steps_grid // 4)
    lines.append(line)

    lean_time, lean_nets = sequential(train_x, USED_BY, steps_used_by)
    lean_fused_adam = sequential(train_x, USED_BY, steps_used_by, fused_adam=True)[0]
    fused_time, stack = fused_training(train_x, USED_BY, steps_used_by, threads_small)
    lines.append(f"used-by  K=6 × {steps_used_by} steps: fused ({threads_small} thread(s)) {fused_time:.2f} s, "
                 f"six lean loops one after another (1 thread) {lean_time:.2f} s: fused takes "
                 f"{fused_time / lean_time:.2f}× the time (target ≤ 0.8×), speed-up {lean_time / fused_time:.2f}×")
    lines.append(f"  context: the six lean loops with Adam(fused=True) take {lean_fused_adam:.2f} s "
                 f"(fused stack: {lean_fused_adam / fused_time:.2f}× faster than those)")
    worst = 0.0
    for k, (beta, latent) in enumerate(USED_BY):
        fused_elbo = test_neg_elbo(*member_networks(stack, k, beta, latent), test_x)
        lean_elbo = test_neg_elbo(*lean_nets[k], test_x)
        worst = max(worst, abs(fused_elbo - lean_elbo) / lean_elbo)
        lines.append(f"  β={beta:<5} latent={latent:<2}: test −ELBO fused {fused_elbo:.2f}, lean {lean_elbo:.2f} nats")
    lines.append(f"  largest relative −ELBO difference: {100 * worst:.2f}% (target ≤ 2%)")

    grid_lean = sequential(train_x, GRID, steps_grid)[0]
    grid_fused = fused_training(train_x, GRID, steps_grid, threads_large)[0]
    lines.append(f"grid64   K=64 × {steps_grid} steps: fused ({threads_large} thread(s)) {grid_fused:.2f} s, "
                 f"64 lean loops one after another (1 thread) {grid_lean:.2f} s: speed-up "
                 f"{grid_lean / grid_fused:.2f}× (target ≥ 3×)")
    return lines


def gpu_cases(train_x, steps: int) -> list[str]:
    device = torch.device("cuda")
    x = train_x.to(device)
    lean_time = sum(lean_training(x, steps, latent, beta, seed)[0] for seed, (beta, latent) in enumerate(GRID[:4]))
    lean_rate = 4 * steps / lean_time
    lines = [f"gpu      {torch.cuda.get_device_name(device)}: one lean loop {lean_rate:.0f} steps/s"]
    for k in (1, 16, 64, 256):
        members = [GRID[i % len(GRID)] for i in range(k)]
        fused_time = fused_training(x, members, steps, 1)[0]
        rate = k * steps / fused_time
        lines.append(f"  K={k:<3}: {rate:.0f} member-steps/s, {rate / lean_rate:.2f}× sequential")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of each case (checks the script)")
    args = parser.parse_args()
    steps_used_by, steps_grid = (16, 8) if args.quick else (1024, 256)
    started = time.perf_counter()
    ensure_mnist(PROJECT_ROOT / "data", download=False)
    data = MNISTDataModule(data_dir=str(PROJECT_ROOT / "data"), download=False)
    data.setup()
    train_x, test_x = data.split("train").images, data.split("test").images
    torch.set_num_threads(1)
    lean_training(train_x, 64, 10, 1.0, 0)                            # warm-up: first-call costs
    fused_training(train_x, USED_BY, 16, usable_cores())
    lines = cpu_cases(train_x, test_x, steps_used_by, steps_grid)
    if torch.cuda.is_available():
        lines += gpu_cases(train_x, 32 if args.quick else 200)
    print(f"torch {torch.__version__}, {usable_cores()} usable cores, batch {BATCH}")
    print("\n".join(lines))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}, benchmark wall time "
          f"{time.perf_counter() - started:.0f} s (a shared machine: numbers move with others' load)")


if __name__ == "__main__":
    main()
