"""Where a fused group trains: its device (this worker's own GPU on a machine with several, as a
solo job's would be: protocol/placement.py) and, on a GPU, how many members go into each stack
(as many as its free memory holds: sweeps/fused/group_size.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def training_device(cfg: DictConfig, sweep_dir: Path | None = None):
    """The device of trainer.accelerator, by Lightning's own accelerator registry; on a machine with
    several GPUs, this worker process's own among the workers of ``sweep_dir`` (protocol/placement.py),
    as a solo job's would be."""
    import torch
    from lightning.pytorch.accelerators import AcceleratorRegistry

    from protocol.placement import placed_devices
    from protocol.worker_slot import worker_slot

    name = str(cfg.trainer.get("accelerator") or "cpu")
    if name in ("gpu", "auto"):
        name = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    accelerator = AcceleratorRegistry.get(name)
    device = accelerator.get_parallel_devices(accelerator.parse_devices(cfg.trainer.get("devices", 1)))[0]
    if device.type == "cuda" and sweep_dir is not None and torch.cuda.device_count() > 1:
        worker = worker_slot(sweep_dir / ".workers")
        placed = placed_devices(cfg.trainer, worker, torch.cuda.device_count(), int(cfg.get("jobs_per_gpu") or 1))
        if placed is not None:
            device = torch.device("cuda", placed[0])
            log.info("fused worker %d trains on %s", worker, device)
    return device


def gpu_group_sizes(members: list, datamodule, device) -> list[int]:
    """The group shared out into stacks that fit the device's free memory (sweeps/fused/group_size.py)."""
    import torch

    from sweeps.fused.group_size import member_bytes, members_that_fit, split_evenly
    from vae.models import objective

    free, _ = torch.cuda.mem_get_info(device)
    splits = [datamodule.split(name) for name in ("train", "val", "test")]
    data = sum(s.images.numel() * (1 if s.images.dtype == torch.uint8 else 4) for s in splits)
    evaluation = 4 * 4 * objective.GPU_CHUNK_ELEMENTS   # a GPU evaluation chunk's few float tensors
    model = members[0].model
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    per_member = member_bytes(sum(p.numel() for p in model.parameters()), datamodule.batch_size,
                              datamodule.info.num_pixels + sum(m.out_features for m in linear))
    most = members_that_fit(free, data + evaluation, per_member)
    sizes = split_evenly(len(members), most)
    if len(sizes) > 1:
        log.info("fused group of %d: %d stacks of up to %d fit %s's %.1f GB free", len(members), len(sizes),
                 max(sizes), device, free / 1e9)
    return sizes
