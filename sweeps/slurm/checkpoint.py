"""Save the run's ``checkpoints/last.ckpt`` when Slurm stops a job (SIGTERM), so that a requeued
or rerun job resumes from the step it was stopped at, not from the last periodic checkpoint.

Lightning turns SIGTERM into ``SIGTERMException`` at the next step boundary (a consistent state);
its own ``OnExceptionCheckpoint`` saves on every exception and deletes its file at teardown,
which would remove the ``last.ckpt`` that ModelCheckpoint keeps, hence this one.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException


class CheckpointOnStop(Callback):
    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / "last.ckpt"

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(str(self.path))
