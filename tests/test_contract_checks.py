"""A newcomer's dataset or model that breaks its declared contract stops before training, in one
line naming the module, the declared value and the actual one (vae/contract_checks.py); one that
keeps it trains and is scored. The one-line messages of every mistake are in error_catalogue.py."""

import json
from pathlib import Path

import pytest

from conftest import run_cli
from vae.errors import ContractError
from vae.train import train

BARS = ["data._target_=newcomer.Bars", "model=simple", "data.batch_size=16", "logger=none"]


def test_a_dataset_that_keeps_its_contract_trains_and_gets_disentanglement_scores(make_cfg, tmp_path):
    metrics = train(make_cfg(*BARS, "+data.mistake=none", "trainer.max_steps=20", "trainer.val_check_interval=10"))
    assert 0 <= metrics["test/mig"] <= 1 and "test/factor_vae" in metrics
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "completed"


def test_factor_sizes_that_disagree_with_the_labels_stop_the_cli_in_one_line_before_anything_is_written(tmp_path):
    # Before this check: exit 0 and plausible but wrong scores.
    run_dir = tmp_path / "run"
    result = run_cli(*BARS, "+data.mistake=factor_size", "debug=smoke", f"hydra.run.dir={run_dir}", cwd=tmp_path,
                     env={"PYTHONPATH": str(Path(__file__).parent)})      # tests/newcomer.py
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        "error: newcomer.Bars declares factor 'thickness' with 2 values but its train labels take 0..2; "
        "declare Factor('thickness', 3), or fix its labels"]
    assert not run_dir.exists()


def test_a_dataset_whose_files_are_fetched_by_prepare_data_is_checked_once_they_are_there(make_cfg, tmp_path):
    with pytest.raises(ContractError, match="declares image_shape=.1, 32, 32. but its train images are .1, 16, 16."):
        train(make_cfg(*BARS, "data._target_=newcomer.DownloadedBars", "+data.mistake=image_shape"))
    assert not (tmp_path / "metrics.json").exists()      # stopped before the run's record or loggers


def test_a_value_missing_from_a_small_subset_is_not_blamed_on_the_module():
    from newcomer import Bars
    from vae.contract_checks import check_dataset

    # 240 rows hold each of 9 declared positions 20+ times if the labels took them all: a mistake
    with pytest.raises(ContractError, match="labels take only 8 of them"):
        check_dataset(Bars(mistake="unused_factor_value", batch_size=16))
    # 16 training rows + 80 held out cannot show all 9 by chance: not checked
    check_dataset(Bars(mistake="unused_factor_value", batch_size=16, train_subset=16))
