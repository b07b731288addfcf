"""Helpers shared by the examples: the hand-written Hamilton product, algebra heatmaps, atomic files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from phnn.io import atomic_open, write_text_atomic  # noqa: E402
from phnn.nn import hamilton  # noqa: E402
from phnn.nn.algebra import align  # noqa: E402


def hamilton_product(q: Tensor, p: Tensor) -> Tensor:
    """q ⊗ p for quaternions (r, i, j, k) in the last dim."""
    a, b, c, d = q.unbind(-1)
    e, f, g, h = p.unbind(-1)
    return torch.stack([a * e - b * f - c * g - d * h, a * f + b * e + c * h - d * g,
                        a * g - b * h + c * e + d * f, a * h + b * g - c * f + d * e], dim=-1)


def parse_args(description: str, steps: int, argv: list[str] | None) -> argparse.Namespace:
    """The options every example has (--out, --steps, --seed, --threads); applies --threads.

    One thread by default: these models are tiny, and extra threads only add synchronisation
    (on a busy 2-core machine, 60x slower steps were measured with 2 threads).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path("examples_output"), help="folder for PNG/JSON results")
    parser.add_argument("--steps", type=int, default=steps, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def save_json(data: dict[str, Any], path: Path) -> Path:
    """Write `data` as indented JSON to `path` atomically; returns `path`."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    return path


def save_figure(figure: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    with atomic_open(path, "wb") as file:
        figure.savefig(file, format="png", dpi=100)
    plt.close(figure)
    return path


def format_matrix(matrix: Tensor) -> list[str]:
    """The rows of a matrix as text, two signed decimals per value."""
    return ["  ".join(f"{value:+.2f}" for value in row) for row in matrix.tolist()]


def side_by_side(titles: list[str], matrices: list[Tensor]) -> str:
    """Matrices printed next to each other under their titles."""
    columns = [[title, *format_matrix(matrix)] for title, matrix in zip(titles, matrices)]
    width = max(len(line) for column in columns for line in column)
    return "\n".join("   ".join(line.ljust(width) for line in row) for row in zip(*columns))


def report_hamilton_match(learned: Tensor, trained: str) -> tuple[Tensor, float, bool]:
    """Align a learned algebra to Hamilton's and print the verdict and the three Σ A_i side by side.

    Recovered: the signs of the aligned Σ A_i are Hamilton's and the alignment residual is below 0.05.
    Prints `trained`, the residual and the verdict on one line, then the learned, aligned and
    Hamilton Σ A_i; returns (aligned, residual, recovered).
    """
    reference = hamilton()
    aligned, residual = align(learned, reference)
    recovered = bool(torch.equal(aligned.sum(0).sign(), reference.sum(0).sign())) and residual < 0.05
    print(f"{trained}; alignment residual {residual:.3g} "
          f"({'Hamilton rule recovered' if recovered else 'not recovered yet: train longer'})\n")
    print(side_by_side(["learned Σ A_i", "aligned Σ A_i", "Hamilton Σ A_i"],
                       [learned.sum(0), aligned.sum(0), reference.sum(0)]))
    return aligned, residual, recovered


def plot_algebra(learned: Tensor, aligned: Tensor, reference: Tensor, path: Path, title: str) -> Path:
    """Heatmaps, one row each for the learned, aligned and reference algebras: A_1 … A_n and Σ_i A_i."""
    n = learned.shape[0]
    rows = [("learned", learned), ("aligned", aligned), ("Hamilton", reference)]
    figure, axes = plt.subplots(len(rows), n + 1, figsize=(1.6 * (n + 1) + 1, 1.7 * len(rows)),
                                constrained_layout=True)
    limit = max(float(matrices.sum(0).abs().max()) for _, matrices in rows)
    for row, (name, matrices) in zip(axes, rows):
        panels = [(f"{name} $A_{{{i + 1}}}$", matrices[i]) for i in range(n)]
        panels.append((rf"{name} $\Sigma_i A_i$", matrices.sum(0)))
        for axis, (label, matrix) in zip(row, panels):
            image = axis.imshow(matrix.detach().float().numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            axis.set_title(label, fontsize=8)
            axis.set_xticks([])
            axis.set_yticks([])
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)
