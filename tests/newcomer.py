"""A newcomer's dataset and networks, with the mistakes a newcomer makes (tests/test_contract_checks.py).

``Bars``: 16×16 binary images of one bar, over three known factors (orientation 2 × position 8 ×
thickness 3 = 48 combinations, each held 5 times). ``mistake`` breaks one promise of its contract;
"none" keeps them all. The networks break the model's contract in the two ways the issue saw.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vae.data.base import InMemoryImageDataModule
from vae.data.info import DatasetInfo, Factor, Split
from vae.data.splits import random_split_rows
from vae.models.networks import MLPDecoder, MLPEncoder

SIDE = 16
SIZES = {"orientation": 2, "position": 8, "thickness": 3}
COPIES = 5
MISTAKES = ("none", "factor_size", "image_shape", "no_images_from_factors", "wrong_images_from_factors",
            "pixels", "labels", "unused_factor_value")


def render(factors: np.ndarray) -> np.ndarray:
    """uint8 {0, 1} images (n, 1, 16, 16) of bars with these factor classes (n, 3)."""
    out = np.zeros((len(factors), 1, SIDE, SIDE), np.uint8)
    for i, (orientation, position, thickness) in enumerate(factors):
        start = 1 + 2 * position
        if orientation == 0:
            out[i, 0, start:start + thickness + 1, 2:-2] = 1
        else:
            out[i, 0, 2:-2, start:start + thickness + 1] = 1
    return out


class Bars(InMemoryImageDataModule):
    def __init__(self, mistake: str = "none", **kwargs):
        super().__init__(**kwargs)
        self.mistake = mistake
        sizes = dict(SIZES)
        if mistake == "factor_size":
            sizes["thickness"] = 2                      # its labels take 3 values
        if mistake == "unused_factor_value":
            sizes["position"] = 9                       # its labels never take the 9th
        shape = (1, 32, 32) if mistake == "image_shape" else (1, SIDE, SIDE)
        self.info = DatasetInfo(name="bars", image_shape=shape, pixels="binary", label_name="orientation",
                                num_classes=1 if mistake == "labels" else 2,
                                factors=tuple(Factor(n, s) for n, s in sizes.items()))

    def load_splits(self) -> dict[str, Split]:
        grid = np.indices(tuple(SIZES.values())).reshape(len(SIZES), -1).T
        factors = np.repeat(grid, COPIES, axis=0)
        images = torch.from_numpy(render(factors))
        if self.mistake == "pixels":
            images = images * 255                       # uint8 0..255, declared binary
        factors = torch.from_numpy(factors)
        rows = random_split_rows(len(factors), {"val": 40, "test": 40}, self.split_seed)
        return {name: Split(images[r], factors[r, 0], factors[r]) for name, r in rows.items()}

    def images_from_factors(self, factors: np.ndarray) -> torch.Tensor:
        if self.mistake == "no_images_from_factors":
            return super().images_from_factors(factors)
        images = torch.from_numpy(render(np.asarray(factors))).float()
        return images.transpose(2, 3) if self.mistake == "wrong_images_from_factors" else images


class FlatDecoder(MLPDecoder):
    """Returns (B, H·W) logits instead of images."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return super().forward(z).flatten(1)


class OneTensorEncoder(MLPEncoder):
    """Returns loc and scale as one (B, 2·latent) tensor instead of a pair."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(super().forward(x), dim=1)


class NegativeScaleEncoder(MLPEncoder):
    def forward(self, x: torch.Tensor):
        loc, scale = super().forward(x)
        return loc, -scale


class SmallImageEncoder(nn.Module):
    """Written for 8×8 images whatever the data says: fails on the declared shape."""

    def __init__(self, image_shape, latent_size: int, **settings):
        super().__init__()
        self.linear = nn.Linear(64, 2 * latent_size)

    def forward(self, x: torch.Tensor):
        loc, raw = self.linear(x.flatten(1)).chunk(2, dim=1)
        return loc, nn.functional.softplus(raw)


class DownloadedBars(Bars):
    """Bars whose files are fetched by prepare_data (so preflight cannot look at them yet)."""

    def files_ready(self) -> bool:
        return False
