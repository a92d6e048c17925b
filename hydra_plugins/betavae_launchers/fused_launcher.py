"""``hydra/launcher=fused``: the config Hydra composes and the class it instantiates.

The logic is in ``sweeps/fused/fused_launcher.py``; Hydra only discovers launchers in the
``hydra_plugins`` namespace, hence this thin module.
"""

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher

from sweeps.fused.fused_launcher import FusedLauncherImpl


@dataclass
class FusedLauncherConf:
    _target_: str = "hydra_plugins.betavae_launchers.fused_launcher.FusedLauncher"
    # Most members in one stack; null: every fusible job of the launch in one group.
    fuse: Optional[int] = None
    # torch threads of a fused group; null: in worker processes, the usable cores shared out
    # among them (1 each on a 2-core machine); a group in this process takes 1 or every usable
    # core, whichever trains its first steps faster (measured each time: it depends on the load).
    torch_threads: Optional[int] = None
    # Worker processes that train groups (and unfusible jobs) side by side; null: one per usable
    # core, at most one per job; 1: everything in this process, one group after another.
    workers: Optional[int] = None


class FusedLauncher(Launcher):
    def __init__(self, **kwargs: Any) -> None:
        self.impl = FusedLauncherImpl(**kwargs)

    def setup(self, **kwargs: Any) -> None:
        self.impl.setup(**kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        return self.impl.launch(job_overrides, initial_job_idx)

    @property
    def fuse(self) -> Optional[int]:
        return self.impl.fuse

    def worker_settings(self, jobs: int):
        return self.impl.worker_settings(jobs)

    def launch_numbered(self, job_overrides, job_numbers, on_return=None):
        """Several jobs with given job numbers, each return handed to ``on_return(i, ret)`` as it
        ends: what a sweeper asking for several trials at once needs (sweeps/optuna/optuna_sweeper.py)."""
        return self.impl.launch_numbered(job_overrides, job_numbers, on_return)


ConfigStore.instance().store(group="hydra/launcher", name="fused", node=FusedLauncherConf,
                             provider="betavae_launchers")
