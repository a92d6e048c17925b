"""Seeds as a dimension of a grid sweep: ``-m ... seeds=N`` runs each configuration with N seeds,
and every run says which configuration it replicates (params.replicate_of, the W&B config).
Real Hydra (its override parser, a real multirun), real W&B offline files read back."""

import json

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from conftest import run_cli
from protocol.errors import ConfigError
from sweeps.fused.fused_launcher import fusion_key
from sweeps.grid.replicates import expand_replicates
from vae.replicates import replicate_of


def expand(*arguments: str, config: dict | None = None) -> list[str]:
    parsed = OverridesParser.create().parse_overrides(list(arguments))
    return expand_replicates(list(arguments), parsed, OmegaConf.create(config or {"seed": 0, "seeds": 1}),
                             "seeds", "seed")


def test_seeds_become_a_seed_sweep_from_the_base_seed_last_so_replicates_neighbour():
    assert expand("beta=1,4", "seeds=3") == ["beta=1,4", "seeds=3", "seed=0,1,2"]
    assert expand("seed=10", "beta=1,4", "seeds=2") == ["beta=1,4", "seeds=2", "seed=10,11"]
    # The base seed and the count may come from the config (a preset's seeds: 2)
    assert expand("beta=1,4", config={"seed": 5, "seeds": 2}) == ["beta=1,4", "seed=5,6"]
    # One seed: nothing changes, Hydra's own seed=range(3) passes through untouched.
    assert expand("beta=1,4") == ["beta=1,4"]
    assert expand("beta=1,4", "seed=range(3)") == ["beta=1,4", "seed=range(3)"]


def test_seeds_with_a_seed_sweep_or_a_swept_count_is_one_clear_error():
    with pytest.raises(ConfigError, match="both set the seeds"):
        expand("seeds=3", "seed=1,2")
    with pytest.raises(ConfigError, match="one number of seeds"):
        expand("seeds=2,3")


def test_replicates_share_an_id_and_a_config_differing_in_anything_else_does_not(make_cfg, tmp_path):
    one = replicate_of(make_cfg("beta=4", "seed=0", output_dir=tmp_path / "0"))
    assert replicate_of(make_cfg("beta=4", "seed=7", output_dir=tmp_path / "1")) == one
    assert replicate_of(make_cfg("beta=4", "seed=7", "seeds=3", output_dir=tmp_path / "2")) == one
    for other in ("beta=4.5", "latent_size=3", "trainer.max_steps=31", "model.optimizer.lr=3e-4", "data.batch_size=32"):
        assert replicate_of(make_cfg("beta=4", "seed=0", other)) != one, other
    # A preset's value differing counts too, not only the overrides
    assert replicate_of(make_cfg("beta=4", "seed=0", "experiment=seed_notebook")) != one


def test_replicates_are_one_fused_group(make_cfg, tmp_path):
    keys = {fusion_key(make_cfg("beta=4", f"seed={s}", "seeds=3"), tmp_path)[0] for s in range(3)}
    assert len(keys) == 1 and None not in keys


def test_seeds_in_a_single_run_says_to_add_m(tmp_path):
    result = run_cli("seeds=3", "debug=smoke", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    assert result.returncode == 2
    assert "add -m" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_grid_with_seeds_records_replicates_in_metrics_and_wandb_fuses_them_and_reports_means(tmp_path):
    from test_multirun_wandb import inspect

    sweep_dir = tmp_path / "sweep"
    result = run_cli("-m", "beta=1,4", "seeds=2", "seed=3", "debug=smoke", "logger=wandb", "hydra/launcher=fused",
                     "hydra.launcher.workers=1", f"hydra.sweep.dir={sweep_dir}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 fused group(s) of 4" in result.stderr + result.stdout
    jobs = sorted((p for p in sweep_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    records = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    assert [(r["params"]["beta"], r["params"]["seed"]) for r in records] == [(1, 3), (1, 4), (4, 3), (4, 4)]
    ids = [r["params"]["replicate_of"] for r in records]
    assert ids[0] == ids[1] != ids[2] == ids[3]
    # The seeds really differ: replicates, not copies.
    assert records[0]["metrics"]["test/neg_elbo"] != records[1]["metrics"]["test/neg_elbo"]
    for job, rec in zip(jobs, records):
        (run_dir,) = (job / "wandb").glob("offline-run-*")
        assert inspect(run_dir, "--summary")["config"]["replicate_of"] == rec["params"]["replicate_of"]
    # The report pools them: one row per configuration, in the page and in the W&B report run.
    page = (sweep_dir / "report.html").read_text()
    assert "Configurations (2; mean [95% t interval] over seeds)" in page and "beta=1 vs beta=4: NLL difference" in page
    (report_run,) = (sweep_dir / "wandb").glob("offline-run-*")
    table = inspect(report_run, "--summary")["summary"]["configurations"]
    rows = json.loads((report_run / "files" / table["path"]).read_text())
    assert [row[0] for row in rows["data"]] == ["beta=1", "beta=4"] and rows["data"][0][1] == "2"
