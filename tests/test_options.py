"""Every dataset in conf/data/ and every model in conf/model/ is tested without being named here:
the options are globbed when the tests are collected, so a new YAML (and its module) is picked up
by these tests with no test edit. For one option: ``pytest tests/test_options.py -k shapes``.

Each dataset keeps its declared contract (vae/contract_checks.py) and trains a few steps with the
default model; each model passes its contract checks on every dataset, and trains, validates,
tests and logs a few steps on the default data. A dataset whose files must be downloaded is read
from a small file in its own layout (tests/small_files.py).
"""

import csv
import json

import lightning as L
import pytest

from conftest import CONF_DIR, SMALL_METRICS
from small_files import WRITERS
from vae.contract_checks import check_dataset
from vae.preflight import build_datamodule, check_components
from vae.speed.batch_groups import TakesBatchGroups
from vae.train import train

DATA = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
SEEN: list[tuple[int, int]] = []   # (global_step, images in the batch) per training_step call


class RecordBatches(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        SEEN.append((trainer.global_step, len(batch[0])))


@pytest.fixture
def option_cfg(make_cfg, tmp_path):
    """option_cfg(data, *overrides): a tiny config of that dataset, its files in place."""
    def make(data: str, *overrides: str):
        extra, folder = [], None
        probe = make_cfg(f"data={data}", *overrides)
        if not build_datamodule(probe).files_ready():
            if data not in WRITERS:
                pytest.fail(f"data={data} needs files that are not here: add a writer of a small file in its "
                            f"own layout to tests/small_files.py")
            folder = tmp_path / "small"
            extra = WRITERS[data](folder)
        cfg = make_cfg(f"data={data}", *extra, *overrides, output_dir=tmp_path / "run")
        if folder is not None:
            cfg.data.data_dir = str(folder)
        return cfg
    return make


@pytest.mark.parametrize("data", DATA, ids=[f"data={d}" for d in DATA])
def test_a_dataset_keeps_its_contract_and_trains(option_cfg, tmp_path, data):
    cfg = option_cfg(data, "trainer.max_steps=10", "trainer.val_check_interval=5", "eval.iwae_samples=2",
                     "logger=none", *SMALL_METRICS)
    datamodule = build_datamodule(cfg)
    check_dataset(datamodule)
    metrics = train(cfg)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "completed" and record["params"]["data"] == data and metrics["steps"] == 10
    assert metrics["test/neg_elbo"] > 0
    if datamodule.info.factors:           # known factors: the disentanglement scores are computed
        assert 0 <= metrics["test/mig"] <= 1 and 0 <= metrics["test/factor_vae"] <= 1


@pytest.mark.parametrize("data", DATA, ids=[f"data={d}" for d in DATA])
@pytest.mark.parametrize("model", MODELS, ids=[f"model={m}" for m in MODELS])
def test_a_model_keeps_its_contract_on_every_dataset(option_cfg, model, data):
    check_components(option_cfg(data, f"model={model}"))   # builds it, runs its networks on one batch


@pytest.mark.parametrize("model", MODELS, ids=[f"model={m}" for m in MODELS])
def test_a_model_trains_validates_tests_and_logs(make_cfg, tmp_path, model):
    SEEN.clear()
    # speed.batches_per_fetch=16 hands groups of batches only to a model that opts in
    # (vae/speed/batch_groups.py); every other model gets one ordinary batch per training_step.
    cfg = make_cfg(f"model={model}", "speed.batches_per_fetch=16", "trainer.max_steps=32",
                   "trainer.val_check_interval=16", "trainer.log_every_n_steps=8", "logger=csv",
                   "+callbacks.record._target_=test_options.RecordBatches")
    metrics = train(cfg)
    sizes = [size for _, size in SEEN]
    if issubclass(_model_class(cfg), TakesBatchGroups):
        assert sizes == [8 * 64] * 4                                # groups of 8 (divides every interval)
    else:
        assert sizes == [64] * 32 and [step for step, _ in SEEN] == list(range(32))
    assert metrics["steps"] == 32
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    # once per val_check_interval and log_every_n_steps (a model may count steps from 0 or from 1)
    assert len([r for r in rows if r.get("val/neg_elbo")]) == 2
    assert len([r for r in rows if r.get("train/loss")]) == 4
    assert {"test/neg_elbo", "test/rate", "test/distortion", "val/neg_elbo"} <= set(metrics)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed" and record["params"]["model"] == model
    assert (tmp_path / "images" / "reconstructions.png").is_file()   # the figure interface


def _model_class(cfg) -> type:
    from hydra.utils import get_class

    return get_class(cfg.model._target_)
