"""Helpers a dataset's ``load_splits()`` uses: seeded random splits, a fixed binarisation of the
evaluation images, and the row of a factor combination in a factor grid."""

from __future__ import annotations

import numpy as np
import torch


def binarize_once(x: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))


def random_split_rows(n: int, sizes: dict[str, int], seed: int) -> dict[str, torch.Tensor]:
    """Disjoint random row indices of the given sizes (the rest goes to "train" if it is absent),
    a function of ``seed`` only, so every run of a sweep gets the same splits."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = order[start:start + size]
        start += size
    out.setdefault("train", order[start:])
    return out


def factor_grid_index(factors: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
    """Row numbers of factor classes in a row-major grid over ``sizes`` (dSprites' layout)."""
    return np.ravel_multi_index(tuple(np.asarray(factors).T), sizes)
