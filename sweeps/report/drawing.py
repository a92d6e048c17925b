"""What every figure of the report shares: matplotlib without a display (Agg), PNG encoding,
how β is printed, and the colours of run states."""

from __future__ import annotations

import io

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image

MARKERS = "os^DvPX*h<>"
STATE_COLOURS = {"failed": "#d62728", "pruned": "#ff7f0e", "running": "#7f7f7f", "missing": "#7f7f7f"}


def png(fig: Figure, dpi: int = 100) -> bytes:
    widen_to_fit_titles(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def widen_to_fit_titles(fig: Figure, margin: float = 0.3) -> None:
    """Widen a figure narrower than its widest title (a one-column mosaic or heatmap): matplotlib
    clips text at the figure's edge, and tight_layout moves axes but never widens the figure."""
    titles = [t for t in [fig._suptitle, *(ax.title for ax in fig.axes)] if t is not None and t.get_text()]
    for _ in range(3):   # a title centred over an axes beside a colour bar may need a second widening
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in titles]
        overflow = max([0.0, *(max(-b.x0, b.x1 - fig.bbox.width) for b in boxes)]) / fig.dpi
        if overflow <= 0:
            return
        fig.set_figwidth(fig.get_figwidth() + 2 * overflow + margin)
        fig.tight_layout()


def fmt_beta(beta: float | None) -> str:
    return "?" if beta is None else f"{beta:.3g}"


def is_blank(png_bytes: bytes, threshold: float = 2.0) -> bool:
    """True if an image is (nearly) one flat colour; tests use it to catch empty figures."""
    with Image.open(io.BytesIO(png_bytes)) as image:
        return float(np.asarray(image.convert("L"), dtype=np.float32).std()) < threshold


__all__ = ["MARKERS", "STATE_COLOURS", "fmt_beta", "is_blank", "plt", "png"]
