"""A sweep's worker processes numbered 0, 1, ...: each claims the lowest free number once and keeps it
while it lives (protocol/placement.py turns the number into its GPU).

Why claimed and not passed: joblib's workers (Hydra's joblib launcher, the fused launcher) take
jobs from one queue and have no number of their own. A number is held as an flock on
``<folder>/slot-<n>.lock``; the kernel releases it when the process dies, so a replacement worker
reuses the number of the one it replaces.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

_held: dict[str, tuple[int, IO]] = {}   # folder -> (number, the open lock file), for this process


def worker_slot(folder: str | os.PathLike) -> int:
    """This process's number among the processes that claim one in ``folder`` (one folder per sweep)."""
    key = str(Path(folder).resolve())
    if key not in _held:
        Path(key).mkdir(parents=True, exist_ok=True)
        number = 0
        while True:
            f = open(Path(key) / f"slot-{number}.lock", "a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                number += 1
                continue
            _held[key] = (number, f)
            break
    return _held[key][0]
