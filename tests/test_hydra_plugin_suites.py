"""Hydra's own plugin test suites, run against ``hydra/sweeper=optuna`` as Hydra's example
sweeper plugin runs them (``LauncherTestSuite`` with the basic launcher, ``IntegrationTestSuite``
from a command line), plus the joblib launcher.

These suites sweep comma lists (``+a=0,1``) and expect every combination once, in order: the
Optuna sweeper walks a space made only of choices as a grid (see sweeps/optuna/search_space.py).
"""

import pytest
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.betavae_sweepers.optuna_sweeper import OptunaSweeper


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path_factory, monkeypatch):
    # The default storage is sqlite:///outputs/optuna.db relative to where the sweep starts:
    # keep it in a scratch folder. Not the suite's tmpdir: Hydra's sweep runner deletes that at
    # exit, and joblib's reused worker processes would be left in a deleted directory.
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def test_discovery() -> None:
    assert OptunaSweeper.__name__ in [p.__name__ for p in Plugins.instance().discover(Sweeper)]


@pytest.mark.parametrize("launcher_name, overrides", [("basic", ["hydra/sweeper=optuna"])])
class TestOptunaSweeperBasicLauncher(LauncherTestSuite):
    ...


# The same suite through joblib's worker processes: slow (they start for every test); the basic
# launcher's run above checks the sweeper in the quick suite.
@pytest.mark.slow
@pytest.mark.parametrize("launcher_name, overrides",
                         [("joblib", ["hydra/sweeper=optuna", "hydra.launcher.n_jobs=2"])])
class TestOptunaSweeperJoblibLauncher(LauncherTestSuite):
    ...


@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", "hydra/sweeper=optuna", "hydra/launcher=basic"])],
)
class TestOptunaSweeperIntegration(IntegrationTestSuite):
    ...
