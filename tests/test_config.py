"""Config composition and validation: every mistake is one line naming the key and the fix."""

import os
from pathlib import Path

import pytest
import torch

from conftest import compose_cfg, run_cli
from vae.cli import describe
from vae.errors import DataError
from vae.model import BetaVAE
from vae.train import build_model, preflight


def first_error(overrides: list[str], tmp_path: Path, data_dir: Path) -> str:
    try:
        preflight(compose_cfg(overrides, tmp_path, data_dir))
    except Exception as exc:  # noqa: BLE001 - sorted by describe() below
        line = describe(exc)
        assert line is not None, f"{overrides} raised a non-user error: {exc!r}"
        return line
    pytest.fail(f"{overrides} was accepted")


CASES = {
    "beta=-1": "beta=-1.0 is invalid; it must be a number ≥ 0",
    "beta=abc": "beta=abc is invalid; beta must be a number ≥ 0",
    "beta=nan": "beta=nan is invalid; it must be a number ≥ 0",
    "latent_size=0": "latent_size=0 is invalid; it must be an integer ≥ 1",
    "latent_size=-3": "latent_size=-3 is invalid; it must be an integer ≥ 1",
    "latent_size=abc": "latent_size=abc is invalid; latent_size must be an integer ≥ 1",
    "latent_size=2.5": "latent_size=2.5 is invalid; latent_size must be an integer ≥ 1",
    "betaa=1": "unknown config key 'betaa'; did you mean beta?",
    "data.batchsize=3": "unknown config key 'data.batchsize'",
    "model=mpl": "model=mpl is not an option (did you mean model=mlp?); model must be one of: conv, mlp",
    "experiment=nope": "experiment=nope is not an option; experiment must be one of: seed_notebook",
    "logger=wandbb": "logger must be one of: csv, none, wandb",
    "loss.reduction=median": "loss.reduction=median is invalid; it must be one of: sum, mean",
    "data.binarize=yes": "data.binarize=yes is invalid; it must be one of: none, dynamic",
    "trainer.max_steps=0": "trainer.max_steps=0 is invalid; it must be an integer ≥ 1",
    "model.optimizer.lr=0": "model.optimizer.lr=0 is invalid; it must be a number > 0",
    "model.optimizer.lr=-1e-3": "model.optimizer.lr=-0.001 is invalid; it must be a number > 0",
    "model.encoder.hidden_sizes=[]": "model.encoder.hidden_sizes=[] must be a non-empty list of positive integers",
    "model.decoder.hidden_sizes=[100,-5]": "model.decoder.hidden_sizes=[100, -5] must be a non-empty list",
    "model.encoder.activation=relux": "model.encoder.activation=relux is not an option; choose one of: relu",
    "+model.encoder.hidden_size=[3]": "model.encoder cannot be built from its config: MLPEncoder.__init__() got an unexpected keyword argument 'hidden_size'",
    "data.batch_size=100000": "data.batch_size=100000 is larger than the 50000 training images",
    "data.batch_size=0": "data.batch_size=0 is invalid; it must be an integer ≥ 1",
    "eval.iwae_samples=0": "eval.iwae_samples=0 is invalid; it must be an integer ≥ 1",
    "beta=[1": "cannot parse override",
}


@pytest.mark.parametrize("override,expected", CASES.items(), ids=list(CASES))
def test_a_bad_override_names_the_key_and_what_it_accepts(override, expected, tmp_path, data_dir):
    line = first_error([override], tmp_path, data_dir)
    assert expected in line
    assert "\n" not in line


def test_a_data_dir_that_is_a_file_is_refused_before_anything_is_written(tmp_path, data_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cfg = compose_cfg([], tmp_path / "out", data_dir)
    cfg.data.data_dir = str(blocker / "sub")
    with pytest.raises(DataError) as err:
        preflight(cfg)
    assert f"{blocker} is a file, not a folder; set data.data_dir to a folder" in describe(err.value)
    assert not (tmp_path / "out").exists()


def test_the_default_config_is_the_seed_model_in_the_summed_convention(tmp_path, data_dir):
    cfg = compose_cfg([], tmp_path, data_dir)
    assert (cfg.beta, cfg.latent_size, cfg.loss.reduction, cfg.data.binarize) == (1.0, 10, "sum", "dynamic")
    assert (cfg.trainer.max_steps, cfg.data.batch_size, cfg.model.optimizer.lr) == (1024, 64, 1e-3)
    assert list(cfg.model.encoder.hidden_sizes) == [100, 100] == list(cfg.model.decoder.hidden_sizes)


def test_seed_notebook_experiment_reproduces_the_notebook(tmp_path, data_dir):
    cfg = compose_cfg(["experiment=seed_notebook"], tmp_path, data_dir)
    model: BetaVAE = build_model(cfg, (1, 28, 28))
    assert (cfg.beta, cfg.latent_size, cfg.loss.reduction, cfg.data.binarize) == (0.01, 10, "mean", "none")
    assert (cfg.trainer.max_steps, cfg.data.batch_size, cfg.model.optimizer.lr) == (1024, 64, 1e-3)
    assert model.beta_eff == pytest.approx(0.784)
    assert [m.out_features for m in model.encoder.body.modules() if isinstance(m, torch.nn.Linear)] == [100, 100]


def test_conv_model_is_selectable_as_a_config_option(tmp_path, data_dir):
    cfg = compose_cfg(["model=conv", "latent_size=3"], tmp_path, data_dir)
    model = build_model(cfg, (1, 28, 28))
    assert type(model.encoder).__name__ == "ConvEncoder" and type(model.decoder).__name__ == "ConvDecoder"


@pytest.mark.parametrize("args", [["beta=-1"], ["latent_size=abc"], ["-m", "beta=-1,0.5"], ["model=mpl"]],
                         ids=["value", "type", "sweep-value", "group-option"])
def test_cli_prints_one_line_exits_2_and_writes_nothing(args, tmp_path):
    result = run_cli(*args, f"paths.log_dir={tmp_path}/outputs", "logger=none", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists()
