"""Batches of an in-memory dataset: index slices of its tensors, a plain iterable Lightning accepts
as a dataloader (why not a DataLoader: vae/data/base.py)."""

from __future__ import annotations

import math

import torch


class TensorBatches:
    """An iterable of (images, targets) batches sliced from tensors; targets are the labels, or
    the row numbers for a dataset without labels.

    Lightning accepts any iterable with ``__len__`` as a dataloader; this one is a plain loop over
    index slices, which is all an in-memory dataset needs.

    shuffle=False (evaluation): one pass in order, one batch at a time.
    shuffle=True (training): an endless stream of batches, pass p shuffled with seed + p, handed
    out ``group`` batches at a time (``group`` > 1 only for a model that opts in, see
    vae/speed/batch_groups.py); ``len()`` items make one Lightning epoch (about one pass).
    Groups may span two passes, so every group holds exactly ``group`` batches and the batch
    sequence is the same whatever the group size.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, batch_size: int,
                 shuffle: bool, seed: int = 0, drop_last: bool = False, group: int = 1):
        self.images, self.targets = images, targets
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed = seed
        self.group = group if shuffle else 1   # batches per item handed out
        self.position = 0        # training: batches of the stream handed out so far
        self.taken = 0           # items handed out in the current epoch
        self._resume_at = 0
        self._order: tuple[int, torch.Tensor] | None = None

    @property
    def num_batches(self) -> int:
        n = len(self.images) / self.batch_size
        return math.floor(n) if self.drop_last else math.ceil(n)

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.group)

    def order(self, pass_number: int) -> torch.Tensor:
        """The permutation of one pass: a function of (seed, pass), so a resumed run repeats it."""
        if self._order is None or self._order[0] != pass_number:
            generator = torch.Generator().manual_seed(self.seed + pass_number)
            self._order = (pass_number, torch.randperm(len(self.images), generator=generator))
        return self._order[1]

    def stream_rows(self, first: int, count: int) -> torch.Tensor:
        """Indices of `count` batches of the training stream, starting at batch `first`."""
        parts = []
        for b in range(first, first + count):
            pass_number, i = divmod(b, self.num_batches)
            parts.append(self.order(pass_number)[i * self.batch_size:(i + 1) * self.batch_size])
        return torch.cat(parts)

    def __iter__(self):
        start, self._resume_at = self._resume_at, 0
        for i in range(start, len(self)):
            self.taken = i + 1
            if not self.shuffle:
                rows = slice(i * self.batch_size, (i + 1) * self.batch_size)
            else:
                rows = self.stream_rows(self.position, self.group)
                self.position += self.group
            yield self.images[rows], self.targets[rows]

    # Lightning saves these in checkpoints, so a resumed run continues the same data order.
    def state_dict(self) -> dict:
        return {"position": self.position, "taken": self.taken}

    def load_state_dict(self, state: dict) -> None:
        self.position, self._resume_at = state["position"], state["taken"]
