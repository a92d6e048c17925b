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
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def fmt_beta(beta: float | None) -> str:
    return "?" if beta is None else f"{beta:.3g}"


def is_blank(png_bytes: bytes, threshold: float = 2.0) -> bool:
    """True if an image is (nearly) one flat colour; tests use it to catch empty figures."""
    with Image.open(io.BytesIO(png_bytes)) as image:
        return float(np.asarray(image.convert("L"), dtype=np.float32).std()) < threshold


__all__ = ["MARKERS", "STATE_COLOURS", "fmt_beta", "is_blank", "plt", "png"]
