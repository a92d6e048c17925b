"""One copy of the data per machine (vae/data/disk_cache.py): a dataset's splits are decoded once
into a cache folder and memory-mapped after that, keyed by its settings and source file, rebuilt
when corrupt, and mapped (not copied) by every process."""

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vae.data.base
from vae.data.base import InMemoryImageDataModule
from vae.data.info import DatasetInfo, Split
from vae.data.disk_cache import WHOLE_FILE_BYTES

SIDE = 64                      # 2,000 images of 64×64 bytes: a file larger than WHOLE_FILE_BYTES
ROWS = 2000


class Sourced(InMemoryImageDataModule):
    """Grey images decoded from ``<data_dir>/source.bin`` (any bytes: a seed); every decode is
    appended to ``<data_dir>/decoded.log`` with the decoding process's id."""

    info = DatasetInfo(name="sourced", image_shape=(1, SIDE, SIDE), pixels="grey", label_name="digit",
                       num_classes=10)

    def __init__(self, offset: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    @property
    def source(self) -> Path:
        return self.data_dir / "source.bin"

    def source_checksums(self) -> dict[str, str]:
        return {"source.bin": hashlib.md5(self.source.read_bytes()).hexdigest()}

    def load_splits(self) -> dict[str, Split]:
        with open(self.data_dir / "decoded.log", "a") as f:
            f.write(f"{os.getpid()}\n")
        seed = int.from_bytes(hashlib.md5(self.source.read_bytes()).digest()[:4], "little") + self.offset
        g = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (ROWS, 1, SIDE, SIDE), dtype=torch.uint8, generator=g)
        labels = torch.arange(ROWS) % 10
        part = lambda a, b: Split(images[a:b], labels[a:b])
        return {"train": part(0, 1600), "val": part(1600, 1800), "test": part(1800, ROWS), "all": part(0, ROWS)}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(vae.data.base, "_SPLITS_CACHE", {})   # this process's own cache of the splits
    (tmp_path / "source.bin").write_bytes(b"first version")
    return tmp_path


def load(folder: Path, **kwargs) -> Sourced:
    vae.data.base._SPLITS_CACHE.clear()
    data = Sourced(data_dir=str(folder), batch_size=16, **kwargs)
    data.setup()
    return data


def decodes(folder: Path) -> int:
    path = folder / "decoded.log"
    return len(path.read_text().split()) if path.exists() else 0


def cache_folders(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "cache").iterdir() if p.is_dir() and not p.name.startswith("."))


def test_the_cache_is_built_once_then_mapped_and_equals_the_decoded_data(folder):
    first = load(folder)
    second = load(folder)
    assert decodes(folder) == 1                         # the second open did not decode
    direct = load(folder, cache=False)
    assert decodes(folder) == 2
    for name in ("train", "val", "test", "all"):
        assert torch.equal(second.split(name).images, direct.split(name).images)
        assert torch.equal(second.split(name).labels, direct.split(name).labels)
        assert torch.equal(first.split(name).images, second.split(name).images)
    # val and test are binarised once (grey pixels, binarize=dynamic), and cached so
    assert set(second.split("val").images.unique().tolist()) == {0.0, 1.0}
    # Splits that view one array are one file: the images are on disk once, not twice.
    (cache,) = cache_folders(folder)
    image_files = [p for p in cache.glob("*.npy") if p.stat().st_size >= ROWS * SIDE * SIDE]
    assert len(image_files) == 1
    train = second.split("train").images
    assert train.data_ptr() == second.split("all").images.data_ptr()   # one mapping, two views


def test_the_key_follows_the_settings_and_the_source_but_not_a_subset(folder):
    base = load(folder).split("train").images
    assert len(load(folder, train_subset=100).split("train")) == 100 and decodes(folder) == 1
    assert len(cache_folders(folder)) == 1              # a subset slices the same cache
    changed = load(folder, offset=1).split("train").images
    assert decodes(folder) == 2 and not torch.equal(changed, base)
    load(folder, split_seed=3)                           # the binarisation of val/test changes
    assert decodes(folder) == 3
    (folder / "source.bin").write_bytes(b"second version")
    other = load(folder).split("train").images
    assert decodes(folder) == 4 and not torch.equal(other, base)
    assert len(cache_folders(folder)) == 4


def test_the_key_is_the_same_before_and_after_a_trainer_attaches_the_datamodule(folder):
    # A sweep worker loads the data before its first job (no Trainer yet); the job's datamodule is
    # attached to its Trainer when it loads: both must find the same splits, decoded once.
    import lightning as L

    ahead = Sourced(data_dir=str(folder), batch_size=16)
    in_job = Sourced(data_dir=str(folder), batch_size=64)
    in_job.trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                               enable_progress_bar=False, enable_model_summary=False)
    assert ahead.cache_key() == in_job.cache_key() and ahead.disk_key() == in_job.disk_key()
    ahead.setup()
    in_job.setup()
    assert decodes(folder) == 1 and in_job.split("train").images.data_ptr() == ahead.split("train").images.data_ptr()


@pytest.mark.parametrize("damage", ["truncate", "overwrite", "manifest", "missing"])
def test_a_corrupt_cache_is_detected_and_rebuilt(folder, caplog, damage):
    expected = load(folder).split("train").images.clone()
    (cache,) = cache_folders(folder)
    big = max(cache.glob("*.npy"), key=lambda p: p.stat().st_size)
    assert big.stat().st_size > WHOLE_FILE_BYTES         # the sampled checksum, not the whole-file one
    if damage == "truncate":
        os.truncate(big, big.stat().st_size // 2)
    elif damage == "overwrite":     # same size, a block of other bytes in the first data block
        with open(big, "r+b") as f:
            f.seek(200)
            f.write(b"\x07" * 4096)
    elif damage == "manifest":
        (cache / "manifest.json").write_text('{"format": 1, "files": [')
    else:
        big.unlink()
    with caplog.at_level(logging.WARNING, logger="vae.data.disk_cache"):
        again = load(folder).split("train").images
    assert decodes(folder) == 2                          # rebuilt, not used
    assert torch.equal(again, expected)
    assert any("is unusable" in r.getMessage() and "rebuilding it" in r.getMessage() for r in caplog.records)
    assert cache_folders(folder) == [cache]


def test_a_half_written_cache_is_never_read(folder):
    load(folder)
    (cache,) = cache_folders(folder)
    # What a build killed half-way leaves: its temporary folder, never the cache folder itself.
    leftover = folder / "cache" / f".{cache.name}.abc.tmp"
    leftover.mkdir()
    (leftover / "0.npy").write_bytes(b"half")
    cache.rename(folder / "cache" / "moved-away")
    load(folder)
    assert decodes(folder) == 2 and (cache / "manifest.json").exists()


def test_an_unwritable_cache_folder_keeps_the_data_in_memory(folder, caplog):
    (folder / "cache").write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING):
        data = load(folder)
    assert len(data.split("train")) == 1600
    assert any("cannot be written" in r.getMessage() for r in caplog.records)


CHILD = """
import os, sys, time
from pathlib import Path
from test_data_cache import Sourced
data = Sourced(data_dir=sys.argv[1], batch_size=16)
data.setup()
total = int(data.split("all").images.sum())          # read every page
Path(sys.argv[1], f"ready-{os.getpid()}").touch()
while len(list(Path(sys.argv[1]).glob("ready-*"))) < 2:   # both alive, both mapped
    time.sleep(0.05)
# /proc/self/smaps: per mapping, a header line (address perms offset dev inode path), then fields
mapped, shared, current = set(), 0, None
for line in Path("/proc/self/smaps").read_text().splitlines():
    fields = line.split()
    if "-" in fields[0] and len(fields) >= 5:
        current = fields[5] if len(fields) > 5 and "/cache/" in fields[5] and fields[5].endswith(".npy") else None
        if current:
            mapped.add((fields[3], fields[4], current))
    elif current and fields[0] == "Shared_Clean:":
        shared += int(fields[1])
print(json.dumps({"total": total, "mapped": sorted(mapped), "shared_kb": shared}))
"""


@pytest.mark.slow
def test_two_processes_map_one_copy_and_decode_once(folder):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    children = [subprocess.Popen([sys.executable, "-c", "import json\n" + CHILD, str(folder)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert decodes(folder) == 1                          # started together: one decoded, one waited
    a, b = results
    assert a["total"] == b["total"]
    assert a["mapped"] and a["mapped"] == b["mapped"]   # the same files (device, inode) in both
    # Every page of the cache's files is one page of the page cache, shared with the other process.
    assert min(a["shared_kb"], b["shared_kb"]) * 1024 >= ROWS * SIDE * SIDE
