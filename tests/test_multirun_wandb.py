"""The used-by command end to end: `python train.py -m beta=0,0.01,1 latent_size=2,10`,
with a tiny budget, read back from W&B's offline files as a user's dashboard would show it."""

import json
import subprocess
from pathlib import Path

import pytest
from torchvision.io import decode_png, read_file

from conftest import PYTHON, run_cli

WANDB = str(Path(PYTHON).parent / "wandb")


def inspect(run_dir: Path, *flags: str):
    out = subprocess.run([WANDB, "leet", "inspect", *flags, "--json", str(run_dir)],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return json.loads(out) if "--summary" in flags else [json.loads(line) for line in out.splitlines()]


@pytest.mark.slow
def test_used_by_sweep_leaves_six_offline_wandb_runs_with_config_curves_and_images(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli("-m", "beta=0,0.01,1", "latent_size=2,10", "debug=smoke",
                     f"hydra.sweep.dir={sweep_dir}", "logger=wandb", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # Job folders are numbered; the sweep folder also holds its report (report/, wandb/, report.html).
    jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    assert len(jobs) == 6

    seen = set()
    for job in jobs:
        record = json.loads((job / "metrics.json").read_text())
        assert record["status"] == "completed"
        beta, latent = record["params"]["beta"], record["params"]["latent_size"]
        seen.add((beta, latent))
        (run_dir,) = (job / "wandb").glob("offline-run-*")
        summary = inspect(run_dir, "--summary")
        # One run per job, named by its overrides, grouped by sweep, with the full config.
        assert summary["name"] == f"beta={beta:g},latent_size={latent}"
        assert summary["state"] == "finished"
        assert summary["config"]["beta"] == beta and summary["config"]["latent_size"] == latent
        assert summary["config"]["model"]["encoder"]["hidden_sizes"] == [100, 100]
        assert summary["summary"]["test/nll_iwae"] == pytest.approx(record["metrics"]["test/nll_iwae"])
        records = inspect(run_dir)
        run_info = next(r["run"] for r in records if r["type"] == "run")
        assert run_info["run_group"] == "sweep" and run_info["job_type"] == "train"
        history = [r["history"] for r in records if r["type"] == "history"]
        logged = {key for row in history for key in row["item"]}
        assert {"train/loss", "train/rate", "train/distortion", "val/neg_elbo", "val/rate"} <= logged
        # Images are real pictures in the run's media folder, not black squares.
        images = list((run_dir / "files" / "media" / "images").rglob("*.png"))
        names = {p.name.rsplit("_", 2)[0] for p in images}
        expected = {"reconstructions", "traversal_grid", "traversal_rows", "prior_samples"}
        assert expected | ({"latent_scatter"} if latent == 2 else set()) <= names, names
        for png in images:
            pixels = decode_png(read_file(str(png))).float()
            assert pixels.std() > 10 and 5 < pixels.mean() < 250, png
    assert seen == {(b, l) for b in (0.0, 0.01, 1.0) for l in (2, 10)}
