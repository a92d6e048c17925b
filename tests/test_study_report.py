"""The report's study analytics on small real Optuna studies of the tiny app tests/apps/study.py,
whose loss is dominated by ``lr`` (and whose second objective, ``cost``, by ``width``):

- one objective: 20 trials, seeded TPE, a threshold pruner that stops trials with a bad lr at
  their second report, and lr > 0.05 diverging (NaN: a failed trial);
- two objectives (loss, cost): 12 trials, for the Pareto front.

Both sweeps run once per module, side by side, through Hydra and our Optuna sweeper; the reports
are built as a user builds them (``python -m sweeps.report --storage URL --study NAME``), with a
real offline W&B run read back with ``wandb leet inspect``, and opened in headless Chromium. The
whole file took 37–64 s here (2 cores shared with other jobs).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from PIL import Image

from conftest import user_env
from sweeps.report import study_plots
from sweeps.report.drawing import is_blank
from sweeps.report.__main__ import main as report_main
from sweeps.report.collect import collect_multirun
from sweeps.report.study import load_view, importances, trial_table

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "apps" / "study.py"
WANDB = str(Path(sys.executable).with_name("wandb"))
SEARCH = ["lr=tag(log,interval(1e-4,1e-1))", "width=int(interval(8,64))", "act=choice(relu,tanh)"]
STUDIES = {
    "single": ["hydra.sweeper.sampler.seed=0", "hydra.sweeper.n_trials=20", "hydra.sweeper.sampler.n_startup_trials=10",
               # prune at the 2nd report (reported = loss + 2 there) a trial whose loss is above 10
               "+hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.upper=12", "hydra.sweeper.pruner.n_warmup_steps=2"],
    # seed 3: its first 12 trials hold a Pareto front of several trials (seed 0's has one)
    "multi": ["hydra.sweeper.sampler.seed=3", "hydra.sweeper.n_trials=12", "hydra.sweeper.objective=[loss,cost]",
              "hydra.sweeper.direction=[minimize,minimize]"],
}
HUES = {"failed": (-12, 12), "pruned": (20, 36)}       # of drawing.STATE_COLOURS


# One worker builds the module-scoped fixture below once; under pytest-xdist (--dist loadgroup)
# the module's tests would otherwise be spread over the workers, each building it again.
pytestmark = pytest.mark.xdist_group("test_study_report")

def env() -> dict:
    return user_env(HYDRA_FULL_ERROR="1")


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """name -> (storage URL, study name, sweep dir) of two finished studies."""
    tmp = tmp_path_factory.mktemp("studies")
    procs, out = {}, {}
    for name, extra in STUDIES.items():
        storage = f"sqlite:///{tmp / name}.db"
        procs[name] = subprocess.Popen(
            [sys.executable, str(APP), "-m", "hydra/sweeper=optuna", f"hydra.sweep.dir={tmp / name}",
             f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={name}",
             "hydra.sweeper.n_jobs=1", "hydra.sweeper.trial_key=optuna", *SEARCH, *extra],
            cwd=tmp, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out[name] = (storage, name, tmp / name)
    for name, proc in procs.items():
        log = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, log[-3000:]
    return out


@pytest.fixture(scope="module")
def reports(studies):
    """name -> sweep dir holding report.html, report/*.png and the W&B report run."""
    for storage, name, _ in studies.values():
        assert report_main(["--storage", storage, "--study", name]) == 0
    return {name: sweep for _, name, sweep in studies.values()}


def pixels_of_hue(png: bytes, low: float, high: float) -> int:
    """Saturated pixels with a hue within [low, high) degrees (wrapping at 360), however faded
    (lines drawn with alpha): red (failed) is around 0°, orange (pruned) 20–36°; viridis and the
    text have none there."""
    with Image.open(io.BytesIO(png)) as image:
        hsv = np.asarray(image.convert("RGB").convert("HSV"), dtype=np.float32)
    hue, saturation = hsv[..., 0] * 360 / 255, hsv[..., 1] / 255
    inside = (hue >= low % 360) & (hue < high) if low >= 0 else (hue >= low % 360) | (hue < high)
    return int((inside & (saturation > 0.3)).sum())


def states(view) -> dict[str, int]:
    out: dict[str, int] = {}
    for trial in view.trials:
        out[view.state(trial)] = out.get(view.state(trial), 0) + 1
    return out


# --- the study and its importance ----------------------------------------------------------
def test_the_small_study_has_completed_pruned_and_failed_trials(studies):
    view = load_view(*studies["single"][:2])
    counts = states(view)
    assert counts["completed"] >= 10 and counts["pruned"] >= 1 and counts["failed"] >= 1, counts
    pruned = [t for t in view.trials if t.state == TrialState.PRUNED]
    assert all(view.stopped_at(t)[0] == 2 for t in pruned)          # stopped at their 2nd report


def test_importance_ranks_the_dominant_param_first_by_each_evaluator(studies):
    found, notes = importances(load_view(*studies["single"][:2]))
    assert {i.evaluator for i in found} == {"fANOVA", "PED-ANOVA"}, notes
    for result in found:
        assert max(result.values, key=result.values.get) == "lr", (result.evaluator, result.values)
        assert result.values["lr"] > 0.5 and sum(result.values.values()) == pytest.approx(1.0)


def test_each_objective_of_a_two_objective_study_has_its_own_dominant_param(studies):
    found, _ = importances(load_view(*studies["multi"][:2]))
    top = {(i.objective, i.evaluator): max(i.values, key=i.values.get) for i in found}
    assert top == {("loss", "fANOVA"): "lr", ("loss", "PED-ANOVA"): "lr",
                   ("cost", "fANOVA"): "width", ("cost", "PED-ANOVA"): "width"}


def test_too_few_completed_trials_give_a_note_and_no_importance_chart(tmp_path):
    storage = f"sqlite:///{tmp_path / 'few.db'}"
    study = optuna.create_study(study_name="few", storage=storage)
    dists = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "width": optuna.distributions.IntDistribution(8, 64)}
    for k, state in enumerate(["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE", "FAIL"]):
        study.add_trial(optuna.trial.create_trial(
            state=TrialState[state], value=float(k) if state == "COMPLETE" else None,
            params={"lr": 10 ** (-1 - k / 2), "width": 8 + k}, distributions=dists,
            intermediate_values={1: 5.0} if state == "PRUNED" else None))
    out = tmp_path / "out"
    assert report_main(["--storage", storage, "--study", "few", "--out", str(out), "--no-wandb"]) == 0
    html = (out / "report.html").read_text()
    assert "parameter importance needs at least 5 completed trials; the study has 3" in html
    assert not (out / "report" / "study_importance.png").exists()
    assert (out / "report" / "study_history.png").is_file() and (out / "report" / "study_parallel.png").is_file()


# --- the figures -------------------------------------------------------------------------------
def test_study_figures_exist_and_are_not_blank(reports):
    for name, expected in (("single", ["study_history", "study_importance", "study_parallel"]),
                           ("multi", ["study_history", "study_importance", "study_parallel", "study_pareto"])):
        folder = reports[name] / "report"
        for stem in expected:
            assert not is_blank((folder / f"{stem}.png").read_bytes()), (name, stem)
        assert (folder / "study_pareto.png").exists() == (name == "multi")   # one objective: no front
        # not runs of train.py: none of the VAE figures
        assert not (folder / "rate_distortion.png").exists() and not (folder / "heatmap.png").exists()


def test_pruned_and_failed_trials_are_drawn(studies):
    """Drawn with and without the study's pruned and failed trials: their colours come from the
    trials, not from a legend."""
    view = load_view(*studies["single"][:2])
    only_completed = dataclasses.replace(view, trials=view.completed)
    for draw in (study_plots.parallel_coordinates, study_plots.history):
        full, bare = draw(view), draw(only_completed)
        for state, hues in HUES.items():
            assert pixels_of_hue(full, *hues) > pixels_of_hue(bare, *hues) + 50, (draw.__name__, state)


def test_the_trial_table_has_every_trial_with_its_state_and_where_pruned_ones_stopped(studies, reports):
    view = load_view(*studies["single"][:2])
    headers, rows, row_states = trial_table(view, [])
    assert [r[0] for r in rows] == [t.number for t in view.trials]
    assert row_states == [view.state(t) for t in view.trials]
    stopped = headers.index("stopped at step")
    for row, trial in zip(rows, view.trials):
        assert (row[stopped] == 2) == (trial.state == TrialState.PRUNED)
        if trial.state == TrialState.FAIL:
            assert "not finite" in row[-1]                            # the sweeper's reason
    assert sorted(r[headers.index("rank")] for r in rows if r[headers.index("rank")]) == list(
        range(1, len(view.completed) + 1))
    html = (reports["single"] / "report.html").read_text()
    for state, count in states(view).items():
        assert len(re.findall(rf'<tr class="{state}">', html)) == count, state


def test_a_pareto_front_is_marked_in_the_table(studies, reports):
    view = load_view(*studies["multi"][:2])
    html = (reports["multi"] / "report.html").read_text()
    assert html.count('<tr class="completed front">') == len(view.study.best_trials) >= 2


def test_the_study_page_is_self_contained_with_a_sortable_table(reports):
    html = (reports["single"] / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    for external in ("http:", "https:", "<link", "@import", "url(", "src=\"/", "<script src"):
        assert external not in html, external
    assert html.count("<script>") == 1 and '<table class="sortable">' in html
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert (reports["single"] / "report" / "study_parallel.png").read_bytes() in embedded


# --- W&B -----------------------------------------------------------------------------------------
def test_wandb_report_run_holds_the_study_figures_and_the_trial_table(studies, reports):
    view = load_view(*studies["single"][:2])
    run_dirs = sorted((reports["single"] / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    summary = json.loads(subprocess.run([WANDB, "leet", "inspect", "--summary", "--json", str(run_dirs[0])],
                                        capture_output=True, text=True, check=True).stdout)
    assert summary["state"] == "finished"
    values = summary["summary"]
    for stem in ("study_history", "study_importance", "study_parallel"):
        image = values[f"report/{stem}"]
        assert image["_type"] == "image-file"
        assert not is_blank((run_dirs[0] / "files" / image["path"]).read_bytes()), stem
    table = values["trials"]
    assert table["_type"] == "table-file" and table["nrows"] == len(view.trials)
    stored = json.loads((run_dirs[0] / "files" / table["path"]).read_text())
    column = {name: k for k, name in enumerate(stored["columns"])}
    assert {row[column["trial"]]: row[column["state"]] for row in stored["data"]} == {
        t.number: view.state(t) for t in view.trials}
    assert {"lr", "width", "act", "loss", "stopped at step"} <= set(column)
    fanova = values["importance/loss/fANOVA"]
    assert max(fanova, key=fanova.get) == "lr"


# --- the multirun route, and grids ------------------------------------------------------------------
def test_an_optuna_multirun_folder_finds_its_study(studies, tmp_path):
    storage, name, sweep = studies["single"]
    found = collect_multirun(sweep)
    assert found.study is not None and found.study.name == name and len(found.study.trials) == 20
    # a study kept in memory cannot be read back: one note, and the runs' report as before
    copy = tmp_path / "memory"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("wandb", "report*"))
    results = (copy / "optimization_results.yaml").read_text()
    (copy / "optimization_results.yaml").write_text(re.sub(r"storage: .*", "storage: null", results))
    for job in copy.glob("*/.hydra/config.yaml"):
        job.write_text(re.sub(r"storage: .*", "storage: null", job.read_text()))
    found = collect_multirun(copy)
    assert found.study is None and any("kept in memory" in n for n in found.notes)


# --- in a real browser -----------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium")


def dump_dom(page: Path, profile: Path) -> tuple[str, str]:
    """(DOM after the page's scripts ran, Chromium's log with the page's console messages)."""
    proc = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def console_messages(log: str) -> list[str]:
    """Every message the page wrote to the console. Chromium logs them all (console.error and
    uncaught exceptions too) as INFO:CONSOLE lines; the report never logs, so any line is a fault."""
    return [line for line in log.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_report_renders_in_chromium_without_console_errors_and_sorts(reports, tmp_path):
    page = reports["single"] / "report.html"
    dom, log = dump_dom(page, tmp_path / "profile1")
    assert console_messages(log) == [], log[-2000:]
    table = dom.split("<thead>")[1].split("</table>")[0]
    assert table.count("<tr class=") == 20 and "aria-sort" not in table, "rows missing, or sorted unasked"
    # The same page, with a click on the "loss" header and two faults of our own: the rows come
    # back sorted by loss (empty cells last), and both faults are caught in the log.
    html = page.read_text()
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", html.split("</thead>")[0])
    probe = (f'<script>document.querySelectorAll("table.sortable th")[{headers.index("loss")}].click();'
             'console.error("probe-error"); null.probe;</script></body>')
    copy = tmp_path / "probe.html"
    copy.write_text(html.replace("</body>", probe))
    dom, log = dump_dom(copy, tmp_path / "profile2")
    caught = console_messages(log)
    assert len(caught) == 2 and "probe-error" in caught[0] and "Uncaught TypeError" in caught[1], log[-2000:]
    rows = dom.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]
    losses = [re.findall(r"<td[^>]*>([^<]*)</td>", row)[headers.index("loss")] for row in rows]
    filled = [float(v) for v in losses if v]
    assert len(filled) >= 10 and filled == sorted(filled), losses
    assert losses[len(filled):] == [""] * (len(losses) - len(filled)), losses       # no loss: last
    assert 'aria-sort="ascending">loss</th>' in dom.split("<thead>")[1].split("</thead>")[0]
