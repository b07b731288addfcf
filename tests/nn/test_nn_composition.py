"""The composed weight W = Σ A_i ⊗ F_i equals the torch.kron reference; decompose inverts it."""

from __future__ import annotations

import pytest
import torch

from phnn.nn import PHConv1d, PHConv2d, PHConv3d, PHConvTranspose2d, PHMLinear, compose, decompose, hamilton
from phnn.nn.composition import compose_reference


def kron_sum(algebra: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Σ_i kron(A_i, F_i) per group, stacked along the output dim: written independently of phnn."""
    n, groups = factors.shape[:2]
    kernel_dims = factors.dim() - 4
    blocks = []
    for g in range(groups):
        blocks.append(sum(torch.kron(algebra[i].reshape(n, n, *[1] * kernel_dims), factors[i, g]) for i in range(n)))
    return torch.cat(blocks)


LAYERS = [
    (PHMLinear, (8, 12), {}),
    (PHMLinear, (6, 9), {"n": 3}),
    (PHConv1d, (8, 4, 3), {}),
    (PHConv2d, (8, 12, 3), {}),
    (PHConv2d, (8, 12, (3, 1)), {}),
    (PHConv2d, (8, 16, (1, 5)), {"groups": 2, "n": 2}),
    (PHConv3d, (4, 8, (3, 2, 1)), {}),
    (PHConv3d, (6, 6, 2), {"groups": 3, "n": 2}),
    (PHConvTranspose2d, (8, 12, (2, 3)), {"groups": 2, "n": 2}),
]


@pytest.mark.parametrize(("cls", "args", "kwargs"), LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_composed_weight_equals_kron_reference(cls, args, kwargs) -> None:
    layer = cls(*args, **kwargs, dtype=torch.float64)
    expected = kron_sum(layer.algebra, layer.factors)
    assert layer.weight.shape == expected.shape
    torch.testing.assert_close(layer.weight, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(compose_reference(layer.algebra, layer.factors), expected, rtol=0, atol=1e-12)


def test_weight_shape_is_the_torch_layout() -> None:
    conv = PHConv2d(8, 12, (3, 1), groups=2, n=2)
    tconv = PHConvTranspose2d(8, 12, (3, 1), groups=2, n=2)
    assert conv.weight.shape == torch.nn.Conv2d(8, 12, (3, 1), groups=2).weight.shape
    assert tconv.weight.shape == torch.nn.ConvTranspose2d(8, 12, (3, 1), groups=2).weight.shape


@pytest.mark.parametrize("groups", [1, 2])
def test_decompose_recovers_an_exact_kronecker_sum(groups: int) -> None:
    torch.manual_seed(0)
    algebra = torch.randn(4, 4, 4, dtype=torch.float64)
    factors = torch.randn(4, groups, 3, 2, 3, 3, dtype=torch.float64)
    weight = compose(algebra, factors)
    new_algebra, new_factors = decompose(weight, 4, groups)
    torch.testing.assert_close(compose(new_algebra, new_factors), weight)
    fixed_algebra, fixed_factors = decompose(compose(hamilton().double(), factors), 4, groups, hamilton())
    torch.testing.assert_close(fixed_factors, factors)
    assert torch.equal(fixed_algebra, hamilton().double())


def test_decompose_is_the_best_rank_n_approximation_of_a_dense_weight() -> None:
    torch.manual_seed(0)
    weight = torch.randn(8, 8, dtype=torch.float64)
    algebra, factors = decompose(weight, 2)
    error = (compose(algebra, factors) - weight).norm()
    rearranged = weight.reshape(2, 4, 2, 4).permute(0, 2, 1, 3).reshape(4, 16)
    singular = torch.linalg.svdvals(rearranged)
    torch.testing.assert_close(error, singular[2:].norm())


def test_decompose_gives_the_algebra_the_scale_of_a_fresh_layer() -> None:
    """The split of each term between A_i and F_i is free; decompose puts A_i at the scale a fresh layer's
    learned algebra has (mean square 1/n, so Σ_i A_i[a, b]² averages 1), and lets F_i carry the weight's size.
    Adam moves every entry by about the learning rate, so a trained weight split with tiny factors would
    change much faster, relative to its size, than a freshly initialised one."""
    torch.manual_seed(0)
    fresh = PHConv2d(64, 64, 3, n=4)
    weight = 7.0 * torch.randn(64, 64, 3, 3)
    algebra, factors = decompose(weight, 4)
    torch.testing.assert_close(algebra.pow(2).mean(dim=(1, 2)), torch.full((4,), 1 / 4))
    torch.testing.assert_close(algebra.pow(2).sum(0).mean(), fresh.algebra.detach().pow(2).sum(0).mean(),
                               atol=0.15, rtol=0.0)
    singular = torch.linalg.svdvals(weight.reshape(4, 16, 4, 16, 9).permute(0, 2, 1, 3, 4).reshape(16, -1))
    torch.testing.assert_close(factors.flatten(1).norm(dim=1), singular[:4] / 2)
