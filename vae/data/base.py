"""The dataset contract, and the in-memory DataModule every dataset here builds on.

What the rest of the code reads from a dataset is ``DatasetInfo``: the image shape, what the
pixels are, what the labels mean (if any), and the known generative factors (if any). Figures,
metrics, the model's likelihood and the run's params take shapes and names from it; nothing
outside a dataset's own module names a dataset.

A dataset is one module: a subclass of ``InMemoryImageDataModule`` that sets ``info`` and
implements ``load_splits()`` (and ``prepare_data()``/``check_config()`` for its own files and
rules), plus one ``conf/data/<name>.yaml`` whose ``_target_`` names the class.

Why in memory and not a torchvision Dataset behind a DataLoader: per-sample conversion and
collation cost more than the seed model's whole step on a CPU (0.41 ms per batch for
DataLoader(TensorDataset) against 0.14 ms for slicing, measured). The datasets here fit in
memory, so batches are index slices of one tensor.

One copy per machine: what ``load_splits()`` returns (val/test already binarised) is cached on
disk under ``<data_dir>/cache/`` and memory-mapped (vae/data/disk_cache.py), so the processes of a
sweep share one copy and only the first decodes. Every dataset gets this without doing anything;
``data.cache=false`` keeps the splits in each process's own memory instead.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import torch

from vae.data import disk_cache
from vae.data.batches import TensorBatches  # noqa: F401 - also imported from here
from vae.errors import ConfigError

log = logging.getLogger(__name__)

PIXEL_KINDS = ("binary", "grey")        # binary: every pixel is 0 or 1 | grey: values in [0, 1]
BINARIZE_CHOICES = ("none", "dynamic")


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


# The jobs of a sweep that run in one process (Hydra's basic launcher, a joblib worker) share the
# loaded splits instead of decoding them again (0.5 s a job for MNIST). The tensors are only read.
_SPLITS_CACHE: dict[tuple, dict[str, Split]] = {}


# Attributes that are not data settings: batch sizes only slice the splits, and Lightning's own
# (its `trainer` is None until a Trainer attaches the datamodule, so a sweep worker's load ahead of
# its first job, made before any Trainer, would otherwise never match that job's key).
NOT_DATA_SETTINGS = frozenset({"batch_size", "eval_batch_size", "batches_per_fetch", *vars(L.LightningDataModule())})


class InMemoryImageDataModule(L.LightningDataModule):
    """Train/val/test splits held as tensors, batches as slices.

    Subclasses set ``info`` and implement ``load_splits()``; they may override
    ``prepare_data()`` (fetch and verify files) and ``check_config()`` (their own one-line rules,
    run before anything is written; it must not load data).

    binarize (for grey pixels; binary pixels are used as they are):
      none     targets are the grey pixels (the seed notebook's setting)
      dynamic  each training batch is resampled as Bernoulli(pixels); val and test are
               binarised once with a fixed seed so likelihoods are comparable across runs.
    """

    info: DatasetInfo

    def __init__(self, data_dir: str = "data", batch_size: int = 64, eval_batch_size: int = 1000,
                 val_size: int = 10_000, binarize: str = "dynamic", split_seed: int = 0,
                 download: bool = True, train_subset: int | None = None, cache: bool = True):
        super().__init__()
        self.data_dir = Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.binarize, self.split_seed = val_size, binarize, split_seed
        self.download, self.train_subset, self.cache = download, train_subset, cache
        # Training batches per item handed to Lightning; set only by vae/speed/batch_groups.py
        # for a model that takes groups. Every other model gets one batch per training_step.
        self.batches_per_fetch = 1
        self._splits: dict[str, Split] = {}

    # --- what a subclass provides ------------------------------------------------------------
    def load_splits(self) -> dict[str, Split]:
        """{"train", "val", "test"} -> Split, before binarisation and subsetting (other keys, e.g.
        "all" for the whole factor grid, are kept as they are). Training rows come in random
        order: ``train_subset=N`` keeps the first N (see ``subset_train``). What it returns is
        cached on disk, so it must depend only on the settings, the source files and the code."""
        raise NotImplementedError

    def source_checksums(self) -> dict[str, str]:
        """{file name: checksum} of the files ``load_splits`` reads (part of the disk cache's key);
        called after ``prepare_data()``. Empty by default (data generated by the code itself); a dataset
        that reads files and leaves this empty would not see them change."""
        return {}

    def subset_train(self, train: Split) -> Split:
        """The training split for ``train_subset=N``: the first N rows (already in random order)."""
        return train.take(slice(0, self.train_subset))

    def check_config(self) -> None:
        """Raise ConfigError for a setting this dataset cannot take (no data loaded here)."""
        if self.binarize not in BINARIZE_CHOICES:
            raise ConfigError(f"data.binarize={self.binarize} is not an option; choose one of: "
                              f"{', '.join(BINARIZE_CHOICES)}")
        if not isinstance(self.cache, bool):
            raise ConfigError(f"data.cache={self.cache} is invalid; it must be true (one copy per machine, "
                              f"memory-mapped) or false (a copy in each process)")

    def files_ready(self) -> bool:
        """Whether loading needs no download (a sweep's workers load ahead only then)."""
        return True

    def cache_key(self) -> tuple:
        """What the loaded splits depend on (the jobs of a sweep in one process share them): the
        class and every plain setting of the instance, so a subclass's own settings count
        without being listed. Batch sizes only slice the splits and are left out."""
        settings = {k: str(v.resolve()) if isinstance(v, Path) else v for k, v in sorted(vars(self).items())
                    if not k.startswith("_") and k not in NOT_DATA_SETTINGS
                    and isinstance(v, (str, int, float, bool, tuple, Path, type(None)))}
        return (type(self).__module__, type(self).__qualname__, *settings.items())

    def disk_key(self) -> dict:
        """What the cached arrays depend on: ``cache_key()`` less the settings that only pick from
        them or say where files are, the source files' checksums and the source code of the
        datamodule's classes (an edit to a loader makes a new cache, never a stale one)."""
        unshaping = {"train_subset", "data_dir", "download", "cache"}
        settings = [item for item in self.cache_key()
                    if not (isinstance(item, tuple) and len(item) == 2 and item[0] in unshaping)]
        code = hashlib.sha256()
        for cls in type(self).__mro__[:type(self).__mro__.index(InMemoryImageDataModule) + 1]:
            try:
                code.update(inspect.getsource(inspect.getmodule(cls)).encode())
            except (OSError, TypeError):   # a class without a source file (defined interactively)
                code.update(cls.__qualname__.encode())
        return {"settings": settings, "sources": self.source_checksums(), "code": code.hexdigest()}

    def prepared_splits(self) -> dict[str, Split]:
        """``load_splits()`` with val and test binarised: what the disk cache holds."""
        splits = self.load_splits()
        if self.binarizes:
            for offset, name in ((1, "val"), (2, "test")):
                s = splits[name]
                splits[name] = Split(binarize_once(self.as_float(s.images), self.split_seed + offset),
                                     s.labels, s.factors)
        return splits

    def cached_splits(self) -> dict[str, Split]:
        """The prepared splits memory-mapped from the disk cache (built first if missing or corrupt);
        in this process's memory instead if the cache folder cannot be written."""
        self.prepare_data()
        key = self.disk_key()
        folder = disk_cache.folder_for(self.data_dir / "cache", self.info.name, key)
        try:
            return disk_cache.load_or_build(folder, key, self.prepared_splits, Split)
        except OSError as exc:
            log.warning("data cache %s cannot be written (%s); keeping the data in this process's memory "
                        "(set data.data_dir to a writable folder to share one copy among processes)",
                        folder, exc.strerror or exc)
            return self.prepared_splits()

    # --- derived -----------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.info.image_shape

    @property
    def binarizes(self) -> bool:
        """Whether targets are Bernoulli samples of grey pixels (binary data needs nothing)."""
        return self.binarize == "dynamic" and self.info.pixels == "grey"

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        key = self.cache_key()
        if key not in _SPLITS_CACHE:
            splits = self.cached_splits() if self.cache else self.prepared_splits()
            if self.train_subset:
                splits["train"] = self.subset_train(splits["train"])
            if len(splits["train"]) < self.batch_size:
                raise ConfigError(f"data.batch_size={self.batch_size} is larger than the "
                                  f"{len(splits['train'])} training images; lower it")
            _SPLITS_CACHE[key] = splits
        self._splits = _SPLITS_CACHE[key]

    def split(self, name: str) -> Split:
        """A split's tensors, for evaluation, figures and metrics."""
        self.setup()
        return self._splits[name]

    def as_float(self, images: torch.Tensor) -> torch.Tensor:
        """Pixels as floats in [0, 1]: uint8 storage is 0/1 for binary data, 0..255 for grey."""
        if images.dtype != torch.uint8:
            return images
        return images.float() if self.info.pixels == "binary" else images.float().div_(255.0)

    # --- known factors: what disentanglement metrics need (vae/metrics/) ----------------------
    # A dataset that declares info.factors implements images_from_factors; split(name).factors
    # holds the factor classes of each image of that split.
    @property
    def factor_names(self) -> tuple[str, ...]:
        return self.info.factor_names

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        return self.info.factor_sizes

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, F) factor classes, each factor uniform and independent (the factor grid's law)."""
        return np.stack([rng.integers(0, size, n) for size in self.factor_sizes], axis=1)

    def images_from_factors(self, factors: np.ndarray) -> torch.Tensor:
        """(n, C, H, W) float images in [0, 1] showing the given factor classes (no binarisation:
        binary datasets are binary already)."""
        raise NotImplementedError(f"{type(self).__name__} declares no generative factors")

    # --- batches -----------------------------------------------------------------------------
    def _targets(self, split: Split) -> torch.Tensor:
        return split.labels if split.labels is not None else torch.arange(len(split))

    def train_dataloader(self) -> TensorBatches:
        s = self._splits["train"]
        # The shuffle stream follows the global seed so that `seed=` makes a run reproducible.
        seed = int(torch.initial_seed()) % (2**63)
        return TensorBatches(s.images, self._targets(s), self.batch_size, shuffle=True, seed=seed,
                             drop_last=True, group=self.batches_per_fetch)

    def val_dataloader(self) -> TensorBatches:
        s = self._splits["val"]
        return TensorBatches(s.images, self._targets(s), self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        s = self._splits["test"]
        return TensorBatches(s.images, self._targets(s), self.eval_batch_size, shuffle=False)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # Lightning's generic transfer walks the batch's structure, ~0.35 ms a step on a ~3 ms
        # step (benchmarks/speed.py); a batch here is always an (images, targets) pair.
        x, y = batch
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # On the device: uint8 storage to floats, and dynamic binarisation once per training batch.
        x, y = batch
        x = self.as_float(x)
        if self.binarizes and self.trainer is not None and self.trainer.training:
            x = torch.bernoulli(x)
        return x, y


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
