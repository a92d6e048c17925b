"""The sweep report on a small real sweep: 3 β × 2 latent sizes, 20 steps each; β=1e300 overflows
float32, so both of its jobs diverge and fail for real (DivergedError), as a broken setting would.

The sweep runs once per module (about 30 s) and builds its report itself through the Hydra
callback; the other tests read that report or build new ones from copies of the sweep.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import user_env
from sweeps.report import plots
from sweeps.report.grid import BINS, make_grid
from sweeps.report.figures import all_figures
from sweeps.report.report import make_report
from sweeps.report.__main__ import main as report_main
from sweeps.report.collect import collect_multirun, collect_study

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ["rate_distortion", "heatmap", "mosaic_traversals", "mosaic_reconstructions", "kl_per_dim", "curves"]
SWEEP = ["debug=smoke", "beta=0,1,1e300", "latent_size=2,3", "trainer.max_steps=20", "trainer.log_every_n_steps=5",
         "data.train_subset=2000", "eval.iwae_samples=2", "eval.nll_images=500"]
WANDB = str(Path(sys.executable).with_name("wandb"))


def env() -> dict:
    return user_env(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


# One worker builds the module-scoped fixture below once; under pytest-xdist (--dist loadgroup)
# the module's tests would otherwise be spread over the workers, each building it again.
pytestmark = pytest.mark.xdist_group("test_report")

@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """(sweep dir, finished process) of a real multirun; its report was built by the callback."""
    sweep_dir = tmp_path_factory.mktemp("sweep") / "2026-01-01_00-00-00"
    # The basic launcher (jobs one after another in this process): the report does not depend on
    # the launcher, and worker processes would cost the suite their start-up.
    proc = subprocess.run([sys.executable, "train.py", "-m", *SWEEP, "hydra/launcher=basic",
                           f"hydra.sweep.dir={sweep_dir}"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert (sweep_dir / "multirun.yaml").is_file(), proc.stderr[-3000:]
    return sweep_dir, proc


def metrics_files(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/metrics.json")}


def csv_rows(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "report" / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def pixel_std(path_or_bytes) -> float:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        return float(np.asarray(image.convert("L"), dtype=np.float32).std())


def wandb_report_run(sweep_dir: Path) -> Path:
    runs = sorted((sweep_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, runs
    return runs[0]


# --- the sweep and its automatic report --------------------------------------------------
def test_failed_job_keeps_the_sweep_failing_and_the_report_is_built_anyway(sweep):
    sweep_dir, proc = sweep
    assert proc.returncode == 2, proc.stderr[-3000:]            # the sweep's own failure stands
    assert "error: loss became inf" in proc.stderr
    assert "sweep report not built" not in proc.stdout + proc.stderr
    assert (sweep_dir / "report.html").is_file()
    assert f"report: {sweep_dir}/report.html" in proc.stdout + proc.stderr


def test_table_has_one_row_per_run_with_the_runs_params_and_metrics(sweep):
    sweep_dir, _ = sweep
    records = metrics_files(sweep_dir)
    rows = {row["job"]: row for row in csv_rows(sweep_dir)}
    assert sorted(rows) == sorted(records) == [str(i) for i in range(6)]
    for job, record in records.items():
        row = rows[job]
        assert row["run_name"] == record["run_name"]
        assert row["state"] == record["status"]
        for key in ("beta", "latent_size", "max_steps", "iwae_samples", "reduction"):
            assert row[key] == str(record["params"][key]), (job, key)
        for key, value in record.get("metrics", {}).items():
            expected = json.dumps(value) if isinstance(value, list) else str(value)
            assert row[key] == expected, (job, key)
    completed = [r for r in rows.values() if r["state"] == "completed"]
    assert len(completed) == 4 and all(float(r["test/nll_iwae"]) > 0 for r in completed)
    # the terminal/HTML table shows the varying overrides only, one row per run
    html = (sweep_dir / "report.html").read_text()
    assert html.count("<tr class=") == 6
    assert "beta=0,latent_size=2" in html and "trainer.max_steps=20" not in html.split("<table>")[1]


def test_a_failed_run_appears_as_failed(sweep):
    sweep_dir, _ = sweep
    rows = csv_rows(sweep_dir)
    failed = [r for r in rows if r["state"] == "failed"]
    assert sorted(r["label"] for r in failed) == ["beta=1e+300,latent_size=2", "beta=1e+300,latent_size=3"]
    assert all(r["error"].startswith("DivergedError") for r in failed)
    html = (sweep_dir / "report.html").read_text()
    assert len(re.findall(r'<tr class="failed">', html)) == 2
    assert "DivergedError" in html and "Missing or incomplete" in html


def test_figures_exist_and_are_not_blank(sweep):
    sweep_dir, _ = sweep
    for name in FIGURES:
        path = sweep_dir / "report" / f"{name}.png"
        assert path.is_file(), name
        assert pixel_std(path) > 10, name
    # the traversal mosaic holds the runs' own pictures, not only labels: its variation is far above a text plot's
    with Image.open(sweep_dir / "report" / "mosaic_traversals.png") as image:
        assert image.size[0] > 400 and image.size[1] > 600


def test_html_is_self_contained(sweep):
    sweep_dir, _ = sweep
    html = (sweep_dir / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == len(FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    for external in ("href=", "src=\"http", "url(", "<script", "<link", "@import"):
        assert external not in html, external
    # each embedded image is the PNG written beside it
    import base64
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert all((sweep_dir / "report" / f"{name}.png").read_bytes() in embedded for name in FIGURES)


def test_wandb_report_run_holds_the_table_and_the_images(sweep):
    sweep_dir, _ = sweep
    run_dir = wandb_report_run(sweep_dir)
    records = [json.loads(line) for line in subprocess.run(
        [WANDB, "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True, check=True).stdout.splitlines()]
    run = next(r["run"] for r in records if r.get("type") == "run")
    assert run["job_type"] == "report"
    assert run["run_group"] == sweep_dir.name                   # the group of the sweep's own runs
    assert run["project"] == "beta-vae"
    summary = json.loads(subprocess.run([WANDB, "leet", "inspect", "--summary", "--json", str(run_dir)],
                                        capture_output=True, text=True, check=True).stdout)
    assert summary["state"] == "finished"
    table = summary["summary"]["runs"]
    assert table["_type"] == "table-file" and table["nrows"] == 6
    rows = json.loads((run_dir / "files" / table["path"]).read_text())
    state = rows["columns"].index("state")
    assert sorted(r[state] for r in rows["data"]) == ["completed"] * 4 + ["failed"] * 2
    for name in FIGURES:
        image = summary["summary"][f"report/{name}"]
        assert image["_type"] == "image-file"
        assert pixel_std(run_dir / "files" / image["path"]) > 10, name
    assert summary["summary"]["runs_failed"] == 2
    best = min((r for r in csv_rows(sweep_dir) if r["state"] == "completed"), key=lambda r: float(r["test/nll_iwae"]))
    assert summary["summary"]["best/run"] == best["label"]
    # ... and it sits in the same W&B group as the sweep's own runs
    job_run = next((sweep_dir / "0" / "wandb").glob("offline-run-*"))
    job_records = subprocess.run([WANDB, "leet", "inspect", "--json", str(job_run)],
                                 capture_output=True, text=True, check=True).stdout.splitlines()
    job = next(json.loads(line)["run"] for line in job_records if '"type":"run"' in line)
    assert job["run_group"] == run["run_group"] and job["project"] == run["project"]


# --- partial sweeps, other sources, switches --------------------------------------------
def test_partial_sweep_says_what_is_missing(sweep, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(sweep[0], partial, ignore=shutil.ignore_patterns("wandb", "report*"))
    shutil.rmtree(partial / "5")                               # never started
    (partial / "3" / "metrics.json").unlink()                   # crashed hard, or still running
    report = make_report(collect_multirun(partial), use_wandb=False, print_to=False)
    states = {r["job"]: r["state"] for r in csv_rows(partial)}
    assert states == {"0": "completed", "1": "completed", "2": "completed", "3": "missing", "4": "failed", "5": "missing"}
    html = report.html.read_text()
    assert "never started (no job folder)" in html and "no metrics.json" in html
    assert not (partial / "wandb").exists()
    assert all(pixel_std(p) > 10 for p in report.figures.values())


def test_optuna_study_is_reported_with_pruned_trials(sweep, tmp_path):
    optuna = pytest.importorskip("optuna")
    sweep_dir, _ = sweep
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    states = {"0": "COMPLETE", "1": "PRUNED", "2": "COMPLETE", "4": "FAIL"}
    dists = {"beta": optuna.distributions.FloatDistribution(0, 1e300),
             "latent_size": optuna.distributions.IntDistribution(1, 10)}
    for job, state in states.items():
        record = json.loads((sweep_dir / job / "metrics.json").read_text())
        overrides = (sweep_dir / job / ".hydra" / "overrides.yaml").read_text().replace("- ", "").split()
        study.add_trial(optuna.trial.create_trial(
            state=getattr(optuna.trial.TrialState, state),
            value=record["metrics"]["test/nll_iwae"] if state == "COMPLETE" else None,
            params={k: record["params"][k] for k in dists}, distributions=dists,
            user_attrs={"output_dir": str(sweep_dir / job), "overrides": overrides}))
    out = tmp_path / "study_report"
    assert report_main(["--storage", storage, "--study", "s", "--out", str(out), "--no-wandb"]) == 0
    rows = {r["job"]: r for r in csv_rows(out)}
    assert {j: r["state"] for j, r in rows.items()} == {
        "trial 0": "completed", "trial 1": "pruned", "trial 2": "completed", "trial 3": "failed"}
    assert rows["trial 1"]["latent_size"] == "3"
    assert collect_study(storage, "s", out).group == "s"        # the W&B group train() gives trials
    assert (out / "report.html").is_file() and (out / "report" / "heatmap.png").is_file()


def test_csv_logger_sweep_skips_wandb(sweep, tmp_path):
    copy = tmp_path / "csv_sweep"
    shutil.copytree(sweep[0], copy, ignore=shutil.ignore_patterns("wandb", "report*"))
    runs = collect_multirun(copy)
    runs.logger = {"kind": "csv"}
    report = make_report(runs, print_to=False)
    assert report.wandb_run_dir is None and not (copy / "wandb").exists()
    assert any("logger=csv" in note for note in report.notes)


@pytest.mark.slow
def test_a_sweep_that_succeeds_reports_at_its_end_and_skips_wandb_without_it(tmp_path):
    sweep_dir = tmp_path / "ok"
    proc = subprocess.run([sys.executable, "train.py", "-m", "beta=1", "latent_size=2", "logger=csv",
                           "hydra/launcher=basic", "trainer.max_steps=5", "data.train_subset=2000", "eval.iwae_samples=2",
                           f"hydra.sweep.dir={sweep_dir}"], cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "stopped early" not in out                           # built by on_multirun_end
    assert "logger=csv: no W&B report run" in out
    assert [r["state"] for r in csv_rows(sweep_dir)] == ["completed"]
    assert (sweep_dir / "report.html").is_file() and not (sweep_dir / "wandb").exists()


def test_a_sweep_stopped_by_a_config_error_makes_no_report(tmp_path):
    sweep_dir = tmp_path / "bad"
    proc = subprocess.run([sys.executable, "train.py", "-m", "beta=-1,0.5", f"hydra.sweep.dir={sweep_dir}"],
                          cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error: beta=-1.0 is invalid")
    assert not (sweep_dir / "report.html").exists() and not (sweep_dir / "wandb").exists()


def test_report_errors_never_escape_the_callback(tmp_path, caplog, monkeypatch):
    from sweeps.report import report as report_module
    from sweeps.report.callback import SweepReport

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "make_report", broken)
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / ".hydra" / "config.yaml").write_text("beta: 1.0\n")
    callback = SweepReport()
    callback.sweep_dir = tmp_path
    with caplog.at_level(logging.WARNING):
        callback.build()                                        # no exception
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "disk full" in warnings[0].getMessage()


def test_report_enabled_false_turns_the_callback_off():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        on = compose("train", return_hydra_config=True)
        off = compose("train", overrides=["report.enabled=false", "report.metric=test/neg_elbo"],
                      return_hydra_config=True)
    assert instantiate(on.hydra.callbacks.sweep_report).enabled is True
    callback = instantiate(off.hydra.callbacks.sweep_report)
    assert callback.enabled is False and callback.metric == "test/neg_elbo"


def test_a_continuous_search_is_binned_into_a_grid(sweep):
    """An Optuna search samples β from a range: 30 distinct values become log-spaced bins."""
    from sweeps.report.runs import Run

    job_dirs = [sweep[0] / str(i) for i in range(4)]
    runs = [Run(job=f"trial {k}", name="", state="completed" if k % 5 else "pruned",
                params={"beta": 0.0 if k == 0 else 10 ** (-3 + 4 * k / 30), "latent_size": [2, 8, 32][k % 3]},
                metrics={"test/rate": 50.0 - k, "test/distortion": 100.0 + k, "test/nll_iwae": 150.0 + k % 7},
                output_dir=job_dirs[k % 4]) for k in range(30)]
    grid = make_grid(runs)
    assert grid.binned and grid.rows[0] == "β=0" and len(grid.rows) <= BINS + 1
    assert grid.columns == ["2", "8", "32"]
    assert sorted(id(r) for here in grid.cells.values() for r in here) == sorted(id(r) for r in runs)
    figures, notes = all_figures(runs)
    assert any("bin" in note for note in notes)
    assert all(pixel_std(png) > 10 for png in figures.values())


def test_a_sweep_with_no_job_yet_still_gets_a_report(tmp_path):
    from sweeps.report.runs import Sweep

    report = make_report(Sweep(path=tmp_path, kind="multirun", runs=[], name="empty"), use_wandb=False, print_to=False)
    assert "no runs" in report.html.read_text()


def test_labels_show_what_varies_without_trial_identity():
    from sweeps.report.runs import Run, label_runs

    runs = [Run(job=str(k), name="", state="completed",
                overrides=[f"beta={b}", "latent_size=2", "debug=smoke", f"++optuna.trial_number={k}"])
            for k, b in enumerate([0.15676677195506075, 1e300])]
    label_runs(runs)
    assert [r.label for r in runs] == ["beta=0.1568", "beta=1e+300"]


def test_pareto_front_is_the_nondominated_points():
    points = [(1, 10), (2, 5), (3, 6), (4, 1), (2, 5.5), (0.5, 12)]
    assert plots.pareto_front(points) == [5, 0, 1, 3]
