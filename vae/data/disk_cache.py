"""One copy of a dataset per machine: its decoded splits cached on disk once, memory-mapped by every process.

Every process of a sweep (joblib workers, fused groups) would otherwise decode its own copy: 3 GB of
dSprites images each. Here the first process writes the splits as ``.npy`` files, and every process
maps them (``np.load(mmap_mode="c")``): the operating system keeps one copy in its page cache and
shares it among all of them; copy-on-write, so a stray write stays private to its process.

A cache folder is ``<root>/<dataset>-<hash of its key>``: the key holds everything that shapes the
arrays (the datamodule's settings, its source files' checksums, the source code of its classes), so
any change makes a new folder. It is written into a temporary folder and renamed into place
(atomic), its ``manifest.json`` last inside it. On open every file's size, ``.npy`` header and a
checksum of sampled blocks are checked (a full checksum would read 3 GB per worker, ~6 s): a
half-written, truncated or overwritten cache is rebuilt, never used.

Splits that view one array (dSprites' train/val/test are row ranges of its "all") are stored as
row ranges of one file, so they stay one copy on disk and in memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

log = logging.getLogger(__name__)

FORMAT = 1
FIELDS = ("images", "labels", "factors")
MANIFEST = "manifest.json"
WHOLE_FILE_BYTES = 4 << 20      # files up to this size are hashed whole
SAMPLES, SAMPLE_BYTES = 64, 64 << 10    # larger ones: 64 blocks of 64 KiB spread over the file


class CorruptCache(Exception):
    pass


def folder_for(root: Path, name: str, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(root) / f"{name}-{digest}"


def load_or_build(folder: Path, key: dict, build: Callable[[], dict], split_type) -> dict:
    """The splits in ``folder`` memory-mapped; built with ``build()`` (-> {name: Split}) and written
    there first if the folder is missing or corrupt. One process builds while the others wait
    for it (a lock file), so a sweep's workers decode the data once, not once each."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = open(folder.parent / f".{folder.name}.lock", "a")
    except OSError:
        if folder.exists():      # a cache someone else built in a folder this user cannot write
            return open_splits(folder, key, split_type)
        raise
    with lock, _locked(lock):
        if folder.exists():
            try:
                return open_splits(folder, key, split_type)
            except CorruptCache as exc:
                log.warning("data cache %s is unusable (%s); rebuilding it", folder, exc)
                _remove(folder)
        write_splits(folder, key, build())
        return open_splits(folder, key, split_type)


def write_splits(folder: Path, key: dict, splits: dict) -> None:
    """Write the splits' arrays and a manifest into a temporary folder, then rename it to ``folder``."""
    arrays, layout = _plan(splits)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        files = []
        for i, array in enumerate(arrays):
            path = tmp / f"{i}.npy"
            with open(path, "wb") as f:
                np.save(f, array, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            files.append({"file": path.name, "bytes": path.stat().st_size, "digest": _digest(path),
                          "dtype": array.dtype.str, "shape": list(array.shape)})
        manifest = {"format": FORMAT, "key": key, "files": files, "splits": layout}
        (tmp / MANIFEST).write_text(json.dumps(manifest, sort_keys=True, default=str))
        os.chmod(tmp, 0o755)   # mkdtemp makes 0700; the cache is meant for every user of the data
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_splits(folder: Path, key: dict, split_type) -> dict:
    """The splits of a written cache, memory-mapped. Raises CorruptCache if anything is off."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise CorruptCache(f"no readable {MANIFEST}: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("key") != json.loads(json.dumps(key, default=str)):
        raise CorruptCache(f"{MANIFEST} describes other data")
    arrays = []
    for entry in manifest["files"]:
        path = folder / entry["file"]
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise CorruptCache(f"{entry['file']}: {exc.strerror}") from None
        if size != entry["bytes"]:
            raise CorruptCache(f"{entry['file']} has {size} bytes, {entry['bytes']} written")
        if _digest(path) != entry["digest"]:
            raise CorruptCache(f"{entry['file']} fails its checksum")
        try:
            array = np.load(path, mmap_mode="c", allow_pickle=False)
        except ValueError as exc:
            raise CorruptCache(f"{entry['file']}: {exc}") from None
        if array.dtype.str != entry["dtype"] or list(array.shape) != entry["shape"]:
            raise CorruptCache(f"{entry['file']} holds {array.dtype} {array.shape}, not what was written")
        arrays.append(torch.from_numpy(array))
    return {name: split_type(**{field: None if spec is None else arrays[spec[0]][spec[1]:spec[2]]
                                for field, spec in fields.items()})
            for name, fields in manifest["splits"].items()}


def _plan(splits: dict) -> tuple[list[np.ndarray], dict]:
    """The arrays to write, and each split's fields as [array, first row, end row]. A field that is
    a row range of a contiguous whole storage shares that storage's array with the others."""
    arrays: list[np.ndarray] = []
    bases: dict[tuple, int] = {}
    layout = {}
    for name, split in splits.items():
        fields = {}
        for field in FIELDS:
            t = getattr(split, field)
            if t is None:
                fields[field] = None
                continue
            base, start = _row_base(t)
            if base is None:
                arrays.append(t.contiguous().numpy())
                fields[field] = [len(arrays) - 1, 0, len(t)]
                continue
            ident = (t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape[1:]))
            if ident not in bases:
                arrays.append(base.numpy())
                bases[ident] = len(arrays) - 1
            fields[field] = [bases[ident], start, start + len(t)]
        layout[name] = fields
    return arrays, layout


def _row_base(t: torch.Tensor) -> tuple[torch.Tensor | None, int]:
    """(the whole storage of ``t`` as rows shaped like t's, t's first row in it), or (None, 0)."""
    row = int(np.prod(t.shape[1:])) if t.dim() else 0
    if not row or not t.is_contiguous() or t.storage_offset() % row:
        return None, 0
    row_bytes = row * t.element_size()
    total = t.untyped_storage().nbytes()
    if total % row_bytes:
        return None, 0
    base = torch.as_strided(t, (total // row_bytes, *t.shape[1:]), t.stride(), 0)
    return base, t.storage_offset() // row


def _digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= WHOLE_FILE_BYTES:
            h.update(f.read())
        else:
            for i in range(SAMPLES):   # the first and the last block included
                f.seek((size - SAMPLE_BYTES) * i // (SAMPLES - 1))
                h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def _remove(folder: Path) -> None:
    # Renamed first, so no process finds a half-deleted folder; files still mapped stay valid.
    trash = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".trash"))
    os.replace(folder, trash / folder.name)
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def _locked(f):
    # fcntl's lock is released by the kernel if the process dies: no stale lock to clean up.
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)
