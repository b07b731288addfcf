"""Heat maps of a PH layer's algebra: each A_i, their sum, and the Hamilton rule beside it when n = 4."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from phnn.io import atomic_open  # noqa: E402
from phnn.nn import PHLayer, hamilton  # noqa: E402


def save_figure_atomically(figure: plt.Figure, path: Path) -> None:
    """Render to a temporary file in the target folder, then rename: no half-written PNG."""
    with atomic_open(path, "wb") as file:
        figure.savefig(file, format="png", dpi=100, bbox_inches="tight")


def plot_algebra(layer: PHLayer, title: str, path: Path) -> Path:
    algebra = layer.algebra.detach().float().cpu()
    panels = [(f"A{i + 1}", algebra[i]) for i in range(layer.n)] + [("Σ A_i", algebra.sum(0))]
    if layer.n == 4:
        panels.append(("Hamilton Σ A_i", hamilton().sum(0)))
    figure, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6), squeeze=False)
    limit = max(float(torch.max(torch.abs(matrix))) for _, matrix in panels) or 1.0
    for axis, (label, matrix) in zip(axes[0], panels):
        image = axis.imshow(matrix.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(label, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    figure.suptitle(f"{title} ({layer.algebra_name} algebra, n={layer.n})", fontsize=10)
    save_figure_atomically(figure, path)
    plt.close(figure)
    return path
