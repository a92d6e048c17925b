"""A fused member's ``checkpoints/last.ckpt``, in the layout Lightning writes for a solo run.

So that both resume from it: a solo run (``ckpt_path=last``, its Trainer restores the weights, Adam
and the loop counters, its datamodule's TensorBatches continues the same batch stream) and a
fused group rerun over the same sweep folder (sweeps/fused/fused_training.py reads it back).

The loop counters are set on the loop objects of a Lightning Trainer and saved with their own
``state_dict()``: Lightning owns the layout, this file only says how many steps were done. The
values are those a solo run of BetaVAE (manual optimisation, batch groups of ``group`` batches)
has after ``step`` optimiser steps, when its ModelCheckpoint saves at a training batch's end.
"""

from __future__ import annotations

import io
from pathlib import Path

import lightning as L
import torch

from protocol.atomic import atomic_write_bytes

FUSED_KEY = "fused_member"     # our extra entry: the member's noise generator, to resume it exactly


def _set(progress, **values) -> None:
    for part in (progress.total, progress.current):
        for key, value in values.items():
            setattr(part, key, value)


_trainer: L.Trainer | None = None     # only its loop objects are used; built once per process


def loop_states(step: int, group: int, iterations_per_epoch: int) -> tuple[int, dict]:
    """(epoch, Lightning's ``loops`` entry) after ``step`` optimiser steps in groups of ``group``."""
    global _trainer
    if _trainer is None:
        _trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu", devices=1)
    trainer = _trainer
    iterations = step // group
    epoch = max(iterations - 1, 0) // iterations_per_epoch
    in_epoch = iterations - epoch * iterations_per_epoch
    fit = trainer.fit_loop
    _set(fit.epoch_progress, ready=epoch + 1, started=epoch + 1, processed=epoch, completed=epoch)
    batch = fit.epoch_loop.batch_progress
    for part, count in ((batch.total, iterations), (batch.current, in_epoch)):
        part.ready = part.started = part.processed = count
        part.completed = count - 1          # saved in on_train_batch_end, before "completed"
    fit.epoch_loop._batches_that_stepped = iterations - 1
    _set(fit.epoch_loop.manual_optimization.optim_step_progress, ready=step, completed=step)
    fit_state = fit.state_dict()
    # The datamodule's TensorBatches state (vae/data/base.py): batches handed out, items this epoch.
    fit_state["state_dict"] = {"combined_loader": [{"position": iterations * group, "taken": in_epoch}]}
    return epoch, {"fit_loop": fit_state, "validate_loop": trainer.validate_loop.state_dict(),
                   "test_loop": trainer.test_loop.state_dict(), "predict_loop": trainer.predict_loop.state_dict()}


def write(path: Path, *, step: int, epoch: int, loops: dict, state_dict: dict, optimizer_state: dict,
          hyper_parameters: dict, generator_state: torch.Tensor | None) -> None:
    checkpoint = {"epoch": epoch, "global_step": step, "pytorch-lightning_version": L.__version__,
                  "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "loops": loops,
                  "callbacks": {}, "optimizer_states": [optimizer_state], "lr_schedulers": [],
                  "hparams_name": "kwargs", "hyper_parameters": dict(hyper_parameters),
                  FUSED_KEY: {"generator_state": generator_state}}
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())     # a kill mid-write leaves the previous one


def read(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)
