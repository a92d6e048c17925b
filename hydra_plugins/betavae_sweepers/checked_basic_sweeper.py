"""``hydra/sweeper=checked_basic`` (this project's default): Hydra's basic grid sweeper, checking
every job's config before anything is written. The logic is in sweeps/grid/checked_sweeper.py;
Hydra finds plugins only under hydra_plugins/."""

from sweeps.grid.checked_sweeper import CheckedBasicSweeperImpl


class CheckedBasicSweeper(CheckedBasicSweeperImpl):
    pass
