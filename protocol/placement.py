"""Which GPU a sweep's worker process trains on: one machine's GPUs shared out among its workers.

Pure functions of the worker's number, the GPU count and ``jobs_per_gpu``, so they are tested on
any machine with the count given. A sweep on N GPUs runs N × jobs_per_gpu workers (no more than it
has jobs); worker w (protocol/worker_slot.py numbers them 0, 1, ...) trains on GPU w mod N, so
fewer workers than that still spread over every GPU and no GPU gets more than jobs_per_gpu.
Placement applies only to jobs that ask for one GPU: a CPU job, or one that names several devices or
a strategy, runs as configured; so does every job on a machine with one GPU or none.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

GPU_ACCELERATORS = ("gpu", "cuda", "auto")


def gpu_workers(gpus: int, jobs_per_gpu: int) -> int:
    """Worker processes for a sweep whose jobs each take one of ``gpus`` GPUs."""
    if gpus < 1 or jobs_per_gpu < 1:
        raise ValueError(f"gpus={gpus} and jobs_per_gpu={jobs_per_gpu} must be ≥ 1")
    return gpus * jobs_per_gpu


def device_index(worker: int, gpus: int, jobs_per_gpu: int) -> int:
    """The GPU of worker ``worker`` (0-based). Round robin: workers 0..N-1 take one GPU each before
    any GPU gets a second. A worker past gpus × jobs_per_gpu (an explicit worker count) wraps too."""
    gpu_workers(gpus, jobs_per_gpu)   # the same check
    if worker < 0:
        raise ValueError(f"worker={worker} must be ≥ 0")
    return worker % gpus


def wants_one_gpu(trainer: Mapping[str, Any]) -> bool:
    """Whether a job's Trainer arguments ask for one GPU (what placement applies to)."""
    return (str(trainer.get("accelerator") or "cpu") in GPU_ACCELERATORS
            and trainer.get("devices", 1) in (1, "1")
            and trainer.get("strategy", "auto") in (None, "auto"))


def placed_devices(trainer: Mapping[str, Any], worker: int, gpus: int, jobs_per_gpu: int) -> Optional[list[int]]:
    """The Trainer's ``devices`` for this worker's job: ``[GPU index]``, or None to leave the job
    as configured (not a one-GPU job, or a machine with one GPU or none)."""
    if gpus <= 1 or not wants_one_gpu(trainer):
        return None
    return [device_index(worker, gpus, jobs_per_gpu)]
