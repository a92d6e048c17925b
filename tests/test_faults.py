"""Faults lose nothing: a killed run resumes from its checkpoint to the same final step."""

import csv
import json
import signal
import subprocess
import time

import lightning as L
import pytest
import torch

from conftest import PROJECT_ROOT, PYTHON, user_env
from vae.data.mnist import MNISTDataModule
from vae.models.beta_vae import BetaVAE
from vae.models.networks import MLPDecoder, MLPEncoder

RUN = ["trainer.max_steps=1500", "trainer.val_check_interval=100", "trainer.log_every_n_steps=10",
       "data.train_subset=3200", "data.val_size=1000", "eval.iwae_samples=2", "logger=wandb"]


def start(run_dir, *extra):
    env = user_env()
    return subprocess.Popen([PYTHON, str(PROJECT_ROOT / "train.py"), *RUN, f"hydra.run.dir={run_dir}", *extra],
                            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint_and_loses_nothing(tmp_path):
    run_dir = tmp_path / "run"
    first = start(run_dir)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not checkpoint.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert checkpoint.exists() and not (run_dir / "metrics.json").exists(), "killed before or after training"
    killed_at = torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < killed_at < 1500

    second = start(run_dir, "ckpt_path=last")
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-2000:]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "completed" and record["metrics"]["steps"] == 1500

    # The curve is whole: every logged step once, in order, before and after the kill.
    with open(run_dir / "csv" / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r["train/loss"]]
    assert steps == list(range(9, 1500, 10))
    # One W&B run, continued: both offline folders carry the same run id.
    ids = {p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("offline-run-*")}
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 2 and len(ids) == 1


def test_a_resumed_run_sees_the_same_batches_as_an_uninterrupted_one(data_dir, tmp_path):
    seen = {}

    class Recording(BetaVAE):
        def training_step(self, batch, batch_idx):
            seen[self.global_step] = batch[1].tolist()
            return super().training_step(batch, batch_idx)

    def fit(ckpt_path=None, callbacks=()):
        torch.manual_seed(0)
        model = Recording(MLPEncoder, MLPDecoder, data=MNISTDataModule.info, latent_size=2)
        datamodule = MNISTDataModule(data_dir=str(data_dir), download=False, train_subset=640, val_size=1000)
        L.Trainer(max_steps=30, logger=False, enable_progress_bar=False, limit_val_batches=0,
                  enable_model_summary=False, enable_checkpointing=bool(callbacks), callbacks=list(callbacks),
                  default_root_dir=tmp_path).fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        return dict(seen)

    # 10 batches a pass; the checkpoint at step 26 is in the middle of the third pass.
    uninterrupted = fit(callbacks=[L.pytorch.callbacks.ModelCheckpoint(
        dirpath=tmp_path, save_last=True, save_top_k=0, every_n_train_steps=13, enable_version_counter=False)])
    seen.clear()
    resumed = fit(ckpt_path=str(tmp_path / "last.ckpt"))
    assert min(resumed) == 26 and max(resumed) == 29
    assert all(resumed[step] == uninterrupted[step] for step in resumed)
    assert uninterrupted[0] != uninterrupted[10]  # each pass is shuffled anew


def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    from protocol import atomic

    target = tmp_path / "metrics.json"
    atomic.atomic_write_json(target, {"status": "completed", "steps": 1024})

    def killed(*args):
        raise KeyboardInterrupt  # as if the process died between writing and renaming

    monkeypatch.setattr(atomic.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write_json(target, {"status": "running"})
    assert json.loads(target.read_text()) == {"status": "completed", "steps": 1024}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind
