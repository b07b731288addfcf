"""What users of PH layers rely on beyond the maths: cache, copies, state, dtypes, compile, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from phnn.nn import PHConv1d, PHConv2d, PHConv3d, PHConvTranspose2d, PHMLinear, compose, hamilton


def small_conv(**kwargs) -> PHConv2d:
    return PHConv2d(8, 8, 3, padding=1, n=4, **kwargs)


X = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(0))


# --- eval cache ---------------------------------------------------------------------------------

def test_cache_reused_under_no_grad() -> None:
    layer = small_conv().eval()
    with torch.no_grad():
        first = layer.weight
        layer(X)
        assert layer.weight is first
    layer.train()
    with torch.no_grad():
        assert layer.weight is not first
        assert layer.weight is layer.weight


def test_cache_never_used_when_gradients_are_needed() -> None:
    layer = small_conv().eval()
    assert layer.weight is not layer.weight
    assert layer.weight.requires_grad


def test_eval_with_grad_enabled_gives_the_training_gradients() -> None:
    layer = small_conv()
    layer(X).square().sum().backward()
    expected = {name: p.grad.clone() for name, p in layer.named_parameters()}
    layer.zero_grad()
    layer.eval()
    with torch.no_grad():
        layer(X)
    layer(X).square().sum().backward()
    for name, param in layer.named_parameters():
        torch.testing.assert_close(param.grad, expected[name])


@pytest.mark.parametrize("optimizer", [
    lambda p: torch.optim.SGD(p, lr=0.1),
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=True),
    lambda p: torch.optim.Adam(p, lr=0.1),
    lambda p: torch.optim.Adam(p, lr=0.1, foreach=True),
    lambda p: torch.optim.AdamW(p, lr=0.1, fused=True),
], ids=["sgd", "sgd-foreach", "adam", "adam-foreach", "adamw-fused"])
def test_cache_invalidated_by_optimizer_step(optimizer) -> None:
    layer = small_conv().eval()
    opt = optimizer(layer.parameters())
    with torch.no_grad():
        stale = layer(X)
    layer(X).square().sum().backward()
    opt.step()
    with torch.no_grad():
        fresh = layer(X)
        assert not torch.allclose(fresh, stale)
        torch.testing.assert_close(layer.weight, compose(layer.algebra, layer.factors), rtol=0, atol=0)


def test_cache_invalidated_by_load_state_dict_and_in_place_edits() -> None:
    layer = small_conv().eval()
    other = small_conv()
    with torch.no_grad():
        layer(X)
        layer.load_state_dict(other.state_dict())
        torch.testing.assert_close(layer.weight, other.weight, rtol=0, atol=0)
        layer.factors.mul_(2)
        torch.testing.assert_close(layer.weight, 2 * other.weight)


def test_cache_invalidated_by_dtype_and_device_moves() -> None:
    layer = small_conv().eval()
    with torch.no_grad():
        layer(X)
        layer.double()
        assert layer.weight.dtype == torch.float64
        assert layer(X.double()).dtype == torch.float64
        layer.to("meta")
        assert layer.weight.device.type == "meta"
        assert layer(X.double().to("meta")).shape == (2, 8, 6, 6)


# --- copies and state ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["train", "eval"])
def test_deepcopy_after_forward(mode: str) -> None:
    layer = small_conv().train(mode == "train")
    out = layer(X)
    with torch.no_grad():
        layer(X)  # fills the cache in eval
    clone = copy.deepcopy(layer)
    assert clone._cache is None
    assert all(p.is_leaf for p in clone.parameters())
    torch.testing.assert_close(clone(X), out)
    with torch.no_grad():
        clone.factors.zero_()
    torch.testing.assert_close(layer(X), out)


@pytest.mark.parametrize("algebra", ["learned", "quaternion", "custom"])
def test_state_dict_round_trip(algebra: str) -> None:
    spec = torch.randn(4, 4, 4) if algebra == "custom" else algebra
    layer = small_conv(algebra=spec)
    state = layer.state_dict()
    assert set(state) == {"algebra", "factors", "bias"}
    restored = small_conv(algebra=spec if algebra != "custom" else torch.ones(4, 4, 4))
    restored.load_state_dict(state)
    torch.testing.assert_close(restored(X), layer(X), rtol=0, atol=0)
    torch.testing.assert_close(restored.algebra, layer.algebra)


def test_repr_shows_the_settings() -> None:
    text = repr(PHConv2d(8, 16, (3, 1), stride=2, padding=(1, 0), dilation=(2, 1), groups=2, bias=False,
                         padding_mode="reflect", n=2, algebra="complex"))
    for part in ["8, 16", "kernel_size=(3, 1)", "stride=(2, 2)", "padding=(1, 0)", "dilation=(2, 1)",
                 "groups=2", "padding_mode=reflect", "n=2", "algebra=complex", "bias=False"]:
        assert part in text, part
    assert "output_padding=(1, 1)" in repr(PHConvTranspose2d(4, 4, 3, stride=2, output_padding=1))
    assert repr(PHMLinear(4, 8)) == "PHMLinear(in_features=4, out_features=8, n=4, algebra=learned, bias=True)"


# --- dtypes, autocast, compile, export ----------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype(dtype: torch.dtype) -> None:
    layer = small_conv(dtype=dtype)
    assert all(p.dtype == dtype for p in layer.parameters())
    out = layer(X.to(dtype))
    assert out.dtype == dtype
    with pytest.raises(RuntimeError):
        layer(X.half() if dtype == torch.bfloat16 else X)  # no silent cast of inputs


def test_fixed_algebra_follows_dtype() -> None:
    layer = small_conv(algebra="quaternion").to(torch.float64)
    assert layer.algebra.dtype == torch.float64
    assert layer(X.double()).dtype == torch.float64


def test_autocast_cpu_bfloat16() -> None:
    layer = small_conv()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(X)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), layer(X), rtol=0.05, atol=0.05)
    out.float().sum().backward()
    assert layer.factors.grad.dtype == torch.float32


@pytest.mark.parametrize("cls", [PHMLinear, PHConv2d, PHConvTranspose2d])
def test_compile_fullgraph_captures_without_graph_breaks(cls: type) -> None:
    layer = cls(8, 8) if cls is PHMLinear else cls(8, 8, 3)
    x = torch.randn(2, 8) if cls is PHMLinear else X
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), layer(x))
    compiled(x).sum().backward()
    assert layer.factors.grad is not None


@pytest.mark.slow
def test_compile_fullgraph_inductor() -> None:
    layer = small_conv()
    compiled = torch.compile(layer, fullgraph=True)
    torch.testing.assert_close(compiled(X), layer(X), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_torch_export_of_a_ph_layer(mode: str) -> None:
    layer = small_conv().train(mode == "train")
    exported = torch.export.export(layer, (X,))
    torch.testing.assert_close(exported.module()(X), layer(X))


# --- transposed conv is the adjoint of conv -------------------------------------------------------

@pytest.mark.parametrize(("stride", "padding", "dilation", "groups"), [(1, 0, 1, 1), (2, 1, 1, 2), (2, 2, 2, 1)])
def test_transposed_conv_is_the_adjoint_of_conv(stride: int, padding: int, dilation: int, groups: int) -> None:
    """⟨conv(x), y⟩ == ⟨x, conv_transpose(y)⟩ with the same A and F (the weights share their layout)."""
    torch.manual_seed(0)
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "bias": False,
              "n": 2, "dtype": torch.float64}
    conv = PHConv2d(4, 8, 3, **kwargs)
    x = torch.randn(2, 4, 11, 11, dtype=torch.float64)
    y_shape = conv(x).shape
    tconv = PHConvTranspose2d(8, 4, 3, **kwargs)
    tconv.load_state_dict(conv.state_dict())
    y = torch.randn(y_shape, dtype=torch.float64)
    back = tconv(y, output_size=x.shape[-2:])
    torch.testing.assert_close((conv(x) * y).sum(), (x * back).sum())


# --- errors ----------------------------------------------------------------------------------------

def test_rgb_input_with_n4_explains_what_to_do() -> None:
    with pytest.raises(ValueError) as info:
        PHConv2d(3, 64, 3, n=4)
    message = str(info.value)
    assert "PHConv2d(in_channels=3, out_channels=64, n=4)" in message
    assert "in_channels=3 must be divisible by n=4" in message
    assert "n=3" in message
    assert "4 channels" in message


@pytest.mark.parametrize(("build", "expected"), [
    (lambda: PHConv2d(8, 6, 3, n=4), "out_channels=6 must be divisible by n=4"),
    (lambda: PHConv2d(8, 16, 3, groups=4, n=4), "in_channels=8 must be divisible by groups·n=4·4=16"),
    (lambda: PHMLinear(6, 8, n=4), "in_features=6 must be divisible by n=4"),
    (lambda: PHConv1d(4, 4, 3, n=0), "n must be a positive integer"),
    (lambda: PHConv2d(4, 4, (3, 3, 3)), "kernel_size must be an int or a tuple of 2 ints; got (3, 3, 3)"),
    (lambda: PHConv3d(4, 4, (3, 3)), "kernel_size must be an int or a tuple of 3 ints"),
    (lambda: PHConv2d(4, 4, 0), "kernel_size must be positive"),
    (lambda: PHConv2d(4, 4, 3, stride=(1, 2, 3)), "stride must be an int or a tuple of 2 ints"),
    (lambda: PHConv2d(4, 4, 3, padding="full"), "padding must be 'same', 'valid'"),
    (lambda: PHConv2d(4, 4, 3, padding="same", stride=2), "padding='same' needs stride=1"),
    (lambda: PHConv2d(4, 4, 3, padding_mode="mirror"), "padding_mode must be one of"),
    (lambda: PHConvTranspose2d(4, 4, 3, padding_mode="reflect"), "only support padding_mode='zeros'"),
    (lambda: PHMLinear(4, 4, algebra="octonion"), "unknown algebra 'octonion'; expected one of 'learned'"),
    (lambda: PHMLinear(6, 6, n=3, algebra="quaternion"), "algebra='quaternion' needs n=4; got n=3"),
    (lambda: PHMLinear(4, 4, n=2, algebra="complex", bias=False) and PHMLinear(4, 4, algebra="complex"),
     "algebra='complex' needs n=2"),
    (lambda: PHMLinear(4, 4, n=4, algebra=torch.ones(4, 4)), "must have shape (n, n, n) = (4, 4, 4); got (4, 4)"),
    (lambda: PHMLinear(4, 4, n=2, algebra=torch.zeros(2, 2, 2)), "all zeros"),
])
def test_bad_settings_raise_a_value_error_naming_the_problem(build, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        build()
    assert expected in str(info.value)


def test_error_names_the_layer_type() -> None:
    with pytest.raises(ValueError) as info:
        PHConv3d(5, 8, 3)
    assert str(info.value).startswith("PHConv3d(in_channels=5, out_channels=8, n=4)")


def test_hamilton_rule_is_the_left_multiplication_matrix() -> None:
    w = torch.tensor([0.5, -1.0, 2.0, 3.0])
    matrix = (hamilton() * w[:, None, None]).sum(0)
    p = torch.tensor([1.0, 2.0, -0.5, 0.25])
    a, b, c, d = w
    expected = torch.stack([
        torch.stack([a, -b, -c, -d]), torch.stack([b, a, -d, c]),
        torch.stack([c, d, a, -b]), torch.stack([d, -c, b, a]),
    ])
    torch.testing.assert_close(matrix, expected)
    torch.testing.assert_close(matrix @ p, expected @ p)


def test_no_lightning_import() -> None:
    import subprocess
    import sys

    code = "import sys, phnn.nn; sys.exit(any(m.startswith(('lightning', 'pytorch_lightning')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_module_in_a_sequential_moves_with_it() -> None:
    model = nn.Sequential(small_conv(), nn.ReLU(), small_conv(algebra="quaternion")).double()
    assert model(X.double()).dtype == torch.float64


def test_an_eval_call_under_autocast_leaves_the_cached_weight_in_the_parameters_dtype() -> None:
    """Evaluated once under bf16 autocast (e.g. a bf16-mixed validation), then in float32: the cached
    composed weight stays float32, as a dense layer's weight does, so the second call works and matches."""
    torch.manual_seed(0)
    for layer, x in ((PHMLinear(8, 8, n=4), torch.randn(2, 8)), (PHConv2d(8, 8, 3, n=4), torch.randn(1, 8, 5, 5))):
        layer.eval()
        dense = layer.to_dense().eval()
        with torch.no_grad():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert layer(x).dtype == dense(x).dtype == torch.bfloat16
            assert layer.composed_weight().dtype == torch.float32
            torch.testing.assert_close(layer(x), dense(x), rtol=0, atol=1e-5)
