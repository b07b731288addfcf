"""Algebra heat maps people can read: labelled axes and colour bar, the learned algebra aligned to
Hamilton's before it is shown beside it, and no change to matplotlib's global backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from phnn.nn import PHMLinear, hamilton
from phnn.tools.algebra_plot import algebra_figure, algebra_panels

REPO = Path(__file__).resolve().parents[2]


def test_a_mixed_hamilton_algebra_is_shown_aligned_beside_the_rule() -> None:
    torch.manual_seed(0)
    mixing = torch.randn(4, 4) + 4 * torch.eye(4)  # invertible: the same layer, other A_i
    learned = torch.einsum("ij,iab->jab", mixing, hamilton())
    learned_row, aligned_row = algebra_panels(learned)
    assert not torch.allclose(learned_row[-1][1], hamilton().sum(0), atol=0.1)  # raw: not comparable by eye
    titles = [title for title, _ in aligned_row]
    assert titles[-1] == "Hamilton Σ A_i" and titles[-2].startswith("aligned Σ A_i\n(residual 0.00)")
    torch.testing.assert_close(aligned_row[-2][1], hamilton().sum(0), atol=1e-4, rtol=0)
    assert len(algebra_panels(torch.randn(3, 3, 3))) == 1  # no Hamilton row for n = 3


def test_heat_maps_have_labelled_axes_ticks_and_a_colour_bar() -> None:
    figure = algebra_figure(PHMLinear(4, 8, n=4), "layer")
    maps = [axis for axis in figure.axes if axis.images]
    assert len(maps) == 5 + 6
    for axis in maps:
        assert (axis.get_xlabel(), axis.get_ylabel()) == ("input block", "output block")
        assert [t.get_text() for t in axis.get_xticklabels()] == ["1", "2", "3", "4"]
    (colour_bar,) = [axis for axis in figure.axes if not axis.images and axis.get_ylabel()]
    assert colour_bar.get_ylabel() == "coefficient"


def test_importing_and_plotting_keeps_the_matplotlib_backend(tmp_path: Path) -> None:
    script = ("import matplotlib, phnn, phnn.cli, phnn.callbacks, phnn.tools.algebra_plot as p\n"
              "from pathlib import Path\nfrom phnn.nn import PHMLinear\n"
              f"p.plot_algebra(PHMLinear(4, 4, n=4), 'x', Path({str(tmp_path / 'a.png')!r}))\n"
              "print(matplotlib.get_backend())\n")
    env = {**os.environ, "MPLBACKEND": "svg", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "svg" and (tmp_path / "a.png").stat().st_size > 0
