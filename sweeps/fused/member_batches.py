"""Training batches for the members of a stack (sweeps/fused/stacked_vae.py), each member's in the
order its solo run would see them, and each member's random numbers from its own generator.

A solo run with seed s calls ``L.seed_everything(s)``; its datamodule's ``TensorBatches(images,
labels, batch_size, shuffle=True, seed=torch.initial_seed(), drop_last=True)`` then hands out pass p
shuffled by randperm(n, seed s + p) (vae/data/mnist.py). Member k's rows at optimiser step t are
``stream_rows(t, 1)`` of such a TensorBatches with its own seed: the same code, not a copy of its
arithmetic, gathered into (K, B) rows per step.

Random numbers: a solo run draws, per step, the dynamic binarisation of its batch and then its
reparameterisation noise from its global generator. A member draws both, in that order, from its
own generator (``member_generator``), so its stream does not depend on the other members.
"""

from __future__ import annotations

from typing import Sequence

import torch

from vae.data.batches import TensorBatches


def member_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A generator that continues the global RNG of ``device`` from here on. Call it once per member
    where its solo run would start training: after ``seed_everything(seed)`` and building its model
    (whose initialisation draws from the CPU generator first)."""
    device = torch.device(device)
    generator = torch.Generator(device)
    if device.type == "cpu":
        generator.set_state(torch.get_rng_state())
    elif device.type == "cuda":
        generator.set_state(torch.cuda.get_rng_state(device))
    else:
        generator.manual_seed(torch.initial_seed())
    return generator


class MemberBatches:
    """Per step, a (K, B, C, H, W) batch: member k's solo batch at that step, binarised with its
    generator if ``binarize``. ``images`` (N, C, H, W) on the training device; ``seeds`` the
    members' run seeds; ``generators`` the same objects the stack draws its noise from (one per
    member, or one torch.Generator for the group: one draw per step, see StackedVAE)."""

    def __init__(self, images: torch.Tensor, batch_size: int, seeds: Sequence[int],
                 generators: Sequence[torch.Generator] | torch.Generator, binarize: bool = True,
                 prefetch: int = 64, to_float=lambda x: x):
        seeds = list(seeds)
        self.group_generator = generators if isinstance(generators, torch.Generator) else None
        generators = [] if self.group_generator else list(generators)
        if generators and len(seeds) != len(generators):
            raise ValueError("one seed and one generator per member")
        self.images, self.batch_size, self.binarize, self.prefetch = images, batch_size, binarize, prefetch
        self.to_float = to_float   # stored pixels -> floats in [0, 1], per batch (the datamodule's as_float)
        # As MNISTDataModule.train_dataloader: seed = torch.initial_seed() after seed_everything(s).
        self.streams = [TensorBatches(images, None, batch_size, shuffle=True, seed=int(s) % (2 ** 63),
                                      drop_last=True) for s in seeds]
        self.generators = list(generators)
        self._rows: tuple[int, torch.Tensor] | None = None   # (first step, rows (K, prefetch, B))

    def __len__(self) -> int:
        return len(self.streams)

    def rows(self, step: int) -> torch.Tensor:
        """(K, B) image indices of every member's batch at optimiser step ``step``."""
        if not self.streams:
            return torch.zeros(0, self.batch_size, dtype=torch.long, device=self.images.device)
        if self._rows is None or not self._rows[0] <= step < self._rows[0] + self.prefetch:
            # Many steps at once: one Python loop over members per ``prefetch`` steps, not per step.
            self._rows = (step, torch.stack([s.stream_rows(step, self.prefetch).view(self.prefetch, -1)
                                             for s in self.streams]).to(self.images.device))
        return self._rows[1][:, step - self._rows[0]]

    def batch(self, step: int) -> torch.Tensor:
        x = self.to_float(self.images[self.rows(step)])
        if self.binarize and self.group_generator is not None:
            x = torch.bernoulli(x, generator=self.group_generator)
        elif self.binarize:
            x = torch.stack([torch.bernoulli(x[k], generator=g) for k, g in enumerate(self.generators)])
        return x

    def remove_members(self, keep: Sequence[int]) -> None:
        """Keep the members at positions ``keep``, as StackedVAE.remove_members does."""
        keep = list(keep)
        self.streams = [self.streams[i] for i in keep]
        self.generators = [self.generators[i] for i in keep] if self.generators else []
        if self._rows is not None:
            self._rows = (self._rows[0], self._rows[1][torch.tensor(keep, dtype=torch.long)])
