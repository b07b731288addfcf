"""Every registered image backbone builds in every family it fits, runs, and has ≈ 1/n of the parameters."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from phnn.models import create_model, list_models
from phnn.nn import PHConv2d, PHLayer, PHMLinear

RESNETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
LARGE = ["resnet18_large", "resnet50_large", "resnet152_large", "vgg19_large"]
VGGS = ["vgg11", "vgg13", "vgg16", "vgg19"]
IMAGE_MODELS = RESNETS + VGGS + LARGE

# (family, n, in_channels): every family with an input whose channels n divides.
FAMILY_CASES = [("real", 1, 3), ("quaternion", 4, 4), ("phc", 2, 4), ("phc", 4, 4)]
CASES = [(name, *case) for name in IMAGE_MODELS for case in FAMILY_CASES]
CASES += [(name, "phc", 3, 3) for name in LARGE]


@functools.cache
def _params(name: str, family: str, n: int = 4, in_channels: int = 4) -> int:
    return sum(p.numel() for p in create_model(name, family=family, n=n, in_channels=in_channels).parameters())


def test_registry_lists_every_image_model() -> None:
    assert set(IMAGE_MODELS) <= set(list_models())
    assert list_models() == sorted(list_models())


def test_unknown_model_lists_the_known_names() -> None:
    with pytest.raises(ValueError) as error:
        create_model("resnet19")
    assert "'resnet19'" in str(error.value)
    assert "resnet18" in str(error.value) and "vgg19_large" in str(error.value)


@pytest.mark.parametrize(("name", "family", "n", "in_channels"), CASES)
def test_builds_and_runs_forward(name: str, family: str, n: int, in_channels: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, family=family, n=n, in_channels=in_channels, num_classes=7)
    out = model(torch.randn(2, in_channels, 8, 8))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("family", ["quaternion", "phc"])
def test_ph_families_hold_a_quarter_of_the_parameters(name: str, family: str) -> None:
    real, ph = _params(name, "real"), _params(name, family)
    assert 0.24 <= ph / real <= 0.30


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg11"])
def test_every_conv_is_from_the_family_and_the_last_layer_is_plain_linear(name: str) -> None:
    model = create_model(name, family="phc", n=4, in_channels=4, num_classes=5)
    modules = list(model.modules())
    assert not any(type(m) is nn.Conv2d for m in modules)
    first_conv = next(m for m in modules if isinstance(m, PHConv2d))
    assert first_conv.in_channels == 4 and first_conv.n == 4
    linears = [m for m in modules if isinstance(m, (nn.Linear, PHMLinear))]
    assert type(linears[-1]) is nn.Linear and linears[-1].out_features == 5
    assert all(isinstance(m, PHMLinear) for m in linears[:-1])
    if name.startswith("vgg"):
        assert len(linears) == 3


def test_real_family_has_no_ph_layers() -> None:
    model = create_model("vgg11", family="real")
    assert not any(isinstance(m, PHLayer) for m in model.modules())


def test_large_widths_divide_by_two_three_and_four() -> None:
    model = create_model("resnet50_large", family="phc", n=3)
    widths = {m.out_channels for m in model.modules() if isinstance(m, PHConv2d)}
    assert widths == {60, 120, 240, 516, 480, 960, 2064}  # bottleneck widths and their 4× expansions
    assert all(w % 12 == 0 for w in widths)


def test_quaternion_family_uses_the_fixed_hamilton_algebra() -> None:
    model = create_model("resnet18", family="quaternion", in_channels=4)
    convs = [m for m in model.modules() if isinstance(m, PHConv2d)]
    assert {c.algebra_name for c in convs} == {"quaternion"}
    assert not any(name.endswith("algebra") for name, _ in model.named_parameters())


def test_phc_gradients_reach_the_stem_and_the_algebras() -> None:
    model = create_model("resnet18", family="phc", n=4, in_channels=4, num_classes=3)
    loss = nn.functional.cross_entropy(model(torch.randn(2, 4, 8, 8)), torch.tensor([0, 2]))
    loss.backward()
    stem = model.stem[0]
    assert stem.factors.grad is not None and stem.factors.grad.abs().sum() > 0
    assert stem.algebra.grad is not None and stem.algebra.grad.abs().sum() > 0


def test_same_seed_gives_the_same_weights() -> None:
    torch.manual_seed(3)
    first = create_model("vgg11", family="phc", n=2, in_channels=4).state_dict()
    torch.manual_seed(3)
    second = create_model("vgg11", family="phc", n=2, in_channels=4).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_n_that_does_not_divide_the_widths_names_the_layer() -> None:
    with pytest.raises(ValueError) as error:
        create_model("resnet18", family="phc", n=3, in_channels=3)
    message = str(error.value)
    assert "resnet18" in message and "stem" in message
    assert "out_channels=64" in message and "n=3" in message


def test_rgb_input_with_n4_points_to_the_extra_channel() -> None:
    with pytest.raises(ValueError) as error:
        create_model("vgg16", family="quaternion", in_channels=3)
    assert "features.0" in str(error.value)
    assert "in_channels=3" in str(error.value) and "extra_channel" in str(error.value)


def test_bad_family_and_bad_sizes_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown family 'complex'"):
        create_model("resnet18", family="complex")
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        create_model("resnet18", family="real", num_classes=0)
    with pytest.raises(ValueError, match="dropout"):
        create_model("vgg11", family="real", dropout=1.5)


def test_zero_init_residual_starts_blocks_as_identity() -> None:
    model = create_model("resnet18", family="real", zero_init_residual=True)
    assert torch.count_nonzero(model.layer1[0].bn2.weight) == 0
    assert torch.count_nonzero(model.layer1[0].bn1.weight) == 64


def test_vgg_runs_on_small_and_cifar_sized_inputs() -> None:
    model = create_model("vgg11", family="phc", n=4, in_channels=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 4, 32, 32)).shape == (1, 10)
        assert model(torch.randn(1, 4, 5, 7)).shape == (1, 10)
