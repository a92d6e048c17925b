"""The device check: fused training on one GPU, every number from one run, in under 5 minutes.

    python -m benchmarks.gpu_check            # on a machine with a CUDA GPU (~3 min on one)
    python -m benchmarks.gpu_check --quick    # a few steps of each part: checks the script

Prints, on the first visible GPU:
- throughput: one stack of K = 1, 16, 64, 256 seed MLPs (benchmarks/fused.py's fused_training)
  against K lean solo trainings one after another on the same GPU (benchmarks/reference.py), in
  member-steps per second (target at K=64: ≥ 20×), and each stack's peak GPU memory per member;
- accuracy: the used-by members (β 0/0.01/1 × latent 2/10) trained as one stack against each trained
  solo with the same seed and data, test −ELBO (target: within 2%);
- the used-by sweep as a user runs it, ``trainer=gpu hydra/launcher=fused`` against
  ``trainer=gpu hydra/launcher=basic`` (one job at a time), wall time of each command
  (benchmarks/fused_sweeps.py's sweep; target: fused ≥ 3× faster).
Without a GPU it prints one line and exits with 2. Nothing asserts a time: it reports.
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps of each part (checks the script)")
    opts = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("error: benchmarks/gpu_check.py needs a CUDA GPU and torch sees none here "
              f"(torch {torch.__version__}, CUDA_VISIBLE_DEVICES unset or empty?); run it on a GPU machine",
              file=sys.stderr)
        return 2
    started = time.perf_counter()
    device = torch.device("cuda")
    lines = [f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"]
    train_x, test_x = mnist(device)
    steps, solo_steps, accuracy_steps = (16, 8, 32) if opts.quick else (200, 50, 1024)
    lines += throughput(train_x, steps, solo_steps)
    lines += accuracy(train_x, test_x, accuracy_steps)
    lines += sweeps(64 if opts.quick else 1024)
    lines.append(f"gpu_check wall time {time.perf_counter() - started:.0f} s")
    print("\n".join(lines))
    return 0


def mnist(device):
    from vae.config import PROJECT_ROOT
    from vae.data.mnist import MNISTDataModule
    from vae.data.mnist_files import ensure_mnist

    ensure_mnist(PROJECT_ROOT / "data", download=False)
    data = MNISTDataModule(data_dir=str(PROJECT_ROOT / "data"), download=False)
    data.setup()
    return data.split("train").images.to(device), data.split("test").images.to(device)


def throughput(train_x, steps: int, solo_steps: int) -> list[str]:
    import torch

    from benchmarks.fused import GRID, fused_training
    from benchmarks.reference import lean_training

    lean_training(train_x, 16)                       # warm-up: CUDA context, kernels, cuBLAS
    fused_training(train_x, GRID[:4], 16, 1)
    lines = []
    for k in (1, 16, 64, 256):
        members = [GRID[i % len(GRID)] for i in range(k)]
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fused_time, stack = fused_training(train_x, members, steps, 1)
        peak = (torch.cuda.max_memory_allocated() - base) / k
        del stack
        solo_time = sum(lean_training(train_x, solo_steps, latent, beta, seed)[0]
                        for seed, (beta, latent) in enumerate(members))
        fused_rate, solo_rate = k * steps / fused_time, k * solo_steps / solo_time
        target = " (target ≥ 20×)" if k == 64 else ""
        lines.append(f"K={k:<3} fused {fused_rate:9.0f} member-steps/s, {k} solo one after another "
                     f"{solo_rate:6.0f}: {fused_rate / solo_rate:6.1f}×{target}; peak GPU memory "
                     f"{peak / 2 ** 20:.2f} MiB per member")
    return lines


def accuracy(train_x, test_x, steps: int) -> list[str]:
    from benchmarks.fused import USED_BY, fused_training, member_networks
    from benchmarks.reference import lean_training, test_neg_elbo

    _, stack = fused_training(train_x, USED_BY, steps, 1)
    lines, worst = [], 0.0
    for k, (beta, latent) in enumerate(USED_BY):
        solo = lean_training(train_x, steps, latent, beta, seed=k)
        fused_elbo = test_neg_elbo(*(n.to(train_x.device) for n in member_networks(stack, k, beta, latent)), test_x)
        solo_elbo = test_neg_elbo(solo[1], solo[2], test_x)
        worst = max(worst, abs(fused_elbo - solo_elbo) / solo_elbo)
        lines.append(f"  β={beta:<5} latent={latent:<2} × {steps} steps: test −ELBO fused {fused_elbo:.2f}, "
                     f"solo {solo_elbo:.2f} nats")
    return [f"accuracy: largest relative test −ELBO difference {100 * worst:.2f}% (target ≤ 2%)", *lines]


def sweeps(steps: int) -> list[str]:
    import shutil
    import tempfile
    from pathlib import Path

    from benchmarks.fused_sweeps import USED_BY, sweep

    scratch = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    common = USED_BY + [f"trainer.max_steps={steps}", "trainer=gpu"]
    try:
        fused, fused_elbo = sweep(common + ["hydra/launcher=fused"], scratch / "fused", 6)
        basic, basic_elbo = sweep(common + ["hydra/launcher=basic"], scratch / "basic", 6)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    worst = max(abs(fused_elbo[n] - basic_elbo[n]) / basic_elbo[n] for n in basic_elbo)
    return [f"used-by sweep (trainer=gpu, {steps} steps): fused {fused:.1f} s, one job at a time {basic:.1f} s: "
            f"fused {basic / fused:.2f}× faster (target ≥ 3×); test −ELBO within {100 * worst:.2f}% of the solo jobs'"]


if __name__ == "__main__":
    sys.exit(main())
