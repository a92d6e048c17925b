"""MNIST as a LightningDataModule whose batches are slices of one in-memory tensor.

Why not a torchvision Dataset behind a DataLoader: per-sample PIL conversion and collation cost
more than the model's whole step on a CPU (0.41 ms per batch for DataLoader(TensorDataset) against
0.14 ms for slicing, measured). MNIST fits in memory many times over, so batches are index slices.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch

from vae.errors import ConfigError
from vae.data.mnist_files import ensure_mnist

IMAGE_SHAPE = (1, 28, 28)
BINARIZE_CHOICES = ("none", "dynamic")


# The jobs of a sweep that run in one process (Hydra's basic launcher, a joblib worker) share the
# loaded splits instead of decoding and binarising 70,000 images again (0.5 s a job). The tensors
# are only ever read; ensure_mnist still checks the files (cached MD5) for every job.
_SPLITS_CACHE: dict[tuple, dict[str, tuple[torch.Tensor, torch.Tensor]]] = {}


class TensorBatches:
    """An iterable of (images, labels) batches sliced from tensors.

    Lightning accepts any iterable with ``__len__`` as a dataloader; this one is a plain loop
    over index slices, which is all an in-memory dataset needs.

    shuffle=False (evaluation): one pass in order, one batch at a time.
    shuffle=True (training): an endless stream of batches, pass p shuffled with seed + p, handed
    out ``group`` batches at a time; ``len()`` groups make one Lightning epoch (about one pass).
    Groups may span two passes, so every group holds exactly ``group`` batches and the batch
    sequence is the same whatever the group size.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 shuffle: bool, seed: int = 0, drop_last: bool = False, group: int = 1):
        self.images, self.labels = images, labels
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
            yield self.images[rows], self.labels[rows]

    # Lightning saves these in checkpoints, so a resumed run continues the same data order.
    def state_dict(self) -> dict:
        return {"position": self.position, "taken": self.taken}

    def load_state_dict(self, state: dict) -> None:
        self.position, self._resume_at = state["position"], state["taken"]


class MNISTDataModule(L.LightningDataModule):
    """Train/val/test splits of MNIST with pixels in [0, 1].

    binarize:
      none     targets are the grey pixels (the seed notebook's setting)
      dynamic  each training batch is resampled as Bernoulli(pixels); val and test are
               binarised once with a fixed seed so likelihoods are comparable across runs.
    """

    def __init__(self, data_dir: str = "data", batch_size: int = 64, eval_batch_size: int = 1000,
                 val_size: int = 10_000, binarize: str = "dynamic", split_seed: int = 0,
                 download: bool = True, train_subset: int | None = None, batches_per_fetch: int = 1):
        super().__init__()
        if binarize not in BINARIZE_CHOICES:
            raise ConfigError(f"data.binarize={binarize} is not an option; choose one of: "
                              f"{', '.join(BINARIZE_CHOICES)}")
        self.data_dir = Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.binarize, self.split_seed = val_size, binarize, split_seed
        self.download, self.train_subset = download, train_subset
        # Training batches handed to Lightning at once; the model takes one optimiser step per batch.
        # Lightning's per-batch bookkeeping (~0.8 ms) is then paid once per group (benchmarks/speed.py).
        self.batches_per_fetch = batches_per_fetch
        self.image_shape = IMAGE_SHAPE
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # --- loading -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        ensure_mnist(self.data_dir, download=self.download)

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        key = (str(self.data_dir.resolve()), self.val_size, self.binarize, self.split_seed, self.train_subset)
        if key in _SPLITS_CACHE:
            self._splits = _SPLITS_CACHE[key]
            return
        self._splits = _SPLITS_CACHE[key] = self._load_splits()

    def _load_splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        from torchvision.datasets import MNIST

        ensure_mnist(self.data_dir, download=self.download)  # no-op when prepare_data ran
        train = MNIST(str(self.data_dir), train=True, download=False)
        test = MNIST(str(self.data_dir), train=False, download=False)
        train_x, train_y = _as_float(train.data), train.targets
        test_x, test_y = _as_float(test.data), test.targets

        n_train = len(train_x) - self.val_size
        if n_train < self.batch_size:
            raise ConfigError(
                f"data.batch_size={self.batch_size} is larger than the {n_train} training images "
                f"left after data.val_size={self.val_size}; lower one of them")
        # The val split depends only on split_seed, never on the run's seed, so every run of a
        # sweep validates on the same images.
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(self.split_seed))
        train_idx, val_idx = order[:n_train], order[n_train:]
        if self.train_subset:
            train_idx = train_idx[: self.train_subset]
        val_x, val_y = train_x[val_idx], train_y[val_idx]
        train_x, train_y = train_x[train_idx], train_y[train_idx]
        if self.binarize == "dynamic":
            val_x = _binarize_once(val_x, seed=self.split_seed + 1)
            test_x = _binarize_once(test_x, seed=self.split_seed + 2)
        return {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The (images, labels) tensors of a split, for evaluation and figures."""
        self.setup()
        return self._splits[name]

    # --- batches -------------------------------------------------------------------------
    def train_dataloader(self) -> TensorBatches:
        x, y = self._splits["train"]
        # The shuffle stream follows the global seed so that `seed=` makes a run reproducible.
        seed = int(torch.initial_seed()) % (2**63)
        return TensorBatches(x, y, self.batch_size, shuffle=True, seed=seed, drop_last=True,
                             group=self.batches_per_fetch)

    def val_dataloader(self) -> TensorBatches:
        return TensorBatches(*self._splits["val"], self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return TensorBatches(*self._splits["test"], self.eval_batch_size, shuffle=False)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # Lightning's generic transfer walks the batch's structure, ~0.35 ms a step on a ~3 ms
        # step (benchmarks/speed.py); a batch here is always an (images, labels) pair.
        x, y = batch
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # Dynamic binarisation happens on the device, once per training batch.
        x, y = batch
        if self.binarize == "dynamic" and self.trainer is not None and self.trainer.training:
            x = torch.bernoulli(x)
        return x, y


def _as_float(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.unsqueeze(1).float().div_(255.0)


def _binarize_once(x: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed))
