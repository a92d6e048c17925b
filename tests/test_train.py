"""train(cfg) on real MNIST with a tiny budget: metrics, files, reproducibility, failures."""

import csv
import json

import pytest
import torch
from torchvision.io import decode_png, read_file

from vae.config import FACTOR_RESULT_KEYS, RESULT_KEYS
from vae.errors import DivergedError
from vae.train import train


def png_stats(path) -> tuple[float, float]:
    image = decode_png(read_file(str(path))).float()
    return image.mean().item(), image.std().item()


def test_a_run_returns_its_metrics_and_leaves_its_files(make_cfg, tmp_path):
    metrics = train(make_cfg("latent_size=2", "logger=csv"))
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "completed" and record["metrics"] == metrics
    assert record["params"]["latent_size"] == 2 and record["run_name"] == "debug=smoke,latent_size=2,logger=csv"
    assert metrics["steps"] == 30
    assert set(metrics) == set(RESULT_KEYS) - set(FACTOR_RESULT_KEYS) | {"test/kl_per_dim"}  # what sweepers may optimise;
    # MNIST declares no generative factors: no disentanglement scores
    # The test metrics are consistent with each other.
    assert metrics["test/rate"] > 0 and metrics["test/distortion"] > 0
    assert metrics["test/neg_elbo"] == pytest.approx(metrics["test/distortion"] + metrics["test/rate"])
    assert sum(metrics["test/kl_per_dim"]) == pytest.approx(metrics["test/rate"], rel=1e-4)
    assert metrics["test/nll_iwae"] < metrics["test/neg_elbo"]
    assert 0 <= metrics["test/active_units"] <= 2
    assert 50 < metrics["test/neg_elbo"] < 544  # below 784·log 2 (a coin per pixel), above a trained VAE
    # Curves, images and a checkpoint are on disk.
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r["train/loss"]] == [4, 9, 14, 19, 24, 29]
    assert any(r["val/neg_elbo"] for r in rows)
    for name in ("reconstructions", "traversal_grid", "traversal_rows", "prior_samples", "latent_scatter",
                 "reconstructions_step000015"):
        mean, std = png_stats(tmp_path / "images" / f"{name}.png")
        assert 5 < mean < 250 and std > 10, (name, mean, std)  # neither blank nor saturated
    assert (tmp_path / "checkpoints" / "last.ckpt").stat().st_size > 100_000


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not(make_cfg, tmp_path):
    runs = [train(make_cfg(f"seed={seed}", "logger=none", "callbacks=none", output_dir=tmp_path / str(i)))
            for i, seed in enumerate([3, 3, 4])]
    assert runs[0]["test/neg_elbo"] == runs[1]["test/neg_elbo"]
    assert runs[0]["test/neg_elbo"] != runs[2]["test/neg_elbo"]


def test_beta_trades_rate_for_distortion(make_cfg, tmp_path):
    runs = {beta: train(make_cfg(f"beta={beta}", "logger=none", "callbacks=none", "trainer.max_steps=150",
                                 output_dir=tmp_path / str(beta)))
            for beta in (0.1, 10)}
    assert runs[10]["test/rate"] < runs[0.1]["test/rate"] / 2
    assert runs[10]["test/distortion"] > runs[0.1]["test/distortion"]


def test_a_diverging_run_stops_at_once_and_is_recorded_as_failed(make_cfg, tmp_path):
    with pytest.raises(DivergedError, match=r"loss became (nan|inf) at step \d+ .* lower model.optimizer.lr"):
        train(make_cfg("model.optimizer.lr=1e30", "logger=csv"))
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "failed" and "DivergedError" in record["error"]
    assert "metrics" not in record


def test_the_seed_convention_runs_end_to_end(make_cfg, tmp_path):
    metrics = train(make_cfg("experiment=seed_notebook", "logger=none", "callbacks=none"))
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["params"]["beta_eff"] == pytest.approx(0.784)
    assert record["params"]["reduction"] == "mean" and record["params"]["binarize"] == "none"
    # Logged losses are in the run's own convention: per pixel, so far below the per-image nats.
    assert metrics["val/loss"] < 1 < metrics["val/neg_elbo"]


def test_grouped_batches_give_the_same_stream_of_batches_as_single_ones():
    from vae.data.batches import TensorBatches

    images, labels = torch.rand(100, 1, 2, 2), torch.arange(100)
    single = TensorBatches(images, labels, batch_size=8, shuffle=True, seed=3, drop_last=True)
    grouped = TensorBatches(images, labels, batch_size=8, shuffle=True, seed=3, drop_last=True, group=5)
    stream_single = torch.cat([y for _ in range(5) for _, y in single])   # 5 passes of 12 batches
    stream_grouped = torch.cat([y for _ in range(2) for _, y in grouped])  # 2 epochs of 3 groups of 5
    assert len(grouped) == 3 and all(len(y) == 40 for _, y in grouped)  # groups span pass boundaries
    assert torch.equal(stream_grouped, stream_single[: len(stream_grouped)])


def test_grouped_steps_keep_every_event_on_its_step(make_cfg, tmp_path):
    metrics = train(make_cfg("speed.batches_per_fetch=4", "trainer.max_steps=42", "trainer.val_check_interval=20",
                             "trainer.log_every_n_steps=4", "logger=csv"))
    assert metrics["steps"] == 42  # not a multiple of 4: groups of 2, so that none is cut short
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows if r["train/loss"]] == list(range(3, 42, 4))
    assert [int(r["step"]) for r in rows if r["val/neg_elbo"]] == [20, 40]
    assert sorted(p.name for p in (tmp_path / "images").glob("reconstructions*")) == [
        "reconstructions.png", "reconstructions_step000020.png", "reconstructions_step000040.png"]


@pytest.mark.parametrize("requested,intervals,expected", [
    (16, {"max_steps": 1024, "val_check_interval": 256, "log_every_n_steps": 16}, 16),  # the defaults
    (4, {"max_steps": 42, "val_check_interval": 20, "log_every_n_steps": 4}, 2),
    (16, {"max_steps": 30, "val_check_interval": 15, "log_every_n_steps": 5}, 1),        # debug=smoke
])
def test_the_group_size_divides_every_step_interval(requested, intervals, expected):
    from vae.speed.batch_groups import group_size

    assert group_size(requested, intervals, []) == expected
