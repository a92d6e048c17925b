"""Fused training: many small jobs of one sweep trained as one stacked model (hydra/launcher=fused)."""
