"""The report of a sweep with replicates: means and 95% t intervals per configuration, checked
against hand computations and against coverage on synthetic draws; the page (one row per
configuration, every run folded below, comparison sentences) in headless Chromium.

Job folders are written here as runs leave them, so the statistics are tested without training."""

import csv
import json
import math

import numpy as np
import pytest
import yaml

from sweeps.report.collect import collect_multirun
from sweeps.report.drawing import is_blank
from sweeps.intervals import difference, mean_interval
from sweeps.report.report import make_report
from test_study_report import CHROMIUM, console_messages, dump_dom

# MIG by (β, seed): β=4 beats β=1 on every seed by 0.10..0.14; β=16 vs β=4 is seed noise.
MIG = {1: [0.05, 0.10, 0.02], 4: [0.17, 0.21, 0.15], 16: [0.20, 0.14, 0.22]}


def write_job(sweep, num, beta, seed, mig, replicates=True):
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"beta": beta, "latent_size": 10, "seed": seed}))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"beta={beta}", f"seed={seed}"]))
    metrics = {"test/distortion": 60.0 + beta + seed, "test/rate": 10.0 / (1 + beta) + seed, "test/neg_elbo": 70.0,
               "test/nll_iwae": 65.0 + beta + 0.5 * seed, "test/active_units": 4.0, "steps": 30, "wall_time_s": 1.0,
               "test/mig": mig, "test/dci_disentanglement": mig + 0.1, "test/factor_vae": 0.5 + mig,
               "test/beta_vae": 0.6}
    params = {"beta": beta, "latent_size": 10, "seed": seed, "data": "shapes"}
    if replicates:
        params["replicate_of"] = f"config-beta{beta}"
    record = {"run_name": f"beta={beta}", "status": "completed", "metrics": metrics, "params": params}
    (job / "metrics.json").write_text(json.dumps(record))


def write_sweep(path, replicates=True):
    num = 0
    for beta, migs in MIG.items():
        for seed, mig in enumerate(migs if replicates else migs[:1]):
            write_job(path, num, beta, seed, mig, replicates)
            num += 1
    return path


# --- the statistics --------------------------------------------------------------------------
def test_mean_and_t_interval_match_a_hand_computation():
    # n=4, mean 2.5, s = sqrt(5/3) = 1.29099; t(0.975, 3) = 3.18245 (printed t tables)
    got = mean_interval([1, 2, 3, 4])
    half = 3.182446305 * math.sqrt(5 / 3) / 2
    assert (got.mean, got.n) == (2.5, 4)
    assert got.low == pytest.approx(2.5 - half, abs=1e-6) and got.high == pytest.approx(2.5 + half, abs=1e-6)
    one = mean_interval([7.0])
    assert one.mean == 7.0 and math.isnan(one.low) and one.n == 1


def test_paired_difference_per_shared_seed_and_welch_without_shared_seeds():
    # Per seed: 1-0, 2-1.5, 4-2 = 1, 0.5, 2: mean 7/6, s = sqrt(7/12), t(0.975, 2) = 4.30265
    d = difference({0: 1, 1: 2, 2: 4}, {0: 0, 1: 1.5, 2: 2})
    half = 4.302652730 * math.sqrt(7 / 12) / math.sqrt(3)
    assert d.paired and d.seeds == 3
    assert d.interval.mean == pytest.approx(7 / 6) and d.interval.high == pytest.approx(7 / 6 + half, abs=1e-6)
    # Seeds 0,1 vs 5,6,7: not paired (Welch): same mean difference, a wider interval than pairing gives
    w = difference({0: 1, 1: 2}, {5: 0, 6: 1, 7: 3})
    assert not w.paired and w.interval.mean == pytest.approx(1.5 - 4 / 3)
    # Pairing removes what a seed does to both: a shared seed effect no longer widens the interval.
    a, b = {s: 10.0 * s + 1.0 for s in range(5)}, {s: 10.0 * s for s in range(5)}
    assert difference(a, b).interval.half == pytest.approx(0.0, abs=1e-9)


def test_the_95_percent_interval_covers_the_true_mean_of_a_known_normal():
    rng = np.random.default_rng(0)
    covered = [(i := mean_interval(rng.normal(3.0, 2.0, size=5))).low <= 3.0 <= i.high for _ in range(200)]
    assert 0.90 <= np.mean(covered) <= 0.99, np.mean(covered)
    # A normal quantile (1.96) instead of t would cover too little at n=5: the t interval is wider.
    x = rng.normal(size=5)
    assert mean_interval(x).half > 1.96 * x.std(ddof=1) / math.sqrt(5)


# --- the report ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = write_sweep(tmp_path_factory.mktemp("replicates"))
    return path, make_report(collect_multirun(path), use_wandb=False, print_to=False)


def test_one_row_per_configuration_with_mean_and_interval_of_every_metric(report):
    path, made = report
    rows = list(csv.DictReader(open(path / "report" / "configurations.csv")))
    assert [r["configuration"] for r in rows] == ["beta=1", "beta=4", "beta=16"]
    for row, (beta, migs) in zip(rows, MIG.items()):
        expected = mean_interval(migs)
        assert row["seeds"] == "[0, 1, 2]" and row["test/mig n"] == "3"
        assert float(row["test/mig mean"]) == pytest.approx(np.mean(migs))
        assert float(row["test/mig low"]) == pytest.approx(expected.low)
        assert float(row["test/nll_iwae mean"]) == pytest.approx(65.0 + beta + 0.5)
    page = (path / "report.html").read_text()
    assert "Configurations (3; mean [95% t interval] over seeds)" in page
    assert "<details><summary>Every run (9, one row per seed)" in page


def test_neighbouring_configurations_are_compared_in_a_sentence_paired_per_seed(report):
    path, _ = report
    page = (path / "report.html").read_text()
    d = difference(dict(enumerate(MIG[4])), dict(enumerate(MIG[1])))
    sentence = (f"beta=1 vs beta=4: MIG difference {d.interval.mean:+.3g}, 95% CI [{d.interval.low:+.3g}, "
                f"{d.interval.high:+.3g}] (paired over 3 shared seeds); 0 is outside the interval: more than seed noise")
    assert sentence in page
    assert "beta=4 vs beta=16: MIG difference" in page and "not told apart from seed noise" in page
    assert "beta=1 vs beta=16" not in page     # neighbours only


def test_the_figures_show_the_spread(report):
    _, made = report
    assert {"rate_distortion", "heatmap", "heatmap_mig", "disentanglement_vs_beta"} <= set(made.figures)
    assert not any(is_blank(p.read_bytes()) for p in made.figures.values())


def test_without_replicates_the_report_is_as_before(tmp_path):
    path = write_sweep(tmp_path, replicates=False)
    for record_file in path.glob("*/metrics.json"):   # runs of this version: each its own configuration
        record = json.loads(record_file.read_text())
        record["params"]["replicate_of"] = f"id-{record_file.parent.name}"
        record_file.write_text(json.dumps(record))
    make_report(collect_multirun(path), use_wandb=False, print_to=False)
    page = (path / "report.html").read_text()
    assert "<h2>Runs</h2>" in page and "Configurations" not in page and "<details" not in page
    assert "replicate_of" not in page.split("</thead>")[0]
    assert not (path / "report" / "configurations.csv").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_replicates_page_renders_in_chromium_without_console_errors(report, tmp_path):
    path, _ = report
    dom, log = dump_dom(path / "report.html", tmp_path / "profile")
    assert console_messages(log) == [], log[-2000:]
    configurations = dom.split("<tbody>")[1].split("</tbody>")[0]
    assert configurations.count("<tr") == 3 and "<details>" in dom and dom.count("<img") >= 4
