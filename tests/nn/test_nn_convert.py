"""to_dense (PH -> torch, for deployment) and convert (torch -> PH, for compression)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from phnn.nn import (
    ConversionReport,
    PHConv1d,
    PHConv2d,
    PHConvTranspose2d,
    PHLayer,
    PHMLinear,
    convert,
    to_dense,
)


def small_ph_model() -> nn.Module:
    return nn.Sequential(
        PHConv2d(4, 8, 3, padding=1, n=4),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        PHConvTranspose2d(8, 8, 2, stride=2, n=2, algebra="complex"),
        PHConv2d(8, 8, 3, padding="same", padding_mode="reflect", groups=2, n=4, algebra="quaternion"),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        PHMLinear(8, 4, n=4),
    ).eval()


X = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))


def test_to_dense_gives_torch_layers_with_identical_outputs() -> None:
    model = small_ph_model()
    dense = to_dense(model)
    assert not any(isinstance(m, PHLayer) for m in dense.modules())
    assert [type(m) for m in dense] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ConvTranspose2d, nn.Conv2d,
                                        nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear]
    assert dense[4].padding_mode == "reflect" and dense[4].groups == 2
    assert not dense.training
    torch.testing.assert_close(dense(X), model(X), rtol=0, atol=1e-6)
    assert any(isinstance(m, PHLayer) for m in model.modules()), "the original must stay untouched"


def test_to_dense_of_a_single_layer_keeps_the_training_mode() -> None:
    layer = PHConv1d(4, 4, 3)
    dense = to_dense(layer)
    assert isinstance(dense, nn.Conv1d) and dense.training
    x = torch.randn(1, 4, 9)
    torch.testing.assert_close(dense(x), layer(x))


@pytest.mark.parametrize("how", ["script", "trace", "export"])
def test_dense_model_exports(how: str) -> None:
    model = small_ph_model()
    dense = to_dense(model)
    if how == "script":
        exported = torch.jit.script(dense)
    elif how == "trace":
        exported = torch.jit.trace(dense, (X,))
    else:
        exported = torch.export.export(dense, (X,)).module()
    torch.testing.assert_close(exported(X), model(X), rtol=0, atol=1e-6)


def test_convert_resnet18_skips_the_rgb_stem_and_converts_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    model = resnet18(weights=None)
    with caplog.at_level(logging.INFO, logger="phnn.nn.convert"):
        report = convert(model, n=4)
    assert isinstance(report, ConversionReport)
    assert list(report.skipped) == ["conv1"]
    assert "in_channels=3 is not divisible by groups·n=1·4=4" in report.skipped["conv1"]
    convs = [name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert sorted(report.converted) == sorted(set(convs) - {"conv1"})
    assert len(report.converted) == 20
    converted = report.model
    assert isinstance(converted.conv1, nn.Conv2d) and isinstance(converted.fc, PHMLinear)
    block = converted.layer2[0]
    assert isinstance(block.conv1, PHConv2d)
    assert (block.conv1.stride, block.conv1.padding, block.conv1.bias) == ((2, 2), (1, 1), None)
    assert isinstance(block.downsample[0], PHConv2d) and block.downsample[0].kernel_size == (1, 1)
    assert type(model.layer1[0].conv1) is nn.Conv2d, "copy=True leaves the input model alone"
    assert report.parameters_before == sum(p.numel() for p in model.parameters())
    assert report.parameters_after == sum(p.numel() for p in converted.parameters())
    assert 3.5 < report.parameters_before / report.parameters_after < 4.1
    assert converted.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1000)
    text = str(report)
    assert "20 layers converted, 1 skipped" in text and "skipped   conv1: in_channels=3" in text
    assert text in caplog.text


def test_convert_in_place_with_fixed_algebra_and_transposed_convs() -> None:
    model = nn.Sequential(nn.Conv1d(8, 16, 3, groups=2, padding_mode="circular", padding=1),
                          nn.ConvTranspose1d(16, 8, 4, stride=2, output_padding=1), nn.Conv1d(8, 6, 1))
    x = torch.randn(1, 8, 10)
    expected_shape = model(x).shape
    report = convert(model, n=4, algebra="quaternion", copy=False)
    assert report.model is model
    assert report.converted == ["0", "1"]
    assert "out_channels=6" in report.skipped["2"]
    first, second = model[0], model[1]
    assert first.algebra_name == "quaternion" and first.groups == 2 and first.padding_mode == "circular"
    assert second.output_padding == (1,) and second.stride == (2,)
    assert model(x).shape == expected_shape


def test_convert_nearest_reproduces_a_model_built_from_kronecker_sums() -> None:
    """A dense copy of a PH model converts back exactly: the nearest-Kronecker fit is lossless there."""
    torch.manual_seed(0)
    source = nn.Sequential(PHConv2d(4, 8, 3, n=4), nn.ReLU(), PHConvTranspose2d(8, 4, 2, stride=2, groups=2, n=2),
                           nn.Flatten(), PHMLinear(4 * 12 * 12, 8, n=4, algebra="quaternion"))
    dense = to_dense(source)
    learned = convert(dense[:3], n=4, init="nearest")
    assert learned.converted == ["0"] and "2" in learned.skipped
    assert learned.errors["0"] < 1e-5
    pairs = convert(dense[:3], n=2, init="nearest")
    assert pairs.errors["2"] < 1e-5
    quaternion = convert(dense[3:], n=4, algebra="quaternion", init="nearest")
    assert quaternion.errors["4"] < 1e-5
    rebuilt = nn.Sequential(learned.model[0], nn.ReLU(), pairs.model[2], *quaternion.model)
    torch.testing.assert_close(rebuilt(X), source(X), rtol=1e-4, atol=1e-5)
    random_dense = convert(nn.Linear(16, 16), n=4, init="nearest")
    assert 0.3 < random_dense.errors[""] < 1, "a random dense weight is far from any Kronecker sum"


class _OwnLinear(nn.Linear):
    """A user's subclass: its owner may rely on more than the weight."""


def test_convert_skips_subclasses_and_the_root_can_be_converted() -> None:
    report = convert(nn.Sequential(_OwnLinear(8, 8), nn.Linear(8, 8)), n=4)
    assert "0" in report.skipped and "subclass" in report.skipped["0"] and report.converted == ["1"]
    root = convert(nn.Linear(8, 4), n=2)
    assert isinstance(root.model, PHMLinear) and root.converted == [""]
    assert "(root)" in str(root)


def test_convert_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError) as info:
        convert(nn.Linear(4, 4), init="svd")
    assert "init must be one of ('random', 'nearest'); got 'svd'" in str(info.value)
    with pytest.raises(ValueError) as info:
        convert(nn.Linear(4, 4), n=0)
    assert "n must be a positive integer; got 0" in str(info.value)


@pytest.mark.parametrize("algebra", ["learned", "quaternion"])
def test_nearest_reports_error_and_energy_kept_and_no_kronecker_sum_is_closer(algebra: str) -> None:
    torch.manual_seed(0)
    dense = nn.Conv2d(8, 12, 3)
    report = convert(dense, 4, algebra=algebra, init="nearest")
    error, kept = report.errors[""], report.energy[""]
    assert error**2 + kept == pytest.approx(1.0, abs=1e-5)  # an orthogonal projection
    assert "energy kept" in str(report)
    layer = report.model
    with torch.no_grad():  # any small move of A or F is farther from the dense weight
        for _ in range(5):
            moved = PHConv2d(8, 12, 3, n=4, algebra=algebra)
            moved.load_state_dict(layer.state_dict())
            moved.factors.add_(0.01 * torch.randn_like(moved.factors))
            if algebra == "learned":
                moved.algebra.add_(0.01 * torch.randn_like(moved.algebra))
            distance = (moved.composed_weight() - dense.weight).norm() / dense.weight.norm()
            assert distance > error


def test_create_model_converted_n_builds_the_modules_of_convert() -> None:
    from phnn.models import create_model, list_models, register_model

    if "tiny_convert_cnn" not in list_models():
        @register_model("tiny_convert_cnn")
        def tiny(family, in_channels: int, num_classes: int) -> nn.Module:
            return nn.Sequential(family.conv(in_channels, 8, 3), nn.BatchNorm2d(8), family.conv(8, 8, 3),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten(), family.linear(8, num_classes))

    teacher = create_model("tiny_convert_cnn", family="real", in_channels=3, num_classes=10)
    start = convert(teacher, 2, init="nearest")
    assert start.converted == ["2", "5"] and list(start.skipped) == ["0"]
    student = create_model("tiny_convert_cnn", family="real", in_channels=3, num_classes=10, converted_n=2)
    assert [type(m) for m in student.modules()] == [type(m) for m in start.model.modules()]
    student.load_state_dict(start.model.state_dict())  # strict: the same parameters and buffers
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(student.eval()(x), start.model.eval()(x))
