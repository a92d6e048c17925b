"""Config composition, presets, and the command line's one-line error contract.

The catalogue of individual mistakes and their messages is tests/error_catalogue.py."""

import pytest
import torch

from conftest import compose_cfg, run_cli
from vae.cli import describe
from vae.errors import DataError
from vae.models.beta_vae import BetaVAE
from vae.preflight import preflight
from vae.preflight import build_datamodule, build_model


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
    model: BetaVAE = build_model(cfg, build_datamodule(cfg))
    assert (cfg.beta, cfg.latent_size, cfg.loss.reduction, cfg.data.binarize) == (0.01, 10, "mean", "none")
    assert (cfg.trainer.max_steps, cfg.data.batch_size, cfg.model.optimizer.lr) == (1024, 64, 1e-3)
    assert model.beta_eff == pytest.approx(0.784)
    assert [m.out_features for m in model.encoder.body.modules() if isinstance(m, torch.nn.Linear)] == [100, 100]


def test_conv_model_is_selectable_as_a_config_option(tmp_path, data_dir):
    cfg = compose_cfg(["model=conv", "latent_size=3"], tmp_path, data_dir)
    model = build_model(cfg, build_datamodule(cfg))
    assert type(model.encoder).__name__ == "ConvEncoder" and type(model.decoder).__name__ == "ConvDecoder"


@pytest.mark.parametrize("args", [["beta=-1"], ["latent_size=abc"], ["-m", "beta=-1,0.5"], ["model=mpl"],
                                  ["model.beta=4"],
                                  # a job's component: checked by the joblib workers (slow: they start), or by
                                  # the parent without them
                                  pytest.param(["-m", "trainer.accelerator=cpu,tpu", "debug=smoke"],
                                               marks=pytest.mark.slow),
                                  ["-m", "trainer.accelerator=cpu,tpu", "debug=smoke", "hydra/launcher=basic"]],
                         ids=["value", "type", "sweep-value", "group-option", "second-beta", "sweep-component-workers",
                              "sweep-component-parent"])
def test_cli_prints_one_line_exits_2_and_writes_nothing(args, tmp_path):
    result = run_cli(*args, f"paths.log_dir={tmp_path}/outputs", "logger=none", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists()
