"""Pictures of a trained model, as uint8 (C, H, W) tensors.

uint8 because W&B saves a float image in [0, 1] as an all-black PNG (it casts to uint8).
"""

from __future__ import annotations

import io

import torch
from torchvision.utils import make_grid

from vae.models.beta_vae import BetaVAE

# What a model needs for its figures: BetaVAE has them; a model of your own may add them.
FIGURE_INTERFACE = ("latent_size", "posterior", "decode_mean", "reconstruct")


def can_draw(model) -> bool:
    return all(hasattr(model, name) for name in FIGURE_INTERFACE)


def to_uint8(grid: torch.Tensor) -> torch.Tensor:
    return grid.clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def reconstructions(model: BetaVAE, images: torch.Tensor) -> torch.Tensor:
    """Inputs (top row) above their reconstructions (bottom row)."""
    recon = model.reconstruct(images.to(model.device))
    return to_uint8(make_grid(torch.cat([images.to(model.device), recon]), nrow=len(images), pad_value=1))


def traversal_grid(model: BetaVAE, steps: int = 11, span: float = 3.0, dims: tuple[int, int] = (0, 1)) -> torch.Tensor:
    """The seed notebook's grid: latent dims 0 (columns) and 1 (rows) over [−span, span], others 0."""
    values = torch.linspace(-span, span, steps, device=model.device)
    z = torch.zeros(steps, steps, model.latent_size, device=model.device)
    z[..., dims[0]] = values.view(1, -1)
    z[..., dims[1]] = values.flip(0).view(-1, 1)  # top row is +span, as on a plot's y axis
    return to_uint8(make_grid(model.decode_mean(z.view(-1, model.latent_size)), nrow=steps, pad_value=1))


def traversal_rows(model: BetaVAE, steps: int = 11, span: float = 3.0) -> torch.Tensor:
    """One row per latent dim: that dim swept over [−span, span], the others 0."""
    values = torch.linspace(-span, span, steps, device=model.device)
    z = torch.zeros(model.latent_size, steps, model.latent_size, device=model.device)
    for d in range(model.latent_size):
        z[d, :, d] = values
    return to_uint8(make_grid(model.decode_mean(z.view(-1, model.latent_size)), nrow=steps, pad_value=1))


def prior_samples(model: BetaVAE, n: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.latent_size, generator=generator).to(model.device)
    return to_uint8(make_grid(model.decode_mean(z), nrow=int(n ** 0.5), pad_value=1))


def _figure_pixels(fig) -> torch.Tensor:
    import matplotlib.pyplot as plt
    from torchvision.io import decode_png

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return decode_png(torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8))[:3]


def mutual_info_matrix(normalized_mi: list[list[float]], factor_names: list[str]) -> torch.Tensor:
    """Which latent dim tracks which factor: MI(z_i; v_j) / H(v_j), latents (rows) × factors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mi = torch.tensor(normalized_mi)
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(factor_names), 1.0 + 0.35 * len(mi)), dpi=100)
    shown = ax.imshow(mi, cmap="viridis", vmin=0, vmax=max(0.05, float(mi.max())), aspect="auto")
    ax.set_xticks(range(len(factor_names)), factor_names, rotation=30, ha="right")
    ax.set_yticks(range(len(mi)), [f"z[{i}]" for i in range(len(mi))])
    for i in range(mi.shape[0]):
        for j in range(mi.shape[1]):
            if mi[i, j] >= 0.05:
                ax.text(j, i, f"{mi[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if mi[i, j] > 0.6 * float(mi.max()) else "white")
    fig.colorbar(shown, ax=ax, label="MI / H(factor)")
    ax.set_title("mutual information, latents × factors", fontsize=10)
    fig.tight_layout()
    return _figure_pixels(fig)


def latent_scatter(model: BetaVAE, images: torch.Tensor, labels: torch.Tensor, label_name: str = "label",
                   num_classes: int | None = None) -> torch.Tensor:
    """Posterior means of a 2-D latent space, coloured by label (a matplotlib figure as pixels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        locs = torch.cat([model.posterior(chunk.to(model.device)).loc.cpu() for chunk in images.split(2000)])
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    classes = num_classes or int(labels.max()) + 1
    cmap = "tab10" if classes <= 10 else "viridis"
    points = ax.scatter(locs[:, 0], locs[:, 1], c=labels, cmap=cmap, s=2, alpha=0.6, vmin=-0.5, vmax=classes - 0.5)
    fig.colorbar(points, ax=ax, ticks=range(classes) if classes <= 10 else None, label=label_name)
    ax.set(xlabel="z[0]", ylabel="z[1]", title="test set posterior means")
    fig.tight_layout()
    return _figure_pixels(fig)
