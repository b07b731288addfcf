"""SEDnet: shapes in every family, error messages, parameter counts of the variants."""

from __future__ import annotations

import pytest
import torch

from phnn.models import create_model, make_family
from phnn.models.sednet import SEDnet

TINY = {"widths": (16, 16, 16, 16), "gru_hidden": 8, "gru_layers": 1, "fc_width": 16, "fc_layers": 2}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("family", "n", "channels"), [
    ("real", 1, 4), ("quaternion", 4, 4), ("phc", 2, 4), ("phc", 4, 8), ("phc", 8, 8), ("phc", 16, 16),
])
def test_output_shape_every_family(family: str, n: int, channels: int) -> None:
    model = create_model("sednet", family=family, n=n, in_channels=channels, num_classes=14, **TINY).eval()
    out = model(torch.randn(2, channels, 256, 24))
    assert out.shape == (2, 3, 42)


def test_published_model_shape_and_any_length() -> None:
    model = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 4, 256, 8)).shape == (1, 1, 42)
        assert model(torch.randn(1, 4, 256, 40)).shape == (1, 5, 42)


def test_full_phm_variant_has_fewer_parameters() -> None:
    base = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14)
    full = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, full_phm=True)
    real = create_model("sednet", family="real", in_channels=4, num_classes=14)
    assert count(full) < count(base) < count(real)
    # hidden FC layers 512→1024, 1024→1024, 1024→1024 shrink about 4×
    dense_fc = 512 * 1024 + 2 * 1024 * 1024
    assert count(base) - count(full) == pytest.approx(dense_fc * 3 / 4, rel=0.01)


def test_n_larger_than_channels_is_refused_with_advice() -> None:
    with pytest.raises(ValueError) as info:
        create_model("sednet", family="phc", n=8, in_channels=4, num_classes=14)
    message = str(info.value)
    assert "in_channels=4" in message and "n=8" in message and "data.mics" in message


def test_full_phm_needs_hypercomplex_family() -> None:
    with pytest.raises(ValueError, match="full_phm"):
        create_model("sednet", family="real", in_channels=4, num_classes=14, full_phm=True)


@pytest.mark.parametrize("shape", [(1, 4, 256, 12), (1, 4, 128, 16), (4, 256, 16)])
def test_bad_input_shape_is_named(shape: tuple[int, ...]) -> None:
    model = SEDnet(make_family("phc", 4), 4, 42, **TINY)
    with pytest.raises(ValueError) as info:
        model(torch.randn(shape))
    assert str(tuple(shape)) in str(info.value) and "multiple of 8" in str(info.value)


def test_training_step_gets_gradients_everywhere() -> None:
    model = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, full_phm=True, **TINY)
    model(torch.randn(2, 4, 256, 16)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_output_bias_starts_at_the_prior() -> None:
    model = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, output_prior=0.1, **TINY)
    torch.testing.assert_close(torch.sigmoid(model.head[-1].bias), torch.full((42,), 0.1))
    with pytest.raises(ValueError, match="output_prior"):
        create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, output_prior=1.5, **TINY)
