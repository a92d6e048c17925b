"""What a dataset declares about itself (``DatasetInfo``), and one split of it in memory (``Split``).

Figures, metrics, the model's likelihood and the run's params read shapes and names from
``DatasetInfo``; nothing outside a dataset's own module names a dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

PIXEL_KINDS = ("binary", "grey")        # binary: every pixel is 0 or 1 | grey: values in [0, 1]


@dataclass(frozen=True)
class Factor:
    """A known generative factor: its name and how many values it takes (classes 0..size-1)."""

    name: str
    size: int


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple[int, int, int]          # (C, H, W)
    pixels: str                                # one of PIXEL_KINDS, as stored
    label_name: Optional[str] = None           # what the labels are ("digit"), None: no labels
    num_classes: Optional[int] = None
    factors: tuple[Factor, ...] = ()           # empty: no known factors

    @property
    def num_pixels(self) -> int:
        return math.prod(self.image_shape)

    @property
    def factor_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.factors)

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        return tuple(f.size for f in self.factors)


@dataclass
class Split:
    """One split in memory. ``images``: (N, C, H, W), float in [0, 1] or uint8 (see
    ``InMemoryImageDataModule.as_float``); ``labels``: (N,) or None; ``factors``: (N, F) factor
    classes or None."""

    images: torch.Tensor
    labels: Optional[torch.Tensor] = None
    factors: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.images)

    def take(self, rows) -> "Split":
        return Split(self.images[rows], None if self.labels is None else self.labels[rows],
                     None if self.factors is None else self.factors[rows])
