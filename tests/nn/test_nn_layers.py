"""PH layers behave exactly like the torch layer whose weight is the composed Σ A_i ⊗ F_i."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from phnn.nn import (
    PHConv1d,
    PHConv2d,
    PHConv3d,
    PHConvTranspose1d,
    PHConvTranspose2d,
    PHConvTranspose3d,
    PHMLinear,
)
from phnn.nn.composition import compose_reference

CONVS = {1: (PHConv1d, nn.Conv1d), 2: (PHConv2d, nn.Conv2d), 3: (PHConv3d, nn.Conv3d)}
TRANSPOSED = {1: (PHConvTranspose1d, nn.ConvTranspose1d), 2: (PHConvTranspose2d, nn.ConvTranspose2d),
              3: (PHConvTranspose3d, nn.ConvTranspose3d)}
SPATIAL = {1: (11,), 2: (9, 8), 3: (6, 5, 7)}


def per_dim(value: Any, dims: int) -> Any:
    """A tuple setting (given for 3 dims) cut to `dims`; ints and strings pass through."""
    return tuple(value[:dims]) if isinstance(value, tuple) else value


def dense_twin(layer: nn.Module, dense_cls: type[nn.Module], kwargs: dict[str, Any]) -> nn.Module:
    """The torch layer with the Σ kron reference weight and the PH layer's bias."""
    dense = dense_cls(**kwargs, dtype=torch.float64)
    with torch.no_grad():
        dense.weight.copy_(compose_reference(layer.algebra, layer.factors))
        if layer.bias is not None:
            dense.bias.copy_(layer.bias)
    return dense


CONV_SETTINGS = [
    {"kernel_size": 3},
    {"kernel_size": (3, 2, 1), "stride": (2, 1, 3), "padding": (1, 0, 2)},
    {"kernel_size": 3, "padding": "same", "dilation": 2},
    {"kernel_size": (2, 3, 1), "padding": "same"},
    {"kernel_size": 2, "padding": "valid", "stride": 2, "bias": False},
    {"kernel_size": 3, "groups": 2, "dilation": (1, 2, 1)},
    {"kernel_size": 3, "padding": 1, "padding_mode": "reflect"},
    {"kernel_size": 3, "padding": (2, 1, 1), "padding_mode": "circular", "groups": 2},
    {"kernel_size": 3, "padding": 1, "padding_mode": "replicate", "stride": 2},
    {"kernel_size": 3, "padding": "same", "padding_mode": "reflect"},
]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("settings", CONV_SETTINGS, ids=str)
@pytest.mark.parametrize("algebra", ["learned", "quaternion"])
def test_conv_equals_dense_conv(dims: int, settings: dict[str, Any], algebra: str) -> None:
    torch.manual_seed(dims)
    kwargs = {"in_channels": 8, "out_channels": 16, **{k: per_dim(v, dims) for k, v in settings.items()}}
    ph_cls, dense_cls = CONVS[dims]
    layer = ph_cls(**kwargs, n=4, algebra=algebra, dtype=torch.float64)
    dense = dense_twin(layer, dense_cls, kwargs)
    x = torch.randn(2, 8, *SPATIAL[dims], dtype=torch.float64)
    torch.testing.assert_close(layer(x), dense(x), rtol=1e-10, atol=1e-10)


def test_conv_matches_the_functional_op_on_the_composed_weight() -> None:
    layer = PHConv2d(8, 12, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, n=2,
                     dtype=torch.float64)
    x = torch.randn(3, 8, 10, 9, dtype=torch.float64)
    expected = F.conv2d(x, layer.weight, layer.bias, (2, 1), (1, 0), (1, 2), 2)
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=0)


TRANSPOSED_SETTINGS = [
    {"kernel_size": 3},
    {"kernel_size": (3, 2, 4), "stride": 2, "padding": 1, "output_padding": 1},
    {"kernel_size": 3, "stride": (2, 3, 1), "dilation": 2, "output_padding": (1, 2, 0), "bias": False},
    {"kernel_size": 2, "groups": 2, "stride": 2, "padding": (0, 1, 1)},
]


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("settings", TRANSPOSED_SETTINGS, ids=str)
def test_transposed_conv_equals_dense_transposed_conv(dims: int, settings: dict[str, Any]) -> None:
    torch.manual_seed(dims)
    kwargs = {"in_channels": 8, "out_channels": 12, **{k: per_dim(v, dims) for k, v in settings.items()}}
    ph_cls, dense_cls = TRANSPOSED[dims]
    layer = ph_cls(**kwargs, n=2, dtype=torch.float64)
    dense = dense_twin(layer, dense_cls, kwargs)
    x = torch.randn(2, 8, *SPATIAL[dims], dtype=torch.float64)
    torch.testing.assert_close(layer(x), dense(x), rtol=1e-10, atol=1e-10)


def test_transposed_conv_output_size() -> None:
    layer = PHConvTranspose2d(4, 8, 3, stride=2, padding=1, dtype=torch.float64)
    dense = dense_twin(layer, nn.ConvTranspose2d, {"in_channels": 4, "out_channels": 8, "kernel_size": 3,
                                                   "stride": 2, "padding": 1})
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    for size in ([9, 11], [10, 12], [1, 8, 10, 11]):
        out = layer(x, output_size=size)
        assert out.shape[-2:] == tuple(size[-2:])
        torch.testing.assert_close(out, dense(x, output_size=size))
    with pytest.raises(ValueError):
        layer(x, output_size=[20, 20])


@pytest.mark.parametrize("bias", [True, False])
def test_linear_equals_dense_linear_with_any_leading_dims(bias: bool) -> None:
    layer = PHMLinear(8, 12, bias=bias, n=4, dtype=torch.float64)
    dense = dense_twin(layer, nn.Linear, {"in_features": 8, "out_features": 12, "bias": bias})
    for shape in [(8,), (5, 8), (2, 3, 4, 8)]:
        x = torch.randn(*shape, dtype=torch.float64)
        out = layer(x)
        assert out.shape == (*shape[:-1], 12)
        torch.testing.assert_close(out, dense(x), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias))


@pytest.mark.parametrize("cls", [PHConv2d, PHConvTranspose2d])
def test_groups_equal_a_block_diagonal_dense_layer(cls: type) -> None:
    """groups=G splits the channels into G contiguous slices, each with its own Σ A_i ⊗ F_i^g."""
    torch.manual_seed(0)
    groups, n = 3, 2
    layer = cls(6, 12, 3, padding=1, groups=groups, n=n, bias=False, dtype=torch.float64)
    in_per, out_per = 6 // groups, 12 // groups
    dense_weight = torch.zeros(12, 6, 3, 3, dtype=torch.float64)
    for g in range(groups):
        block = sum(torch.kron(layer.algebra[i].reshape(n, n, 1, 1), layer.factors[i, g]) for i in range(n))
        if cls is PHConvTranspose2d:
            block = block.transpose(0, 1)
        dense_weight[g * out_per:(g + 1) * out_per, g * in_per:(g + 1) * in_per] = block
    x = torch.randn(2, 6, 5, 5, dtype=torch.float64)
    if cls is PHConvTranspose2d:
        expected = F.conv_transpose2d(x, dense_weight.transpose(0, 1), padding=1)
    else:
        expected = F.conv2d(x, dense_weight, padding=1)
    torch.testing.assert_close(layer(x), expected)


def hamilton_product(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """q ⊗ p for quaternions in the last dim (r, i, j, k), written out by hand."""
    a, b, c, d = q.unbind(-1)
    e, f, g, h = p.unbind(-1)
    return torch.stack([
        a * e - b * f - c * g - d * h,
        a * f + b * e + c * h - d * g,
        a * g - b * h + c * e + d * f,
        a * h + b * g - c * f + d * e,
    ], dim=-1)


def test_quaternion_linear_is_a_quaternion_matrix_product() -> None:
    """y_p = Σ_q W_pq ⊗ x_q with W_pq = (F_0, F_1, F_2, F_3)[p, q]; channels are component-major."""
    torch.manual_seed(0)
    layer = PHMLinear(4 * 2, 4 * 3, bias=False, n=4, algebra="quaternion", dtype=torch.float64)
    quaternion_weight = layer.factors[:, 0].permute(1, 2, 0)  # (P=3, Q=2, 4)
    x = torch.randn(5, 4 * 2, dtype=torch.float64)
    x_quaternions = x.reshape(5, 4, 2).transpose(1, 2)  # (B, Q, 4)
    expected = hamilton_product(quaternion_weight[None], x_quaternions[:, None]).sum(2)  # (B, P, 4)
    torch.testing.assert_close(layer(x), expected.transpose(1, 2).reshape(5, 12))


def test_quaternion_conv_with_a_1x1_kernel_multiplies_every_pixel() -> None:
    layer = PHConv2d(4, 4, 1, bias=False, n=4, algebra="quaternion", dtype=torch.float64)
    w = layer.factors.reshape(4)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    expected = hamilton_product(w, x.movedim(1, -1)).movedim(-1, 1)
    torch.testing.assert_close(layer(x), expected)


def test_complex_linear_is_complex_multiplication() -> None:
    layer = PHMLinear(2, 2, bias=False, n=2, algebra="complex", dtype=torch.float64)
    w = torch.complex(layer.factors[0].flatten(), layer.factors[1].flatten())
    x = torch.randn(7, 2, dtype=torch.float64)
    expected = w * torch.complex(x[:, 0], x[:, 1])
    torch.testing.assert_close(layer(x), torch.stack([expected.real, expected.imag], dim=-1))


GRADCHECK_LAYERS = [
    (PHMLinear, (4, 8), (3, 4)),
    (PHConv1d, (4, 4, 3), (2, 4, 5)),
    (PHConv2d, (4, 8, (2, 3)), (1, 4, 4, 4)),
    (PHConvTranspose2d, (4, 4, 2), (1, 4, 3, 3)),
]


@pytest.mark.parametrize(("cls", "args", "shape"), GRADCHECK_LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_gradcheck_for_algebra_factors_bias_and_input(cls: type, args: tuple, shape: tuple) -> None:
    layer = cls(*args, n=2, dtype=torch.float64)
    names = ["algebra", "factors", "bias"]
    params = [getattr(layer, name).detach().clone().requires_grad_() for name in names]
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    def run(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return functional_call(layer, dict(zip(names, values)), (x,))

    assert torch.autograd.gradcheck(run, (x, *params))


@pytest.mark.parametrize("cls", [PHMLinear, PHConv2d, PHConvTranspose2d])
def test_every_parameter_gets_a_gradient(cls: type) -> None:
    layer = cls(8, 8, n=4) if cls is PHMLinear else cls(8, 8, 3, n=4)
    x = torch.randn(2, 8) if cls is PHMLinear else torch.randn(2, 8, 5, 5)
    layer(x).square().sum().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("cls", "args", "kwargs", "expected"), [
    (PHMLinear, (16, 32), {}, 4**3 + 16 * 32 // 4 + 32),
    (PHMLinear, (16, 32), {"bias": False, "algebra": "quaternion"}, 16 * 32 // 4),
    (PHMLinear, (6, 9), {"n": 3}, 3**3 + 6 * 9 // 3 + 9),
    (PHConv2d, (64, 128, 3), {}, 4**3 + 64 * 128 * 9 // 4 + 128),
    (PHConv2d, (64, 128, (3, 1)), {"n": 8, "bias": False}, 8**3 + 64 * 128 * 3 // 8),
    (PHConv2d, (64, 128, 3), {"n": 16}, 16**3 + 64 * 128 * 9 // 16 + 128),
    (PHConv2d, (16, 32, 3), {"groups": 2, "n": 2}, 2**3 + 32 * (16 // 2) * 9 // 2 + 32),
    (PHConv1d, (4, 8, 5), {"algebra": "quaternion"}, 4 * 8 * 5 // 4 + 8),
    (PHConv3d, (6, 6, (3, 2, 1)), {"n": 2, "algebra": "complex"}, 6 * 6 * 6 // 2 + 6),
    (PHConvTranspose2d, (8, 16, 3), {}, 4**3 + 8 * 16 * 9 // 4 + 16),
])
def test_exact_parameter_counts(cls: type, args: tuple, kwargs: dict, expected: int) -> None:
    layer = cls(*args, **kwargs)
    assert sum(p.numel() for p in layer.parameters()) == expected
    dense = layer.to_dense()
    assert layer.dense_parameter_count() == sum(p.numel() for p in dense.parameters())


def output_variance(layer: nn.Module, x: torch.Tensor, seeds: range) -> float:
    """Mean output/input variance ratio over several inits (one init is a noisy sample)."""
    ratios = []
    for seed in seeds:
        torch.manual_seed(seed)
        layer.reset_parameters()
        with torch.no_grad():
            ratios.append((layer(x).var() / x.var()).item())
    return sum(ratios) / len(ratios)


@pytest.mark.parametrize("algebra", ["learned", "quaternion"])
@pytest.mark.parametrize(("ph", "dense", "shape"), [
    (lambda **k: PHMLinear(64, 64, bias=False, **k), lambda: nn.Linear(64, 64, bias=False), (512, 64)),
    (lambda **k: PHConv2d(32, 32, 3, bias=False, **k), lambda: nn.Conv2d(32, 32, 3, bias=False), (16, 32, 8, 8)),
    (lambda **k: PHConvTranspose2d(32, 32, 3, bias=False, **k), lambda: nn.ConvTranspose2d(32, 32, 3, bias=False),
     (16, 32, 8, 8)),
], ids=["linear", "conv2d", "conv_transpose2d"])
def test_init_variance_matches_the_dense_torch_layer(ph, dense, shape, algebra: str) -> None:
    """The original layers were 10-35x too small; we accept 0.67-1.5x (measured spread is ~±10%)."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    ratio = output_variance(ph(n=4, algebra=algebra), x, range(4)) / output_variance(dense(), x, range(4))
    assert 0.67 < ratio < 1.5


def test_init_variance_complex_and_n8() -> None:
    x = torch.randn(512, 64, generator=torch.Generator().manual_seed(0))
    reference = output_variance(nn.Linear(64, 64, bias=False), x, range(4))
    for kwargs in ({"n": 2, "algebra": "complex"}, {"n": 8}, {"n": 16}):
        ratio = output_variance(PHMLinear(64, 64, bias=False, **kwargs), x, range(4)) / reference
        assert 0.67 < ratio < 1.5, kwargs


def test_bias_init_matches_torch_bound() -> None:
    layer = PHConv2d(16, 4096, 3)
    bound = 1 / math.sqrt(16 * 9)
    assert layer.bias.abs().max() <= bound
    assert layer.bias.abs().max() > 0.95 * bound


def test_seed_reproducibility() -> None:
    torch.manual_seed(3)
    first = PHConv2d(8, 8, 3).state_dict()
    torch.manual_seed(3)
    second = PHConv2d(8, 8, 3).state_dict()
    third = PHConv2d(8, 8, 3).state_dict()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    assert not torch.equal(first["factors"], third["factors"])


def test_fixed_algebra_is_a_buffer_that_survives_reset_and_gets_no_gradient() -> None:
    layer = PHConv2d(8, 8, 3, algebra="quaternion")
    hamilton_before = layer.algebra.clone()
    assert "algebra" not in dict(layer.named_parameters())
    assert "algebra" in dict(layer.named_buffers())
    layer.reset_parameters()
    assert torch.equal(layer.algebra, hamilton_before)
    layer(torch.randn(1, 8, 4, 4)).sum().backward()
    assert layer.algebra.grad is None
    assert not layer.algebra.requires_grad
    custom = torch.randn(2, 2, 2)
    fixed = PHMLinear(4, 4, n=2, algebra=custom)
    fixed.reset_parameters()
    assert torch.equal(fixed.algebra, custom)
    assert fixed.algebra_name == "fixed"
