"""What the disentanglement metrics need from a dataset with known generative factors, and how
many samples each metric draws (disentanglement_lib's sizes available as ``MetricSizes.reference()``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch


class GroundTruthData(Protocol):
    """What the metrics need from a dataset with known generative factors (attributes or properties)."""

    @property
    def factor_names(self) -> tuple[str, ...]: ...

    @property
    def factor_sizes(self) -> tuple[int, ...]:
        """How many classes each factor takes (1: a factor that never varies)."""
        ...

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, F) integer classes, factor j in [0, factor_sizes[j]), drawn as the dataset draws them."""
        ...

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray | torch.Tensor:
        """The images (one per row of ``factors``) that those factor classes generate."""
        ...


# images (whatever images_from_factors returns) -> posterior means, an array (n, L)
Represent = Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class MetricSizes:
    """How many samples each metric draws. The defaults take a few seconds on a CPU (module docstring);
    ``MetricSizes.reference()`` is disentanglement_lib's unsupervised study, for paper-grade numbers."""

    num_train: int = 2_000            # MIG and DCI training codes (reference 10,000)
    num_test: int = 1_000             # DCI test codes (reference 5,000)
    dci_ensemble: str = "fast"        # "reference": 100-stage boosting
    batch_size: int = 64              # FactorVAE / BetaVAE images per vote (as the reference)
    factor_vae_train: int = 200       # votes (reference 10,000)
    factor_vae_eval: int = 200        # votes (reference 5,000)
    factor_vae_variance: int = 2_000  # images for the global variances (reference 10,000)
    beta_vae_train: int = 200         # points (reference 10,000)
    beta_vae_eval: int = 200          # points (reference 5,000)
    num_bins: int = 20                # MIG's histogram bins (as the reference)

    @classmethod
    def reference(cls) -> MetricSizes:
        return cls(num_train=10_000, num_test=5_000, dci_ensemble="reference", factor_vae_train=10_000,
                   factor_vae_eval=5_000, factor_vae_variance=10_000, beta_vae_train=10_000, beta_vae_eval=5_000)


DEFAULT = MetricSizes()
