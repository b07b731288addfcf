"""The original tutorial's experiment: a PHM layer learns the Hamilton product from examples."""

from __future__ import annotations

import torch

from phnn.nn import PHMLinear, hamilton
from phnn.nn.algebra import align


def hamilton_product(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    a, b, c, d = q.unbind(-1)
    e, f, g, h = p.unbind(-1)
    return torch.stack([a * e - b * f - c * g - d * h, a * f + b * e + c * h - d * g,
                        a * g - b * h + c * e + d * f, a * h + b * g - c * f + d * e], dim=-1)


def train_on_quaternion_products(steps: int, seed: int = 0) -> tuple[PHMLinear, float]:
    """Learn x ↦ (w_1 ⊗ x, …, w_8 ⊗ x) for 8 fixed random quaternions w_p: a linear problem whose
    only exact solutions compose Hamilton's rule (up to a mixing of the A_i)."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    weights = torch.randn(8, 4, generator=generator)
    layer = PHMLinear(4, 4 * 8, bias=False, n=4)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        x = torch.randn(64, 4, generator=generator)
        target = hamilton_product(weights, x[:, None]).transpose(1, 2).reshape(64, 32)  # component-major
        loss = (layer(x) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return layer, loss.item()


def test_phm_layer_learns_the_hamilton_sign_pattern() -> None:
    layer, loss = train_on_quaternion_products(steps=250)
    assert loss < 1e-3
    aligned, residual = align(layer.algebra, hamilton())
    assert residual < 0.05, "the learned A_i must span Hamilton's matrices"
    assert torch.equal(torch.sign(aligned.sum(0)).round(), torch.sign(hamilton().sum(0)))


def test_an_untrained_layer_does_not_pass_the_check() -> None:
    layer, _ = train_on_quaternion_products(steps=0)
    _, residual = align(layer.algebra, hamilton())
    assert residual > 0.3
