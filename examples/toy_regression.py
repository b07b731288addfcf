"""PHM layers with n = 2, 3, 4 against a dense layer on toy regression problems.

Each model is built from nn.Linear (dense) or from PHMLinear with n = 2, 3, 4 (about 1/n of the
weights), 12 features in and out. Three targets:
  quaternion   y = W ⊗ x, a quaternion-linear map (3 quaternions in, 3 out), fitted by one layer:
               n = 4 has exactly the right structure and fits it with about a quarter of the weights
  dense        y = W x with an unstructured random W, fitted by one layer: the dense layer's home
               ground; PH layers can only approximate it
  nonlinear    y = sin(W x) + 0.1·(W x)², fitted by an MLP 12 -> 24 -> 12 with a ReLU
We print each model's parameter count and final train/test losses and save OUT/toy_regression.json
and OUT/toy_regression.png (test-loss curves).

    python examples/toy_regression.py --out examples_output
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import matplotlib.pyplot as plt
import torch
from common import hamilton_product, parse_args, save_figure, save_json
from torch import Tensor, nn

from phnn.nn import PHMLinear

FEATURES, HIDDEN, SAMPLES = 12, 24, 512
MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "dense": nn.Linear,
    "PHM n=2": lambda i, o: PHMLinear(i, o, n=2),
    "PHM n=3": lambda i, o: PHMLinear(i, o, n=3),
    "PHM n=4": lambda i, o: PHMLinear(i, o, n=4),
}


def quaternion_target(generator: torch.Generator) -> Callable[[Tensor], Tensor]:
    """A random 3 x 3 quaternion-matrix product on 12 features (exactly what a PHM layer with n = 4 can represent)."""
    weights = torch.randn(3, 3, 4, generator=generator) / 2  # 3 x 3 quaternion matrix

    def target(x: Tensor) -> Tensor:
        quaternions = x.reshape(-1, 4, 3).transpose(1, 2)  # component-major -> (B, 3, 4)
        y = hamilton_product(weights[None], quaternions[:, None]).sum(2)
        return y.transpose(1, 2).reshape(-1, FEATURES)

    return target


def dense_target(generator: torch.Generator) -> Callable[[Tensor], Tensor]:
    """A random dense linear map on the features (no quaternion structure)."""
    weight = torch.randn(FEATURES, FEATURES, generator=generator) / FEATURES**0.5
    return lambda x: x @ weight.t()


def nonlinear_target(generator: torch.Generator) -> Callable[[Tensor], Tensor]:
    """A nonlinear function of a random linear map (sin plus a square), for the MLPs."""
    linear = dense_target(generator)
    return lambda x: torch.sin(linear(x)) + 0.1 * linear(x).square()


# problem -> (target factory, hidden width of the MLP or None for a single layer)
PROBLEMS = {"quaternion": (quaternion_target, None), "dense": (dense_target, None),
            "nonlinear": (nonlinear_target, HIDDEN)}


def build(layer: Callable[[int, int], nn.Module], hidden: int | None) -> nn.Module:
    """A single layer from `layer`, or a two-layer MLP with ReLU when `hidden` is given."""
    if hidden is None:
        return layer(FEATURES, FEATURES)
    return nn.Sequential(layer(FEATURES, hidden), nn.ReLU(), layer(hidden, FEATURES))


def fit(model: nn.Module, data: tuple[Tensor, ...], steps: int) -> tuple[float, float, list[float]]:
    """Full-batch Adam; returns the final train and test MSE and the test curve."""
    x_train, y_train, x_test, y_test = data
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    curve = []
    for _ in range(steps):
        loss = (model(x_train) - y_train).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            curve.append((model(x_test) - y_test).square().mean().item())
    with torch.no_grad():
        train = (model(x_train) - y_train).square().mean().item()
    return train, curve[-1] if curve else float("nan"), curve


def main(argv: list[str] | None = None) -> int:
    """Fit dense and PH models on each toy problem, print train/test MSE and save the results and curves."""
    args = parse_args(__doc__.splitlines()[0], 500, argv)
    results: dict[str, dict[str, dict[str, float]]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    header = f"{'problem':<11} {'model':<8} {'params':>7} {'train MSE':>10} {'test MSE':>10}"
    print(header + "\n" + "-" * len(header))
    for problem, (make_target, hidden) in PROBLEMS.items():
        generator = torch.Generator().manual_seed(args.seed)
        target = make_target(generator)
        x_train, x_test = torch.randn(SAMPLES, FEATURES, generator=generator), torch.randn(SAMPLES, FEATURES,
                                                                                          generator=generator)
        data = (x_train, target(x_train), x_test, target(x_test))
        results[problem], curves[problem] = {}, {}
        for name, layer in MODELS.items():
            torch.manual_seed(args.seed)
            model = build(layer, hidden)
            params = sum(p.numel() for p in model.parameters())
            train, test, curves[problem][name] = fit(model, data, args.steps)
            results[problem][name] = {"params": params, "train_mse": train, "test_mse": test}
            print(f"{problem:<11} {name:<8} {params:>7} {train:>10.4g} {test:>10.4g}")
    save_json({"steps": args.steps, "results": results}, args.out / "toy_regression.json")
    figure, axes = plt.subplots(1, len(PROBLEMS), figsize=(4 * len(PROBLEMS), 3), constrained_layout=True)
    for axis, (problem, by_model) in zip(axes, curves.items()):
        for name, curve in by_model.items():
            axis.semilogy(curve, label=name)
        axis.set_title(f"{problem} target")
        axis.set_xlabel("step")
        axis.set_ylabel("test MSE")
    axes[0].legend()
    png = save_figure(figure, args.out / "toy_regression.png")
    print(f"\nwrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
