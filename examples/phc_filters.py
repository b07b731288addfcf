"""A PHC layer learns the Hamilton rule that organises the filters of a quaternion convolution.

A teacher quaternion convolution (PHConv2d with the fixed Hamilton algebra and random filters) maps
random 4-channel images to 16 channels; a student PHConv2d with a learned algebra is trained to
reproduce its outputs. To do so it must arrange its 4 filter banks F_i the way Hamilton's rule
does, so its learned A becomes Hamilton's, up to a mixing of the A_i. We print the learned,
aligned and Hamilton Σ A_i, the filter error, and save OUT/phc_filters.png.

    python examples/phc_filters.py --out examples_output
"""

from __future__ import annotations

import sys

import torch
from common import parse_args, plot_algebra, report_hamilton_match, save_json

from phnn.nn import PHConv2d, hamilton

CHANNELS = (4, 16)
BATCH, SIZE = 16, 8


def train(steps: int, seed: int) -> tuple[PHConv2d, PHConv2d, float]:
    """Fit the student to the teacher's outputs on random images; returns both and the last loss."""
    torch.manual_seed(seed)
    teacher = PHConv2d(*CHANNELS, 3, padding=1, bias=False, n=4, algebra="quaternion").requires_grad_(False)
    student = PHConv2d(*CHANNELS, 3, padding=1, bias=False, n=4)
    optimizer = torch.optim.Adam(student.parameters(), lr=0.03)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        images = torch.randn(BATCH, CHANNELS[0], SIZE, SIZE)
        loss = (student(images) - teacher(images)).square().mean() / teacher.weight.square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return teacher, student, loss.item()


def main(argv: list[str] | None = None) -> int:
    """Train a PHC layer to imitate a quaternion convolution; compare its algebra with Hamilton's and plot both."""
    args = parse_args(__doc__.splitlines()[0], 400, argv)
    teacher, student, loss = train(args.steps, args.seed)
    with torch.no_grad():
        filter_error = float((student.weight - teacher.weight).norm() / teacher.weight.norm())
    learned = student.algebra.detach()
    aligned, residual, recovered = report_hamilton_match(
        learned, f"trained {args.steps} steps: relative loss {loss:.3g}; filter error {filter_error:.3g}")
    png = plot_algebra(learned, aligned, hamilton(), args.out / "phc_filters.png",
                       f"PHC layer trained to imitate a quaternion convolution ({args.steps} steps)")
    save_json({"steps": args.steps, "loss": loss, "filter_error": filter_error, "residual": residual,
               "recovered": recovered, "aligned_sum": aligned.sum(0).tolist()}, args.out / "phc_filters.json")
    print(f"\nwrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
