"""A run on data with known factors scores its latents (vae/metrics/callback.py) and reports the
scores everywhere a metric goes; a run on data without factors shows none of it.

The dataset here is the smallest with factors: a bar at x (8 values) and height y (4 values) in
an 8×8 binary image, every image of the grid in each split.
"""

import json

import numpy as np
import torch

from vae.config import FACTOR_RESULT_KEYS
from vae.data.base import InMemoryImageDataModule
from vae.data.info import DatasetInfo, Factor, Split
from vae.train import train


class Bars(InMemoryImageDataModule):
    info = DatasetInfo(name="bars", image_shape=(1, 8, 8), pixels="binary",
                       factors=(Factor("x", 8), Factor("height", 4)))

    def images_from_factors(self, factors: np.ndarray) -> torch.Tensor:
        factors = torch.as_tensor(np.asarray(factors))
        images = torch.zeros(len(factors), 1, 8, 8)
        rows = torch.arange(8).view(1, 8)
        for i, (x, h) in enumerate(factors.tolist()):
            images[i, 0, :, x] = (rows[0] >= 7 - 2 * h).float()
        return images

    def load_splits(self) -> dict[str, Split]:
        grid = np.stack(np.meshgrid(np.arange(8), np.arange(4), indexing="ij"), -1).reshape(-1, 2)
        factors = torch.as_tensor(np.tile(grid, (40, 1)))
        split = Split(self.images_from_factors(factors), None, factors)
        return {"train": split, "val": split.take(slice(0, 64)), "test": split.take(slice(0, 64))}


def test_a_run_on_factor_data_reports_its_disentanglement(make_cfg, tmp_path):
    cfg = make_cfg("data._target_=test_disentanglement_run.Bars", "data.val_size=64", "data.train_subset=null",
                   "latent_size=3", "logger=csv", "trainer.max_steps=60", "trainer.val_check_interval=30",
                   "callbacks.disentanglement.num_train=500", "callbacks.disentanglement.num_test=300",
                   "callbacks.disentanglement.factor_vae_train=300", "callbacks.disentanglement.factor_vae_eval=200",
                   "callbacks.disentanglement.factor_vae_variance=500", "callbacks.disentanglement.beta_vae_train=300",
                   "callbacks.disentanglement.beta_vae_eval=200")
    metrics = train(cfg)
    assert set(FACTOR_RESULT_KEYS) <= set(metrics)
    assert all(0.0 <= metrics[k] <= 1.0 for k in FACTOR_RESULT_KEYS), metrics
    # a trained code of a bar's position is informative about it
    assert metrics["test/dci_informativeness"] > 0.3
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["metrics"]["test/mig"] == metrics["test/mig"]
    assert np.array(record["metrics"]["test/mutual_info"]).shape == (3, 2)
    assert (tmp_path / "images" / "mutual_info.png").is_file()


def test_scores_are_fixed_by_the_seed(make_cfg):
    from vae.metrics.callback import DisentanglementMetrics
    from vae.metrics.disentanglement import MetricSizes, evaluate
    from vae.preflight import build_datamodule, build_model

    cfg = make_cfg("data._target_=test_disentanglement_run.Bars", "data.val_size=64", "latent_size=3")
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule).eval()
    sizes = MetricSizes(num_train=300, num_test=200, factor_vae_train=200, factor_vae_eval=100,
                        factor_vae_variance=300, beta_vae_train=200, beta_vae_eval=100)
    represent = DisentanglementMetrics._represent(model, datamodule)
    first, second = (evaluate(datamodule, represent, seed=0, sizes=sizes) for _ in range(2))
    assert first.scores == second.scores


def test_data_without_factors_gets_no_scores(make_cfg):
    metrics = train(make_cfg("logger=none", "trainer.max_steps=10", "trainer.val_check_interval=10"))
    assert not set(FACTOR_RESULT_KEYS) & set(metrics)
