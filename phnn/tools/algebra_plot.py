"""Heat maps of a PH layer's algebra: each A_i and their sum; for n = 4 also the algebra aligned to
Hamilton's rule (`phnn.nn.align`) next to the rule itself, so that the two can be compared by eye.

A learned algebra is only defined up to an invertible mixing of its A_i (A·M with M⁻¹·F composes the
same weight), so the raw A_i of a layer that learned quaternions rarely look like Hamilton's; after
alignment they do, and the residual says how closely.

Figures are built as `matplotlib.figure.Figure` objects and rendered by their own canvas: importing
this module never changes matplotlib's global backend (notebook users keep their inline plots).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from torch import Tensor

from phnn.io import atomic_open
from phnn.nn import PHLayer, align, hamilton

COLOURS = "RdBu_r"


def save_figure_atomically(figure: Figure, path: Path) -> None:
    """Render to a temporary file in the target folder, then rename: no half-written PNG."""
    with atomic_open(path, "wb") as file:
        figure.savefig(file, format="png", dpi=100, bbox_inches="tight")


def algebra_panels(algebra: Tensor) -> list[list[tuple[str, Tensor]]]:
    """Rows of (title, matrix): the A_i and Σ A_i; for n = 4 a second row, aligned to Hamilton, with
    Hamilton's Σ A_i beside it."""
    n = algebra.shape[0]
    rows = [[(f"A{i + 1}", algebra[i]) for i in range(n)] + [("Σ A_i", algebra.sum(0))]]
    if n == 4:
        aligned, residual = align(algebra, hamilton())
        rows.append([(f"aligned A{i + 1}", aligned[i]) for i in range(n)]
                    + [(f"aligned Σ A_i\n(residual {residual:.2f})", aligned.sum(0)),
                       ("Hamilton Σ A_i", hamilton().sum(0))])
    return rows


def plot_algebra(layer: PHLayer, title: str, path: Path) -> Path:
    """Write the heat maps of `layer`'s algebra to `path` (PNG, atomically) and return `path`."""
    save_figure_atomically(algebra_figure(layer, title), path)
    return path


def algebra_figure(layer: PHLayer, title: str) -> Figure:
    """The heat maps of `layer`'s algebra: rows of `algebra_panels`, labelled axes, one colour bar."""
    algebra = layer.algebra.detach().float().cpu()
    n = layer.n
    rows = algebra_panels(algebra)
    columns = max(len(row) for row in rows)
    figure = Figure(figsize=(2.3 * columns + 1.0, 2.6 * len(rows) + 0.4), layout="constrained")
    grid = figure.subplots(len(rows), columns, squeeze=False)
    limit = max(float(matrix.abs().max()) for row in rows for _, matrix in row) or 1.0
    image = None
    for axes_row, panels in zip(grid, rows):
        for axis, panel in zip(axes_row, panels + [None] * (columns - len(panels))):
            if panel is None:
                axis.set_axis_off()
                continue
            label, matrix = panel
            image = axis.imshow(matrix.numpy(), cmap=COLOURS, vmin=-limit, vmax=limit)
            axis.set_title(label, fontsize=9)
            axis.set_xticks(range(n), [str(i + 1) for i in range(n)], fontsize=7)
            axis.set_yticks(range(n), [str(i + 1) for i in range(n)], fontsize=7)
            axis.set_xlabel("input block", fontsize=8)
            axis.set_ylabel("output block", fontsize=8)
    figure.colorbar(image, ax=grid.ravel().tolist(), shrink=0.8, label="coefficient")
    figure.suptitle(f"{title} ({layer.algebra_name} algebra, n={n})", fontsize=10)
    return figure
