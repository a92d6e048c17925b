"""dSprites (Matthey et al. 2017, the β-VAE paper's dataset): 737,280 binary 64×64 sprites, every
combination of shape (3: square, ellipse, heart), scale (6), orientation (40), posX (32) and
posY (32) once, in row-major order over that grid (the colour factor has one value; dropped).

The file is ``<data_dir>/dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (26 MB) from
the public deepmind/dsprites-dataset repository. When it is missing and ``data.download`` is
true it is downloaded; either way it must match the published MD5 before it is read, and only
its ``imgs`` and ``latents_classes`` arrays are loaded, with ``allow_pickle=False`` (its
``metadata`` is a pickle, which could run code). Offline, one line says where to put the file.

Memory: the images are 3 GB as uint8 and stay uint8 (the base converts each batch to floats).
They are decoded once per machine into the data cache (vae/data/disk_cache.py) and every process
maps that one copy: the val and test rows are moved to the end of the loaded array in place, and
every split is a slice of it (``split("all")`` is the whole array, which ``images_from_factors``
indexes), so the cache holds the images once. Decoding takes the time of decompressing 3 GB.

``md5`` and ``factor_sizes`` describe the file and default to the published one's; the tests
pass their own (a small npz of the same layout that they write). A file with any other MD5 is
refused, so the check is the same code path for both.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import math
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch

from protocol.atomic import atomic_write_bytes
from vae.data.base import InMemoryImageDataModule
from vae.data.info import DatasetInfo, Factor, Split
from vae.data.splits import factor_grid_index
from vae.errors import ConfigError, DataError

FILE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
URL = f"https://raw.githubusercontent.com/google-deepmind/dsprites-dataset/master/{FILE_NAME}"
MD5 = "7da33b31b13a06f4b04a70402ce90c2e"
FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
IMAGE_SIDE = 64


class DSpritesDataModule(InMemoryImageDataModule):
    def __init__(self, val_size: int = 5000, test_size: int = 5000, md5: str = MD5, url: str = URL,
                 factor_sizes: tuple[int, ...] = FACTOR_SIZES, **kwargs):
        # kwargs: the base's data_dir, download, batch sizes, split_seed, train_subset
        super().__init__(val_size=val_size, **kwargs)
        self.test_size, self.md5, self.url = test_size, md5, url
        self.given_sizes = sizes = tuple(factor_sizes)
        self.info = DatasetInfo(name="dsprites", image_shape=(1, IMAGE_SIDE, IMAGE_SIDE), pixels="binary",
                                label_name="shape", num_classes=sizes[0] if sizes else None,
                                factors=tuple(Factor(n, s) for n, s in zip(FACTOR_NAMES, sizes)))
        self._position_of_row: np.ndarray | None = None

    @property
    def folder(self) -> Path:
        return self.data_dir / "dsprites"

    @property
    def path(self) -> Path:
        return self.folder / FILE_NAME

    @property
    def num_images(self) -> int:
        return math.prod(self.factor_sizes)

    # --- checks before anything is written ---------------------------------------------------
    def check_config(self) -> None:
        super().check_config()
        sizes = self.given_sizes
        if len(sizes) != len(FACTOR_NAMES) or not all(_positive_int(s) for s in sizes):
            raise ConfigError(f"data.factor_sizes={list(sizes)} is invalid; it must be {len(FACTOR_NAMES)} "
                              f"integers ≥ 1 ({', '.join(FACTOR_NAMES)})")
        for key, value in (("val_size", self.val_size), ("test_size", self.test_size)):
            if not _positive_int(value):
                raise ConfigError(f"data.{key}={value} is invalid; it must be an integer ≥ 1")
        n_train = self.num_images - self.val_size - self.test_size
        if n_train < 1:
            raise ConfigError(f"data.val_size={self.val_size} + data.test_size={self.test_size} leave none of "
                              f"the {self.num_images} images for training; lower them")
        n_train = min(n_train, self.train_subset or n_train)
        if self.batch_size > n_train:
            raise ConfigError(f"data.batch_size={self.batch_size} is larger than the {n_train} training images "
                              f"(after data.val_size, data.test_size and data.train_subset); lower it")
        blocker = next((p for p in [self.folder, *self.folder.parents] if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise DataError(f"data.data_dir: {blocker} is a file, not a folder; set data.data_dir to a folder")
        if self.path.exists():
            self.verify()                       # a corrupt file is one line before the run starts
        elif not self.download:
            raise DataError(self.missing("data.download=false"))

    def verify(self) -> None:
        found = _md5(self.path)
        if found != self.md5:
            raise DataError(f"{self.path} is corrupt (MD5 {found}, expected {self.md5}); "
                            f"delete it and run again to download it, or fetch {self.url}")

    def missing(self, reason: str) -> str:
        return (f"dSprites is not in {self.folder} and was not downloaded ({reason}); download {self.url} "
                f"(26 MB, MD5 {self.md5}) into that folder, e.g. "
                f"curl -L --create-dirs -o {self.path} {self.url}")

    # --- files -------------------------------------------------------------------------------
    def files_ready(self) -> bool:
        return self.path.exists()

    def prepare_data(self) -> None:
        if not self.path.exists():
            if not self.download:
                raise DataError(self.missing("data.download=false"))
            self.fetch()
        self.verify()

    def fetch(self) -> None:
        """Download the file and save it only once its MD5 matches. Not torchvision's download_url:
        it creates the folder first and leaves a partial or corrupt file in place when it fails."""
        try:
            with urllib.request.urlopen(self.url, timeout=60) as response:
                data = response.read()
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise DataError(self.missing(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")) from None
        found = hashlib.md5(data).hexdigest()
        if found != self.md5:
            raise DataError(f"the file downloaded from {self.url} has MD5 {found}, expected {self.md5}; "
                            f"nothing was saved; try again, or fetch it by hand into {self.folder}")
        try:
            atomic_write_bytes(self.path, data)
        except OSError as exc:
            raise DataError(f"data.data_dir: cannot save {self.path} ({exc.strerror}); "
                            f"set data.data_dir to a writable folder") from None

    # --- loading -----------------------------------------------------------------------------
    def cache_key(self) -> tuple:
        return (*super().cache_key(), self.test_size, self.md5, self.factor_sizes)

    def load_splits(self) -> dict[str, Split]:
        self.prepare_data()                     # verified once per process (the MD5 is cached)
        images, factors = self.read()
        n, held_out = len(images), self.val_size + self.test_size
        rows = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))[:held_out].numpy()
        move_to_end(rows, images, factors)      # val rows, then test rows, at the end; in place
        images = torch.from_numpy(images).unsqueeze(1)     # (N, 1, 64, 64) uint8, a view
        factors = torch.from_numpy(factors)
        part = lambda a, b: Split(images[a:b], factors[a:b, 0], factors[a:b])
        train_end, val_end = n - held_out, n - self.test_size
        return {"train": part(0, train_end), "val": part(train_end, val_end), "test": part(val_end, n),
                "all": part(0, n)}

    def source_checksums(self) -> dict[str, str]:
        return {FILE_NAME: _md5(self.path)}

    def subset_train(self, train: Split) -> Split:
        # The training rows are in grid order (not shuffled): N of them at random, not the first N.
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.split_seed))
        return train.take(pick[: self.train_subset])

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(images (N, 64, 64) uint8, factor classes (N, 5) int64), checked against the grid."""
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                images, classes = npz["imgs"], npz["latents_classes"]
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise DataError(f"{self.path} is not a dSprites npz ({exc}); delete it and run again") from None
        n, sizes = self.num_images, self.factor_sizes
        expected = ((n, IMAGE_SIDE, IMAGE_SIDE), np.uint8, (n, 1 + len(sizes)))
        # Row-major over the grid (colour always 0): what images_from_factors relies on.
        if (images.shape, images.dtype, classes.shape) != expected or not _row_major(classes, sizes):
            raise DataError(f"{self.path} does not hold the {' × '.join(map(str, sizes))} grid of "
                            f"{IMAGE_SIDE}×{IMAGE_SIDE} images in row-major order; delete it and run again")
        return images, np.ascontiguousarray(classes[:, 1:])

    def images_from_factors(self, factors: np.ndarray) -> torch.Tensor:
        everything = self.split("all")
        if self._position_of_row is None:       # where each grid row sits after the split moved rows
            rows = factor_grid_index(everything.factors.numpy(), self.factor_sizes)
            self._position_of_row = np.empty_like(rows)
            self._position_of_row[rows] = np.arange(len(rows))
        at = self._position_of_row[factor_grid_index(factors, self.factor_sizes)]
        return self.as_float(everything.images[torch.from_numpy(at)])


def move_to_end(rows: np.ndarray, *arrays: np.ndarray) -> None:
    """Move ``rows`` (in their order) to the last len(rows) places of each array, in place.

    The training rows that sat there take the moved rows' old places, so only about 2·len(rows)
    rows are copied instead of the whole 3 GB (a permuted copy would double the memory).
    """
    n, k = len(arrays[0]), len(rows)
    tail = np.arange(n - k, n)
    vacated = rows[rows < n - k]                           # head places the moved rows leave
    displaced = np.setdiff1d(tail, rows, assume_unique=True)   # tail places holding training rows
    destination = np.concatenate([tail, vacated])
    source = np.concatenate([rows, displaced])
    for array in arrays:
        array[destination] = array[source]                 # numpy gathers the right side first


@functools.lru_cache(maxsize=8)
def _md5_of(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def _md5(path: Path) -> str:
    # Checked in preflight, prepare_data and load_splits: hashed once per process and file version.
    stat = path.stat()
    return _md5_of(str(path), stat.st_size, stat.st_mtime_ns)


def _row_major(classes: np.ndarray, sizes: tuple[int, ...]) -> bool:
    if not (np.all(classes[:, 0] == 0) and np.all(classes[:, 1:] >= 0) and np.all(classes[:, 1:] < sizes)):
        return False
    return np.array_equal(factor_grid_index(classes[:, 1:], sizes), np.arange(len(classes)))


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
