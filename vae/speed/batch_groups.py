"""Batch groups: several training batches per Lightning loop iteration, one optimiser step each.

Why: Lightning's per-iteration bookkeeping is a large share of a tiny model's step
(BENCHMARKS.md). Handing a model 16 batches at once pays it once per 16 steps.

The contract, opt-in: a LightningModule that subclasses ``TakesBatchGroups`` implements
``training_loss(batch, step)``, returning the batch's loss and the scalars to log, and receives
groups of ``speed.batches_per_fetch`` batches, concatenated, in ``training_step``; the mixin
makes one optimiser step per batch of the group (manual optimisation, clipping included) and
hands the scalars to the loggers. A model that does not subclass it is trained as Lightning
always trains: one batch per ``training_step``, automatic optimisation, nothing here applies.

The trainer side (``configure``) makes the group size divide ``max_steps`` and every interval
counted in steps (validation, logging, checkpoints, figures), so those fall on the same steps as
with groups of one, and divides the Trainer's intervals, which Lightning counts in iterations.
The batch sequence is the same for any group size (vae/data/base.py, TensorBatches).
"""

from __future__ import annotations

import math
from typing import Any

import torch


class TakesBatchGroups:
    """Mixin for a LightningModule: opt in to batch groups (see the module docstring)."""

    automatic_optimization = False   # one optimiser step per batch of the group, made here
    gradient_clip_val: float | None = None   # Lightning refuses its Trainer argument in manual mode

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor], step: int) -> tuple[torch.Tensor, dict]:
        """The loss of one ordinary batch at optimiser step ``step``, and the training scalars to
        log (``train/*`` keys, tensors)."""
        raise NotImplementedError

    def train_on_batch(self, batch: tuple[torch.Tensor, torch.Tensor], step: int, log: bool) -> torch.Tensor:
        """One optimiser step on one batch, as Lightning's automatic optimisation makes it."""
        loss, scalars = self.training_loss(batch, step)
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")
        optimizer.step()
        if log:
            self._log_scalars(step, scalars)
        return loss

    def _log_scalars(self, step: int, scalars: dict[str, torch.Tensor]) -> None:
        # The loggers directly, as Lightning's logger connector does (log_metrics, then save): a
        # step-only self.log builds a result object per key per call, and nothing reads training
        # values back from trainer.callback_metrics.
        values = {key: value.item() for key, value in scalars.items()}
        for logger in self.loggers:
            logger.log_metrics(values, step=step)
            logger.save()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        size = self.trainer.datamodule.batch_size
        per_log = self.trainer.log_every_n_steps * getattr(self.trainer.datamodule, "batches_per_fetch", 1)
        loss = None
        for xb, yb in zip(x.split(size), y.split(size)):
            step = self.global_step
            if 0 < self.trainer.max_steps <= step:
                break  # the last group of a run may hold more batches than steps remain
            loss = self.train_on_batch((xb, yb), step, log=(step + 1) % per_log == 0)
        return loss


def group_size(requested: int, trainer_kwargs: dict, callbacks: list) -> int:
    """The largest size ≤ requested that divides every interval counted in steps, and max_steps:
    a shorter last group would make Lightning write the previous step's logs again."""
    intervals = [trainer_kwargs.get("max_steps"), trainer_kwargs.get("val_check_interval"),
                 trainer_kwargs.get("log_every_n_steps", 50),
                 *(getattr(cb, "_every_n_train_steps", None) for cb in callbacks),
                 *(getattr(cb, "every_n_steps", None) for cb in callbacks)]
    return math.gcd(requested, *(i for i in intervals if isinstance(i, int) and i > 0))


def configure(model: Any, datamodule: Any, trainer_kwargs: dict, callbacks: list, requested: int) -> int:
    """Set up groups for a model that opts in and a datamodule that can hand them out; returns
    the group size (1: ordinary batches). Edits ``trainer_kwargs`` in place."""
    if not isinstance(model, TakesBatchGroups) or not hasattr(datamodule, "batches_per_fetch"):
        return 1
    size = group_size(requested, trainer_kwargs, callbacks)
    datamodule.batches_per_fetch = size
    for key in ("val_check_interval", "log_every_n_steps"):  # Lightning counts these in iterations
        if isinstance(trainer_kwargs.get(key), int):
            trainer_kwargs[key] //= size
    return size
