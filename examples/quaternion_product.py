"""A PHM layer learns the Hamilton product of quaternions from examples (the original PHM tutorial).

The layer PHMLinear(4, 4·8, n=4) sees quaternions x and must output w_1 ⊗ x, …, w_8 ⊗ x for 8
fixed quaternions w_p it is never told. The only weights that do this compose Hamilton's rule, so
the learned algebra A must become Hamilton's, up to an invertible mixing of the A_i (A·M with M⁻¹·F
gives the same layer). We print the learned Σ A_i, the same after the best mixing ("aligned"), and
Hamilton's Σ A_i, and save the heatmap to OUT/quaternion_product.png.

    python examples/quaternion_product.py --out examples_output
"""

from __future__ import annotations

import sys

import torch
from common import hamilton_product, parse_args, plot_algebra, report_hamilton_match, save_json

from phnn.nn import PHMLinear, hamilton

QUATERNIONS = 8
BATCH = 64


def train(steps: int, seed: int) -> tuple[PHMLinear, float]:
    """Fit the layer to batches of (x, [w_p ⊗ x]_p) with Adam; returns the layer and its last loss."""
    torch.manual_seed(seed)
    weights = torch.randn(QUATERNIONS, 4)
    layer = PHMLinear(4, 4 * QUATERNIONS, bias=False, n=4)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        x = torch.randn(BATCH, 4)
        # component-major outputs: all real parts, then all i parts, …
        target = hamilton_product(weights, x[:, None]).transpose(1, 2).reshape(BATCH, -1)
        loss = (layer(x) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return layer, loss.item()


def main(argv: list[str] | None = None) -> int:
    """Train a PHM layer on quaternion products, compare its learned algebra with Hamilton's, save plot and JSON."""
    args = parse_args(__doc__.splitlines()[0], 300, argv)
    layer, loss = train(args.steps, args.seed)
    learned = layer.algebra.detach()
    aligned, residual, recovered = report_hamilton_match(learned, f"trained {args.steps} steps: loss {loss:.3g}")
    png = plot_algebra(learned, aligned, hamilton(), args.out / "quaternion_product.png",
                       f"PHM layer trained on quaternion products ({args.steps} steps)")
    save_json({"steps": args.steps, "loss": loss, "residual": residual, "recovered": recovered,
               "learned_sum": learned.sum(0).tolist(), "aligned_sum": aligned.sum(0).tolist()},
              args.out / "quaternion_product.json")
    print(f"\nwrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
