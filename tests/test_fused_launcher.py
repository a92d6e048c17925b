"""hydra/launcher=fused end to end: jobs trained as one stacked model leave what separate runs
leave (job folders, metrics.json, curves, figures, checkpoints, W&B runs, the report), fail and
get pruned alone, resume after a kill, and match solo runs. Real Hydra, real W&B offline files,
real Optuna storage; tiny budgets."""

import json
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import torch
from omegaconf import OmegaConf
from optuna.trial import TrialState

from conftest import PROJECT_ROOT, PYTHON, run_cli, user_env
from test_multirun_wandb import inspect
from sweeps.fused.fused_launcher import fusion_key

FUSED = ["hydra/launcher=fused", "debug=smoke", "hydra.launcher.workers=1"]   # groups in this process
FUSED_WORKERS = ["hydra/launcher=fused", "debug=smoke", "hydra.launcher.workers=2"]  # in two worker processes


def jobs_of(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def record(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


# --- which jobs fuse ---------------------------------------------------------------------------
def test_fusion_key_groups_by_what_members_share_and_says_why_not(make_cfg, tmp_path):
    key = lambda *o: fusion_key(make_cfg(*o), tmp_path)   # noqa: E731
    base, why = key("beta=1", "latent_size=2")
    assert base is not None and why is None
    # β, latent size, seed, lr, reduction and clipping are per member: the same group.
    assert key("beta=0", "latent_size=10", "seed=3", "model.optimizer.lr=3e-4", "loss.reduction=mean",
               "trainer.gradient_clip_val=1")[0] == base
    # Anything else in the config makes another group.
    assert key("trainer.max_steps=31")[0] not in (None, base)
    assert key("data.batch_size=32")[0] not in (None, base)
    assert key("model.encoder.hidden_sizes=[50,50]")[0] not in (None, base)
    # Models the stack cannot hold run on their own, with the reason.
    assert key("model=conv")[0] is None and "networks" in key("model=conv")[1]
    assert key("model=simple")[0] is None and "is not vae.models.beta_vae.BetaVAE" in key("model=simple")[1]


# --- a grid sweep ------------------------------------------------------------------------------
@pytest.mark.slow
def test_grid_sweep_writes_complete_job_folders_wandb_runs_and_the_report(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli("-m", "beta=0,1", "latent_size=2,3", *FUSED_WORKERS, "logger=wandb", f"hydra.sweep.dir={sweep_dir}",
                     timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    # The four jobs shared out between the two workers, a stack of two in each.
    assert "2 fused group(s) of 2/2, 0 on their own" in result.stderr + result.stdout
    jobs = jobs_of(sweep_dir)
    assert len(jobs) == 4
    for job in jobs:
        rec = record(job)
        assert rec["status"] == "completed"
        beta, latent = rec["params"]["beta"], rec["params"]["latent_size"]
        assert rec["run_name"] == f"beta={beta:g},latent_size={latent}"
        m = rec["metrics"]
        assert m["steps"] == 30 and len(m["test/kl_per_dim"]) == latent
        assert {"test/neg_elbo", "test/nll_iwae", "test/rate", "test/distortion", "test/active_units",
                "val/neg_elbo", "val/loss", "val/rate", "val/distortion", "wall_time_s"} <= set(m)
        assert 150 < m["test/neg_elbo"] < 400
        # .hydra as run_job writes it: the job's own config and overrides.
        cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
        assert cfg.beta == beta and cfg.latent_size == latent
        assert OmegaConf.load(job / ".hydra" / "overrides.yaml")[:2] == [f"beta={beta:g}", f"latent_size={latent}"]
        assert OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra.job.num == int(job.name)
        # Curves, figures, a checkpoint that loads into a solo model of the member's size.
        header = (job / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
        assert {"step", "train/loss", "val/neg_elbo", "test/neg_elbo"} <= set(header)
        pngs = {p.name for p in (job / "images").glob("*.png")}
        assert {"reconstructions.png", "traversal_rows.png", "prior_samples.png",
                "reconstructions_step000015.png"} <= pngs
        ckpt = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
        assert ckpt["global_step"] == 30 and ckpt["state_dict"]["encoder.head.linear.weight"].shape[0] == 2 * latent
        # Its own W&B run: name, group, config, curves, summary.
        (run_dir,) = (job / "wandb").glob("offline-run-*")
        summary = inspect(run_dir, "--summary")
        assert summary["name"] == rec["run_name"] and summary["state"] == "finished"
        assert summary["config"]["beta"] == beta and summary["config"]["latent_size"] == latent
        assert summary["summary"]["test/neg_elbo"] == pytest.approx(m["test/neg_elbo"])
        records = inspect(run_dir)
        assert next(r["run"] for r in records if r["type"] == "run")["run_group"] == "sweep"
        logged = {k for r in records if r["type"] == "history" for k in r["history"]["item"]}
        assert {"train/loss", "val/neg_elbo"} <= logged
        assert list((run_dir / "files" / "media" / "images").rglob("*.png"))
    assert (sweep_dir / "report.html").is_file()
    # The members differ: their own β and latent size, not copies of one model.
    assert len({record(j)["metrics"]["test/neg_elbo"] for j in jobs}) == 4


@pytest.mark.slow
def test_a_diverging_member_fails_alone_and_unfusible_jobs_run_on_their_own(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli("-m", "model=mlp,conv", "model.optimizer.lr=1e-3,1e6", *FUSED, "logger=csv",
                     "report.enabled=false", f"hydra.sweep.dir={sweep_dir}", timeout=900)
    assert result.returncode != 0                      # a failed job fails the grid sweep, as always
    out = result.stderr + result.stdout
    assert "1 fused group(s) of 2, 2 on their own" in out and "networks" in out
    by_run = {record(j)["run_name"]: record(j) for j in jobs_of(sweep_dir)}
    # Run names are Hydra's override_dirname (keys sorted).
    assert by_run["model.optimizer.lr=0.001,model=mlp"]["status"] == "completed"
    failed = by_run["model.optimizer.lr=1000000.0,model=mlp"]
    assert failed["status"] == "failed" and "DivergedError: loss became nan at step" in failed["error"]
    assert by_run["model.optimizer.lr=0.001,model=conv"]["status"] == "completed"
    assert by_run["model.optimizer.lr=0.001,model=conv"]["params"]["model"] == "conv"


# --- kill and resume ---------------------------------------------------------------------------
@pytest.mark.slow
def test_a_killed_fused_sweep_resumes_every_member_from_its_checkpoint(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "beta=0,1", "latent_size=2,3", *FUSED, "logger=csv", "report.enabled=false",
            "trainer.max_steps=400", "trainer.val_check_interval=20", f"hydra.sweep.dir={sweep_dir}"]
    env = user_env()
    first = subprocess.Popen([PYTHON, str(PROJECT_ROOT / "train.py"), *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = [sweep_dir / str(n) / "checkpoints" / "last.ckpt" for n in range(4)]
    deadline = time.time() + 600
    while not all(p.exists() for p in ckpts) and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    steps = {torch.load(p, map_location="cpu", weights_only=False)["global_step"] for p in ckpts}
    assert len(steps) == 1 and 0 < min(steps) < 400          # killed mid-way, all at one step
    result = run_cli(*args, "ckpt_path=last", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for job in jobs_of(sweep_dir):
        rec = record(job)
        assert rec["status"] == "completed" and rec["metrics"]["steps"] == 400
        rows = (job / "csv" / "metrics.csv").read_text().splitlines()[1:]
        train_steps = [int(r.split(",")[0]) for r in rows if r.split(",")[0].isdigit()]
        assert train_steps == sorted(train_steps)          # history continued, no rows twice


@pytest.mark.slow
def test_a_solo_run_resumes_from_a_fused_members_checkpoint(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli("-m", "beta=0,1", *FUSED, "logger=csv", "report.enabled=false",
                     f"hydra.sweep.dir={sweep_dir}", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    job = sweep_dir / "1"
    result = run_cli("beta=1", "debug=smoke", "logger=csv", "trainer.max_steps=45", "ckpt_path=last",
                     f"hydra.run.dir={job}", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rec = record(job)
    assert rec["status"] == "completed" and rec["metrics"]["steps"] == 45     # 30 fused + 15 solo
    assert torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 45


# --- the same numbers as solo runs ------------------------------------------------------------
@pytest.mark.slow
def test_members_match_solo_runs_of_the_same_config(tmp_path):
    common = ["logger=csv", "trainer.max_steps=200", "trainer.val_check_interval=100",
              "eval.iwae_samples=1", "~callbacks.images"]
    result = run_cli("-m", "seed=0,1,2", "latent_size=2,10", *FUSED_WORKERS, *common, "report.enabled=false",
                     f"hydra.sweep.dir={tmp_path / 'fused'}", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    fused = {(r["params"]["seed"], r["params"]["latent_size"]): r["metrics"]["test/neg_elbo"]
             for r in map(record, jobs_of(tmp_path / "fused"))}
    for seed in (0, 1, 2):
        for latent in (2, 10):
            solo_dir = tmp_path / f"solo{seed}_{latent}"
            result = run_cli(f"seed={seed}", f"latent_size={latent}", "debug=smoke", *common, f"hydra.run.dir={solo_dir}")
            assert result.returncode == 0, result.stderr[-3000:]
            solo = record(solo_dir)["metrics"]["test/neg_elbo"]
            assert fused[(seed, latent)] == pytest.approx(solo, rel=0.02), (seed, latent)


# --- Optuna ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_optuna_sweeper_launches_trials_together_and_prunes_members_alone(tmp_path):
    db = tmp_path / "optuna.db"
    result = run_cli("-m", "hparams_search=optuna_nll", *FUSED, "logger=csv", "report.enabled=false",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.sweeper.storage=sqlite:///{db}",
                     "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=4", "hydra.sweeper.zero_below=null",
                     "beta=choice(0.5,1)", "latent_size=choice(2)", "model.optimizer.lr=choice(1e-3,1e-9)",
                     # lr=1e-9 leaves −ELBO at its start (~545 nats); 1e-3 reaches ~400 by step 15
                     "hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=480", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 fused group(s) of 4" in result.stderr + result.stdout       # one launch, one stack
    trials = optuna.load_study(study_name="optuna_nll", storage=f"sqlite:///{db}").get_trials()
    assert len(trials) == 4
    for t in trials:
        rec = record(Path(t.user_attrs["output_dir"]))
        if t.params["model.optimizer.lr"] == 1e-9:
            assert t.state == TrialState.PRUNED and list(t.intermediate_values) == [15]
            assert rec["status"] == "pruned" and "pruned at step 15" in rec["error"]
        else:
            assert t.state == TrialState.COMPLETE and list(t.intermediate_values) == [15, 30]
            assert rec["status"] == "completed" and t.value == pytest.approx(rec["metrics"]["val/neg_elbo"])


# --- Hydra's own launcher test suite: jobs that cannot fuse (Hydra's apps) run as basic would --
from hydra.test_utils.launcher_common_tests import LauncherTestSuite  # noqa: E402


@pytest.mark.parametrize("launcher_name, overrides", [("fused", [])])
class TestFusedLauncherHydraSuite(LauncherTestSuite):
    ...
