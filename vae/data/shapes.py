"""Shapes: binary sprites rendered offline over a known factor grid. Not dSprites: its own twin.

Every image is one sprite (square, ellipse or heart) at one scale, orientation and (x, y)
position; the dataset is the whole grid of those five factors, rendered here by pure geometry
(a point-in-shape test at each pixel centre, no anti-aliasing), so it needs no files, no
internet and no seed to exist. The grid's size is set in ``conf/data/shapes.yaml``; the default
(3 × 6 × 10 × 16 × 16 = 46,080 images of 32×32) renders in well under a second and trains on a
CPU in seconds. Only the train/val/test split is random (``split_seed``).

Labels are the shape class (for the latent scatter); ``Split.factors`` holds every image's
factor classes, and ``images_from_factors`` renders any factor combination exactly as the grid
has it. Like dSprites, squares repeat every quarter turn and ellipses every half turn: the
orientation factor is then partly invisible, as in the original.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vae.data.base import InMemoryImageDataModule
from vae.data.info import DatasetInfo, Factor, Split
from vae.data.splits import random_split_rows
from vae.errors import ConfigError

SHAPES = ("square", "ellipse", "heart")
SPRITE_RADIUS = 0.25      # the largest sprite's bounding circle, as a fraction of the image side
SCALE_RANGE = (0.5, 1.0)  # sprite sizes relative to the largest (dSprites spans the same range)
RENDER_PIXELS = 2 ** 22   # pixels per vectorised pass: each float array of a pass stays ~16 MB


class ShapesDataModule(InMemoryImageDataModule):
    def __init__(self, image_size: int = 32, scales: int = 6, orientations: int = 10,
                 x_positions: int = 16, y_positions: int = 16, val_size: int = 2000, test_size: int = 2000,
                 **kwargs):
        # kwargs: the base's batch sizes, split_seed, train_subset, cache, data_dir (where the cache goes; download is unused)
        super().__init__(val_size=val_size, **kwargs)
        self.image_size, self.test_size = image_size, test_size
        self.grid = {"scale": scales, "orientation": orientations, "posX": x_positions, "posY": y_positions}
        # The image shape and factor sizes follow the config, so info is per instance.
        self.info = DatasetInfo(
            name="shapes", image_shape=(1, image_size, image_size), pixels="binary",
            label_name="shape", num_classes=len(SHAPES),
            factors=(Factor("shape", len(SHAPES)), *(Factor(name, size) for name, size in self.grid.items())))

    @property
    def num_images(self) -> int:
        return math.prod(self.factor_sizes)

    def check_config(self) -> None:
        super().check_config()
        side = self.image_size
        if not _positive_int(side) or side < 8 or side % 4:
            raise ConfigError(f"data.image_size={side} is invalid; it must be a multiple of 4 from 8 up "
                              f"(the conv model halves the side twice), e.g. data.image_size=32")
        for name, key in (("scale", "scales"), ("orientation", "orientations"),
                          ("posX", "x_positions"), ("posY", "y_positions")):
            if not _positive_int(self.grid[name]):
                raise ConfigError(f"data.{key}={self.grid[name]} is invalid; it must be an integer ≥ 1")
        for key, value in (("val_size", self.val_size), ("test_size", self.test_size)):
            if not _positive_int(value):
                raise ConfigError(f"data.{key}={value} is invalid; it must be an integer ≥ 1")
        n_train = self.num_images - self.val_size - self.test_size
        if n_train < 1:
            grid = " × ".join(map(str, self.factor_sizes))
            raise ConfigError(f"data.val_size={self.val_size} + data.test_size={self.test_size} leave no training "
                              f"images of the {self.num_images}-image grid ({grid}); lower them or enlarge the grid")
        if self.train_subset is not None:
            n_train = min(n_train, self.train_subset)
        if self.batch_size > n_train:
            raise ConfigError(f"data.batch_size={self.batch_size} is larger than the {n_train} training images "
                              f"(after data.val_size, data.test_size and data.train_subset); lower it")

    def cache_key(self) -> tuple:
        return (*super().cache_key(), self.image_size, self.test_size, self.factor_sizes)

    def load_splits(self) -> dict[str, Split]:
        factors = grid_factors(self.factor_sizes)
        images = torch.from_numpy(render(factors, self.image_size, self.factor_sizes)).unsqueeze(1)   # uint8 {0, 1}
        factors = torch.from_numpy(factors)
        rows = random_split_rows(len(factors), {"val": self.val_size, "test": self.test_size}, self.split_seed)
        return {name: Split(images[r], labels=factors[r, 0], factors=factors[r]) for name, r in rows.items()}

    def images_from_factors(self, factors: np.ndarray) -> torch.Tensor:
        # Rendering is a pure function of the factor classes, so this equals the grid's images.
        return torch.from_numpy(render(np.asarray(factors), self.image_size, self.factor_sizes)).unsqueeze(1).float()


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def grid_factors(sizes: tuple[int, ...]) -> np.ndarray:
    """Every combination of factor classes, (prod(sizes), F), in row-major order (dSprites' layout,
    so base.factor_grid_index finds a combination's row)."""
    return np.indices(sizes).reshape(len(sizes), -1).T.copy()


def sprite_geometry(factors: np.ndarray, side: int, sizes: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Each sprite's radius and centre in pixels and the cosine and sine of its angle.

    Looked up in per-class tables, so a factor class always maps to the same float whatever
    else is rendered with it (numpy's vectorised sin/cos may round differently by array length).
    """
    _, scales, orientations, xs, ys = sizes
    largest = SPRITE_RADIUS * side
    radii = largest * (np.linspace(*SCALE_RANGE, scales) if scales > 1 else np.ones(1))
    angles = 2 * np.pi * np.arange(orientations) / orientations
    # Centres keep the largest sprite inside the image at any angle; one position sits mid-image.
    # posX counts columns rightwards, posY rows downwards (image order).
    span = lambda n: np.linspace(largest, side - largest, n) if n > 1 else np.array([side / 2])
    return {"radius": radii[factors[:, 1]], "cos": np.cos(angles)[factors[:, 2]],
            "sin": np.sin(angles)[factors[:, 2]], "x": span(xs)[factors[:, 3]], "y": span(ys)[factors[:, 4]]}


def render(factors: np.ndarray, side: int, sizes: tuple[int, ...]) -> np.ndarray:
    """uint8 images (n, side, side) in {0, 1} of the sprites with these factor classes (n, 5)
    of a grid of the given factor sizes.

    Vectorised over sprites and pixels: each pixel centre is moved into the sprite's own frame
    (translate, rotate, divide by its radius) and tested against the unit shape.
    """
    factors = np.asarray(factors, dtype=np.int64)
    out = np.empty((len(factors), side, side), dtype=np.uint8)
    centres = np.arange(side, dtype=np.float32) + 0.5
    for shape, inside in enumerate(INSIDE):
        rows = np.flatnonzero(factors[:, 0] == shape)
        chunk = max(1, RENDER_PIXELS // (side * side))
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            g = {k: v.astype(np.float32)[:, None, None] for k, v in sprite_geometry(factors[part], side, sizes).items()}
            dx = (centres[None, None, :] - g["x"]) / g["radius"]      # (n, 1, W)
            dy = (g["y"] - centres[None, :, None]) / g["radius"]      # (n, H, 1), y up
            u = g["cos"] * dx + g["sin"] * dy                         # (n, H, W), the sprite's frame
            v = g["cos"] * dy - g["sin"] * dx
            out[part] = inside(u, v)
    return out


# Unit shapes, each inside the unit circle (so a sprite of radius r fits a circle of radius r at
# any angle), all of similar area. u points right, v up, in the sprite's frame.
def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) <= 1 / math.sqrt(2)


def _ellipse(u, v):
    return u * u + 4 * v * v <= 1                                     # semi-axes 1 and 1/2


def _heart(u, v):
    # A diamond (a square turned 45°, point down) with a disc on each upper edge (the edge its
    # diameter), moved down by d/4 to centre its bounding circle: its point then lies 1.25 d from
    # the centre and the discs' far edges 1.27 d, so d = 0.79 keeps it inside the unit circle.
    d = 0.79
    y = v + d / 4
    lobes = ((np.abs(u) - d / 2) ** 2 + (y - d / 2) ** 2) <= d * d / 2
    return (np.abs(u) + np.abs(y) <= d) | lobes


INSIDE = (_square, _ellipse, _heart)                                  # in SHAPES order
