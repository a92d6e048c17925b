"""One copy of the data per machine (vae/data/disk_cache.py), measured: memory and start-up of a
sweep's workers on a full-size dSprites-layout file, and batch gathering from a mapped MNIST.

    python -m benchmarks.data_memory                 # ~3 min on 2 cores, ~7 GB of memory at peak
    python -m benchmarks.data_memory --cases gather  # only the MNIST batch timing

The file: the ``shapes`` renderer at 64×64 over dSprites' factor grid (3 × 6 × 40 × 32 × 32 =
737,280 images) in dSprites' npz layout, rendered once into ``--dir`` (default data/benchmarks;
kept for later runs). Each worker is a process that loads ``data=dsprites`` from it as a sweep's
job does (prepare_data, setup), reads every training image once (as training does over a pass),
then waits while the parent reads every worker's proportional set size (PSS: a page shared by n
processes counts 1/n in each) from /proc/<pid>/smaps_rollup. Data memory = a worker's PSS after
loading minus before. Cases: without the cache (each worker decodes its own copy), the cache's
first build, and with the cache in place; 1 worker, then 2 side by side.
Targets: with the cache the second worker adds < 10% of the first's data memory; a worker's data
start-up < 0.5 s once the cache exists.

gather: TensorBatches over MNIST's 50,000 training images, in this process's memory against
mapped from the cache; the two alternate, ``--repeats`` times each, the fastest kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vae.config import PROJECT_ROOT

SIZES = (3, 6, 40, 32, 32)
FILE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"

WORKER = r"""
import json, sys, time
from pathlib import Path
import torch
from vae.data.dsprites import DSpritesDataModule

def pss_kb():
    return next(int(l.split()[1]) for l in Path("/proc/self/smaps_rollup").read_text().splitlines()
                if l.startswith("Pss:"))

settings = json.loads(sys.argv[1])
before = pss_kb()
started = time.perf_counter()
data = DSpritesDataModule(**settings)
data.prepare_data()
data.setup()
startup = time.perf_counter() - started
images = data.split("train").images
for start in range(0, len(images), 4096):      # every training page once, as a pass of training
    int(images[start:start + 4096].sum())       # (small slices: the sum's int64 copy stays small)
peak = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
print(json.dumps({"before_kb": before, "startup_s": startup, "peak_kb": peak}), flush=True)
sys.stdin.readline()                             # the parent measures, then lets us go
"""


def render_file(folder: Path) -> str:
    """The full-size file in dSprites' layout, rendered once; returns its MD5."""
    path = folder / "dsprites" / FILE_NAME
    md5_path = path.with_suffix(".md5")
    if path.exists() and md5_path.exists():
        return md5_path.read_text().strip()
    from protocol.atomic import atomic_write_text
    from vae.data.shapes import grid_factors, render

    started = time.perf_counter()
    factors = grid_factors(SIZES)
    images = render(factors, 64, SIZES)
    classes = np.concatenate([np.zeros((len(factors), 1), np.int64), factors], axis=1)   # colour, then the 5
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".rendering.npz")
    np.savez_compressed(tmp, imgs=images, latents_classes=classes)
    tmp.replace(path)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    atomic_write_text(md5_path, md5 + "\n")
    print(f"rendered {len(images):,} images of 64×64 into {path} ({path.stat().st_size / 2**20:.0f} MB) "
          f"in {time.perf_counter() - started:.0f} s")
    return md5


def pss_kb(pid: int) -> int:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))


def run_workers(settings: dict, count: int) -> dict:
    """``count`` workers holding the data side by side; their start-ups and PSS while all are loaded.
    Each starts once the one before has loaded: without the cache a worker's decoding peaks at about
    twice its data, and two peaks at once would need ~12 GB."""
    procs, reports = [], []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(settings)], cwd=PROJECT_ROOT,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            reports.append(json.loads(procs[-1].stdout.readline()))
        pss = [pss_kb(p.pid) for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=120)
    data_mb = [(after - r["before_kb"]) / 1024 for after, r in zip(pss, reports)]
    return {"startup_s": [r["startup_s"] for r in reports], "total_pss_mb": sum(pss) / 1024,
            "data_mb": sum(data_mb), "peak_rss_mb": max(r["peak_kb"] for r in reports) / 1024}


def memory_cases(folder: Path) -> None:
    md5 = render_file(folder)
    settings = {"data_dir": str(folder), "md5": md5, "download": False}
    shutil.rmtree(folder / "cache", ignore_errors=True)
    rows = []
    for label, cache, counts in (("no cache (a copy each)", False, (1, 2)), ("cache, first build", True, (1,)),
                                 ("cache in place", True, (1, 2))):
        for count in counts:
            r = run_workers({**settings, "cache": cache}, count)
            rows.append((label, count, r))
            print(f"{label:24s} {count} worker(s): data {r['data_mb']:7.0f} MB, all processes {r['total_pss_mb']:7.0f} MB "
                  f"PSS; data start-up {', '.join(f'{s:.2f}' for s in r['startup_s'])} s; a worker's peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB", flush=True)
    by = {(label, count): r for label, count, r in rows}
    for label in ("no cache (a copy each)", "cache in place"):
        one, two = by[(label, 1)]["data_mb"], by[(label, 2)]["data_mb"]
        print(f"{label}: the second worker adds {two - one:.0f} MB = {100 * (two - one) / one:.1f}% of the first's "
              f"data memory (target with the cache < 10%)")
    warm = max(by[("cache in place", 2)]["startup_s"] + by[("cache in place", 1)]["startup_s"])
    print(f"data start-up with the cache in place: at most {warm:.2f} s (target < 0.5 s); "
          f"without: {max(by[('no cache (a copy each)', 1)]['startup_s']):.1f} s")


def gather_case(repeats: int) -> None:
    import torch

    import vae.data.base
    from vae.data.mnist import MNISTDataModule
    from vae.data.mnist_files import ensure_mnist

    torch.set_num_threads(1)
    data_dir = PROJECT_ROOT / "data"
    ensure_mnist(data_dir, download=False)
    sources = {}
    for cache in (False, True):
        vae.data.base._SPLITS_CACHE.clear()
        dm = MNISTDataModule(data_dir=str(data_dir), cache=cache)
        dm.setup()
        sources["mapped" if cache else "in memory"] = dm
    assert torch.equal(sources["mapped"].split("train").images, sources["in memory"].split("train").images)
    best = {name: float("inf") for name in sources}
    for _ in range(repeats):
        for name, dm in sources.items():
            loader = dm.train_dataloader()             # one epoch: 781 batches of 64
            started = time.perf_counter()
            for x, y in loader:
                dm.as_float(x)
            best[name] = min(best[name], (time.perf_counter() - started) / len(loader))
    for name, t in best.items():
        print(f"MNIST batch of 64 gathered ({name}): {1e6 * t:.1f} µs")
    print(f"mapped / in memory: {best['mapped'] / best['in memory']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=PROJECT_ROOT / "data" / "benchmarks")
    parser.add_argument("--cases", default="memory,gather")
    parser.add_argument("--repeats", type=int, default=10, help="epochs of gathering per source")
    opts = parser.parse_args()
    cases = opts.cases.split(",")
    if "gather" in cases:
        gather_case(opts.repeats)
    if "memory" in cases:
        memory_cases(opts.dir)


if __name__ == "__main__":
    main()
