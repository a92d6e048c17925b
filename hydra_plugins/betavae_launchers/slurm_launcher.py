"""``hydra/launcher=slurm`` (conf/hydra/launcher/slurm.yaml): the schema Hydra composes and the
class it instantiates.

The logic is in ``sweeps/slurm/``, imported when Hydra builds the launcher, not when it scans
plugins; Hydra only discovers launchers in the ``hydra_plugins`` namespace, hence this thin module.
"""

from dataclasses import dataclass
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf


@dataclass
class SlurmLauncherConf(SlurmQueueConf):
    """submitit_slurm's keys, plus how the sweep waits for its jobs (sweeps/slurm/lost.py)."""
    _target_: str = "hydra_plugins.betavae_launchers.slurm_launcher.BetaVaeSlurmLauncher"
    poll_s: float = 1.0
    state_check_s: float = 15.0
    lost_after_s: float = 120.0


class BetaVaeSlurmLauncher(Launcher):
    def __init__(self, **kwargs: Any) -> None:
        from sweeps.slurm.launcher import SlurmLauncherImpl

        self.impl = SlurmLauncherImpl(**kwargs)

    def setup(self, **kwargs: Any) -> None:
        self.impl.setup(**kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self.impl.launch(job_overrides, initial_job_idx)


# The preset conf/hydra/launcher/slurm.yaml builds on this schema (as train.yaml on train_schema).
ConfigStore.instance().store(group="hydra/launcher", name="slurm_schema", node=SlurmLauncherConf,
                             provider="betavae_launchers")
