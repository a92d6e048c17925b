"""−log p(x|z) of a Bernoulli with logits: the binary cross-entropy, element by element.

Training uses PyTorch's ``binary_cross_entropy_with_logits`` (its fused backward, the call a plain
loop makes). Evaluation, which computes it for tens of millions of pixels a run, uses the same formula
with ``log(1 + exp(−|l|))``: vectorised where the fused kernel's ``log1p`` is not on a CPU
(BENCHMARKS.md, "Evaluation likelihood"); the result agrees to ~1e-4 nats an image.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log Bernoulli(x; logits) per element; ``x`` broadcasts against ``logits`` and may be grey
    (targets in [0, 1], as BCE accepts)."""
    if torch.is_grad_enabled():
        return F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
    # relu(l) − x·l + log(1 + exp(−|l|)), in place on one temporary
    out = logits.abs().neg_().exp_().add_(1).log_()
    return out.add_(logits.clamp(min=0)).sub_(logits * x)
