"""β-VAE experiments, one run: data, models, training, figures and metrics (never imports sweeps/)."""

import logging
import warnings

# Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates; nothing for a user to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
# The model steps its optimiser itself; a checkpoint then holds the state after step N, and its
# step counter says N, which is what resuming needs. Lightning warns about it regardless.
warnings.filterwarnings("ignore", message=r".*Using ModelCheckpoint with manual optimization.*")
# On a machine with Slurm installed, Lightning advises srun for every run; hydra/launcher=slurm
# already runs each job inside its own Slurm job, and a local run needs no srun.
warnings.filterwarnings("ignore", message=r".*The `srun` command is available on your system but is not used.*")


class _DropAdverts(logging.Filter):
    """Lightning 2.6 prints a "💡 Tip" advertising its cloud logger on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


for _name in ("lightning.fabric.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_DropAdverts())
