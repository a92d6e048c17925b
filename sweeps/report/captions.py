"""What the report says under each figure: file stem -> (heading, caption)."""

FIGURES = {  # file stem -> (heading, caption)
    "rate_distortion": ("Rate–distortion plane",
                        "One point per completed run (colour: β, marker: latent size). Dashed lines join runs "
                        "of equal −ELBO = D + R; the solid one passes through the best run. Circled runs "
                        "form the Pareto front: no other run has both less rate and less distortion."),
    "heatmap": ("β × latent size", "The chosen metric per cell (mean if several runs share a cell); "
                "hatched cells have no completed run and say why."),
    "disentanglement_vs_beta": ("Disentanglement against β",
                                "MIG, DCI disentanglement, FactorVAE and BetaVAE scores (1 = each factor in its own "
                                "latent dim) of every completed run, one line per latent size; the runs' test phase "
                                "computed them on fresh samples of the factor grid with a fixed seed."),
    "heatmap_mig": ("MIG by β × latent size", "The mutual information gap per cell (mean if several runs share it)."),
    "mutual_info_best": ("Which latent tracks which factor (best MIG run)",
                         "Mutual information between each latent dim and each factor, divided by the factor's "
                         "entropy: one bright cell per column and row is a disentangled code."),
    "mosaic_traversals": ("Latent traversals", "Each run's decoded traversal of latent dims 0 and 1 over "
                          "[−3, 3] (or one row per dim): where the images stop changing along an axis, that latent dim collapsed."),
    "mosaic_reconstructions": ("Reconstructions", "Test inputs (top row of each cell) and their reconstructions."),
    "kl_per_dim": ("KL per latent dimension", "Each completed run's test KL per latent dim, largest first: "
                   "dims near 0 carry no information (collapsed to the prior); the rest are its active units."),
    "curves": ("Training curves", "Total loss, reconstruction and KL of every run against the training step."),
}

STUDY_FIGURES = {  # an Optuna study's figures (study_plots), shown before the runs' own
    "study_history": ("Optimisation history",
                      "Each completed trial's objective by trial number, with the best value so far. Pruned "
                      "trials (×) sit at the last value they reported, failed ones are ticks on the bottom edge. "
                      "Right: the values each trial reported while it ran, pruned ones ending in ×."),
    "study_importance": ("Parameter importance",
                         "How much of each objective's variation each searched param explains, by Optuna's "
                         "evaluators over the completed trials (fANOVA: a random forest's variance "
                         "decomposition; PED-ANOVA: how much the best trials' params differ from all). "
                         "Normalised to sum 1 per evaluator."),
    "study_parallel": ("Parallel coordinates",
                       "One line per trial across the searched params and the objective(s), coloured by the "
                       "first objective; the best trials (or the Pareto front) are thick and numbered. Pruned "
                       "trials are dashed and end at their last reported value, failed ones dotted."),
    "study_pareto": ("Pareto front over the objectives",
                     "Every completed trial on the plane of the first two objectives (colour: trial number); "
                     "circled and numbered: the Pareto front, trials no other trial beats on every objective."),
}
