"""Any LightningModule the config names trains, validates, tests and logs correctly; the speed
device (batch groups) reaches only a model that opts in (vae/speed/batch_groups.py)."""

import csv
import json

import lightning as L

from vae.train import train

SEEN: list[tuple[int, int]] = []   # (global_step, images in the batch) per training_step call


class RecordBatches(L.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        SEEN.append((trainer.global_step, len(batch[0])))


def test_a_plain_automatic_optimisation_model_gets_ordinary_batches(make_cfg, tmp_path):
    SEEN.clear()
    # speed.batches_per_fetch=16 would hand an opted-in model 16 batches at once
    metrics = train(make_cfg("model=simple", "speed.batches_per_fetch=16", "trainer.max_steps=32",
                             "trainer.val_check_interval=16", "trainer.log_every_n_steps=8", "logger=csv",
                             "+callbacks.record._target_=test_model_contract.RecordBatches"))
    assert [size for _, size in SEEN] == [64] * 32               # one ordinary batch per step
    assert [step for step, _ in SEEN] == list(range(32))
    assert metrics["steps"] == 32
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r.get("train/loss")] == [7, 15, 23, 31]
    assert [int(r["step"]) for r in rows if r.get("val/neg_elbo")] == [15, 31]
    assert {"test/neg_elbo", "test/rate", "test/distortion", "val/neg_elbo"} <= set(metrics)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed" and record["params"]["model"] == "simple"
    assert (tmp_path / "images" / "reconstructions.png").is_file()   # it has the figure interface


def test_the_beta_vae_opts_in_and_takes_groups(make_cfg):
    SEEN.clear()
    train(make_cfg("speed.batches_per_fetch=16", "trainer.max_steps=32", "trainer.val_check_interval=16",
                   "trainer.log_every_n_steps=8", "logger=none",
                   "+callbacks.record._target_=test_model_contract.RecordBatches"))
    assert [size for _, size in SEEN] == [8 * 64] * 4              # groups of 8 (divides every interval)
