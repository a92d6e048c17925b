"""Scores of a trained representation against data with known generative factors.

Pure numpy + scikit-learn, no Lightning or Hydra: ``disentanglement.evaluate(data, represent)`` takes any
dataset that declares its factors (``GroundTruthData``) and any function from images to posterior means.
"""
