"""The sweep report: what a finished sweep (a multirun folder or an Optuna study) shows a reader.

- ``runs``: reads the runs back from disk (``metrics.json``, CSV history, PNGs) or from a study.
- ``plots``: the figures (rate–distortion plane, heatmap, curves, mosaics).
- ``study``: an Optuna study's trials, best trials or Pareto front, and parameter importance
  (Optuna's fANOVA and PED-ANOVA evaluators); ``study_plots``: its figures (history, importance,
  parallel coordinates, Pareto front). Used only when the sweep is a study.
- ``html``: the self-contained page (a study's has a sortable trial table).
- ``report``: builds all of it, prints the table, logs the W&B report run (``python -m sweeps.report``).
- ``callback``: the Hydra callback that builds it when a multirun ends.

It reads what runs wrote and never imports the library's training code.
"""
