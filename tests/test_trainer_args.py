"""Trainer arguments that lightning.Trainer refuses: one line naming the trainer. key and the fix,
exit code 2, nothing written (as the model's network arguments already were).

Reproduction (before the fix: the run folder was made, then a traceback):
    python train.py +trainer.max_step=3          # TypeError: Trainer.__init__() got an unexpected keyword argument
    python train.py trainer.accelerator=tpu      # ModuleNotFoundError: Requirement 'torch_xla>=1.13' not met
"""

from __future__ import annotations

import pytest

from conftest import run_cli
from vae.errors import ConfigError
from vae.preflight import preflight


@pytest.mark.parametrize("override, expected", [
    ("+trainer.max_step=3", "trainer.max_step is not an argument of lightning.Trainer (did you mean trainer.max_steps?)"),
    ("trainer.accelerator=tpu", "trainer.accelerator=tpu is refused by lightning.Trainer (Requirement 'torch_xla"),
    # Refused only given the arguments before it (accelerator=cpu): the culprit is still named.
    ("trainer.devices=0", "trainer.devices=0 is refused by lightning.Trainer (`Trainer(devices=0)` value is not a valid input"),
    ("trainer.precision=99", "trainer.precision=99 is refused by lightning.Trainer (Precision 99 is invalid"),
    ("+trainer.logger=false", "trainer.logger is set by the run itself; remove it and use the logger group"),
])
def test_a_refused_trainer_argument_is_one_config_error_naming_its_key(make_cfg, override, expected):
    with pytest.raises(ConfigError) as caught:
        preflight(make_cfg(override))
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_an_unavailable_accelerator_names_the_ones_available_here(make_cfg):
    with pytest.raises(ConfigError, match="accelerators available here: cpu"):
        preflight(make_cfg("trainer.accelerator=tpu"))


def test_the_shipped_trainer_configs_pass(make_cfg):
    preflight(make_cfg())                                             # trainer=default
    preflight(make_cfg("trainer=ddp", "trainer.accelerator=cpu"))     # DDP on CPU processes


def test_the_command_line_prints_one_line_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("debug=smoke", "logger=csv", "trainer.accelerator=tpu", f"paths.log_dir={out}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: trainer.accelerator=tpu is refused by lightning.Trainer")
    assert not out.exists()
