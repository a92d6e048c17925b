"""Which figures a sweep's report gets, drawn by plots.py (grid, plane, curves) and
disentanglement_plots.py (data with known factors), once per dataset the sweep spans."""

from __future__ import annotations

from typing import Sequence

from sweeps.report import disentanglement_plots, replicate_plots
from sweeps.report.mosaic import mosaic
from sweeps.report.grid import MAX_GRID, make_grid
from sweeps.report.plots import curves, heatmap, kl_per_dim, rate_distortion
from sweeps.report.replicates import has_replicates
from sweeps.report.runs import METRICS, Run


def all_figures(runs: Sequence[Run], metric: str = "test/nll_iwae") -> tuple[dict[str, bytes], list[str]]:
    """Every figure of the report by file stem, and notes on the figures that could not be drawn.
    A sweep over several datasets gets each figure once per dataset (``<stem>@<dataset>``): nats
    of different images are not comparable on one plane."""
    if metric not in METRICS and not metric.startswith(("test/", "val/")):
        raise ValueError(f"unknown metric {metric!r}; use one of: {', '.join(METRICS)}")
    if not runs:
        return {}, ["no runs yet: nothing to draw"]
    datasets = sorted({str(r.params.get("data")) for r in runs})
    if len(datasets) == 1:
        return _figures_of(runs, metric)
    figures, notes = {}, [f"the sweep spans {len(datasets)} datasets ({', '.join(datasets)}): each figure is "
                          f"drawn once per dataset"]
    for dataset in datasets:
        theirs, their_notes = _figures_of([r for r in runs if str(r.params.get("data")) == dataset], metric)
        figures.update({f"{name}@{dataset}": picture for name, picture in theirs.items()})
        notes += [f"{dataset}: {note}" for note in their_notes]
    return figures, notes


def _figures_of(runs: Sequence[Run], metric: str) -> tuple[dict[str, bytes], list[str]]:
    # Replicates (several seeds of a configuration): means with their intervals instead of runs.
    spread = has_replicates(runs)
    figures: dict[str, bytes] = {"rate_distortion": replicate_plots.rate_distortion(runs) if spread
                                 else rate_distortion(runs)}
    notes = []
    factors = disentanglement_plots.has_scores(runs)
    figures["heatmap"] = replicate_plots.heatmap(runs, metric) if spread else heatmap(runs, metric)
    if factors:
        figures["disentanglement_vs_beta"] = (replicate_plots if spread else disentanglement_plots).scores_vs_beta(runs)
        figures["heatmap_mig"] = replicate_plots.heatmap(runs, "test/mig") if spread else heatmap(runs, "test/mig")
        best = disentanglement_plots.best_mutual_info(runs)
        if best is not None:   # shown, so not a note: its caption names the run (report.run_captions)
            figures["mutual_info_best"] = best[0]
    figures["mosaic_traversals"] = mosaic(runs, ["traversal_grid", "traversal_rows"],
                                          "Latent traversals by β (rows) and latent size (columns)", metric,
                                          score="test/mig" if factors else None)
    figures["mosaic_reconstructions"] = mosaic(runs, ["reconstructions"],
                                               "Reconstructions (top: input, bottom: output) by β and latent size",
                                               metric)
    if make_grid(runs).binned:
        notes.append(f"β or latent size takes more than {MAX_GRID} values: the heatmap and mosaics bin them "
                     f"(log-spaced) and show each bin's best run")
    kl = kl_per_dim(runs)
    if kl is not None:
        figures["kl_per_dim"] = kl
    figures["curves"] = curves(runs)
    return figures, notes
