"""The report on sweeps over data with known factors, and over several datasets at once.

Job folders are written here as runs leave them (``.hydra/config.yaml``, ``metrics.json``,
``images/``), so the report's reading and drawing are tested without training.
"""

import json

import numpy as np
import yaml
from PIL import Image

from sweeps.report.drawing import is_blank
from sweeps.report.report import make_report
from sweeps.report.collect import collect_multirun


def write_job(sweep, num, data, beta, latent, mig=None):
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"beta": beta, "latent_size": latent}))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"data={data}", f"beta={beta}"]))
    metrics = {"test/distortion": 60.0 + beta, "test/rate": 10.0 / (1 + beta), "test/neg_elbo": 70.0,
               "test/nll_iwae": 65.0 + beta, "test/active_units": 4.0, "steps": 30, "wall_time_s": 1.0}
    if mig is not None:
        metrics |= {"test/mig": mig, "test/dci_disentanglement": mig + 0.1, "test/factor_vae": 0.5 + mig,
                    "test/beta_vae": 0.6, "test/mutual_info": [[0.1, 0.9], [0.5, 0.0]]}
        (job / "images").mkdir()
        rng = np.random.default_rng(num)
        Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8)).save(job / "images" / "mutual_info.png")
    record = {"run_name": f"data={data},beta={beta}", "status": "completed", "metrics": metrics,
              "params": {"beta": beta, "latent_size": latent, "data": data}}
    (job / "metrics.json").write_text(json.dumps(record))


def test_factor_scores_get_their_figures_and_columns(tmp_path):
    for num, (beta, mig) in enumerate([(1, 0.05), (4, 0.2), (16, 0.35)]):
        write_job(tmp_path, num, "shapes", beta, 10, mig)
    report = make_report(collect_multirun(tmp_path), use_wandb=False, print_to=False)
    names = set(report.figures)
    assert {"disentanglement_vs_beta", "heatmap_mig", "mutual_info_best"} <= names
    assert not any(is_blank(p.read_bytes()) for p in report.figures.values())
    # the best-MIG run's own matrix is the one shown
    assert report.figures["mutual_info_best"].read_bytes() == (tmp_path / "2" / "images" / "mutual_info.png").read_bytes()
    html = (tmp_path / "report.html").read_text()
    assert "Disentanglement against β" in html and ">MIG<" in html
    # the matrix is shown, so the "Missing or incomplete" box does not list it; its caption names the run
    assert not any("mutual information" in note for note in report.notes)
    assert "Shown: run beta=16 (MIG 0.350, the best)." in html


def test_runs_without_factors_show_none_of_it(tmp_path):
    for num, beta in enumerate([1, 4]):
        write_job(tmp_path, num, "mnist", beta, 10)
    report = make_report(collect_multirun(tmp_path), use_wandb=False, print_to=False)
    assert not {"disentanglement_vs_beta", "heatmap_mig", "mutual_info_best"} & set(report.figures)
    assert "MIG" not in (tmp_path / "report.html").read_text()


def test_a_sweep_over_two_datasets_draws_each_on_its_own(tmp_path):
    write_job(tmp_path, 0, "mnist", 1, 10)
    write_job(tmp_path, 1, "mnist", 4, 10)
    write_job(tmp_path, 2, "shapes", 1, 10, 0.1)
    write_job(tmp_path, 3, "shapes", 4, 10, 0.3)
    report = make_report(collect_multirun(tmp_path), use_wandb=False, print_to=False)
    assert {"rate_distortion@mnist", "rate_distortion@shapes", "disentanglement_vs_beta@shapes"} <= set(report.figures)
    assert "disentanglement_vs_beta@mnist" not in report.figures and "rate_distortion" not in report.figures
    html = (tmp_path / "report.html").read_text()
    assert "Rate–distortion plane — mnist" in html and "Rate–distortion plane — shapes" in html
    # a second report of a one-dataset sweep in the same folder leaves no stale per-dataset figure
    for job in ("2", "3"):
        record = json.loads((tmp_path / job / "metrics.json").read_text())
        record["params"]["data"] = "mnist"
        (tmp_path / job / "metrics.json").write_text(json.dumps(record))
    again = make_report(collect_multirun(tmp_path), use_wandb=False, print_to=False)
    assert not any("@" in p.stem for p in (tmp_path / "report").glob("*.png")), sorted(again.figures)


def test_a_failed_run_on_factor_data_is_kept_out_of_the_scores(tmp_path):
    write_job(tmp_path, 0, "shapes", 1, 10, 0.2)
    write_job(tmp_path, 1, "shapes", 4, 10, 0.9)
    record = json.loads((tmp_path / "1" / "metrics.json").read_text())
    record["status"], record["error"] = "failed", "DivergedError: loss became nan"
    (tmp_path / "1" / "metrics.json").write_text(json.dumps(record))
    report = make_report(collect_multirun(tmp_path), use_wandb=False, print_to=False)
    assert report.figures["mutual_info_best"].read_bytes() == (tmp_path / "0" / "images" / "mutual_info.png").read_bytes()


def drawn(monkeypatch) -> list:
    """The figures the report draws, kept as matplotlib figures as well as PNGs."""
    from matplotlib.figure import Figure

    import sys

    from sweeps.report import drawing, figures  # noqa: F401 - imports every drawing module

    seen, real_png = [], drawing.png

    def keep(fig: Figure, dpi: int = 100) -> bytes:
        picture = real_png(fig, dpi)
        seen.append((fig, picture))
        return picture

    for name, module in list(sys.modules.items()):     # each drawing module imported png by name
        if name.startswith("sweeps.report.") and getattr(module, "png", None) is real_png:
            monkeypatch.setattr(module, "png", keep)
    return seen


def test_scores_in_the_mig_heatmap_are_told_apart(tmp_path, monkeypatch):
    seen = drawn(monkeypatch)
    write_job(tmp_path, 0, "shapes", 1, 10, 0.145)
    write_job(tmp_path, 1, "shapes", 4, 10, 0.047)
    make_report(collect_multirun(tmp_path), use_wandb=False, print_to=False)
    mig = next(fig for fig, _ in seen if fig.axes[0].get_title().startswith("test/mig"))
    assert {t.get_text() for t in mig.axes[0].texts} == {"0.145", "0.047"}


def test_titles_of_a_one_column_sweep_fit_their_figures(tmp_path, monkeypatch):
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    seen = drawn(monkeypatch)
    for num, beta in enumerate([1, 4]):            # one latent size: one-column heatmaps and mosaics
        write_job(tmp_path, num, "shapes", beta, 10, 0.1 * (num + 1))
        (tmp_path / str(num) / "images" / "traversal_grid.png").write_bytes(
            (tmp_path / str(num) / "images" / "mutual_info.png").read_bytes())
    make_report(collect_multirun(tmp_path), use_wandb=False, print_to=False)
    checked = 0
    for fig, picture in seen:
        renderer = FigureCanvasAgg(fig).get_renderer()   # the report closed the figure, dropping its canvas
        width = Image.open(io.BytesIO(picture)).width
        for title in [fig._suptitle, *(ax.title for ax in fig.axes)]:
            if title is not None and title.get_text():
                box = title.get_window_extent(renderer)
                assert box.x0 >= 0 and box.x1 <= width, title.get_text()   # not clipped at either edge
                checked += 1
    assert checked >= 5


def test_the_optuna_trial_table_carries_the_disentanglement_scores(tmp_path):
    import optuna

    from sweeps.report.study import load_view, trial_table

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    for number, (beta, mig) in enumerate([(1, 0.145), (4, 0.047)]):
        study.enqueue_trial({"beta": beta})
        study.optimize(lambda t: t.suggest_float("beta", 0.1, 10) + 60, n_trials=1)
        write_job(tmp_path / "sweep", number, "shapes", beta, 10, mig)
    headers, rows, _ = trial_table(load_view(storage, "s"), collect_multirun(tmp_path / "sweep").runs)
    assert {"MIG", "DCI", "FactorVAE"} <= set(headers)
    assert [row[headers.index("MIG")] for row in rows] == [0.145, 0.047]
