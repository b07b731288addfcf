"""SEDnet: shapes in every family, error messages, parameter counts of the variants."""

from __future__ import annotations

import pytest
import torch

from phnn.config_files import SHIPPED_CONFIGS
from phnn.models import create_model, make_family
from phnn.models.sednet import SEDnet
from phnn.nn import PHGRU, PHMLinear

TINY = {"widths": (16, 16, 16, 16), "gru_hidden": 8, "gru_layers": 1, "fc_width": 16, "fc_layers": 2}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("family", "n", "channels"), [
    ("real", 1, 4), ("quaternion", 4, 4), ("phc", 2, 4), ("phc", 4, 8), ("phc", 8, 8), ("phc", 16, 16),
])
def test_output_shape_every_family(family: str, n: int, channels: int) -> None:
    model = create_model("sednet", family=family, n=n, in_channels=channels, num_classes=14, slots=3, **TINY).eval()
    out = model(torch.randn(2, channels, 256, 24))
    assert out.shape == (2, 3, 42)


def test_published_model_shape_and_any_length() -> None:
    model = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, slots=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 4, 256, 8)).shape == (1, 1, 42)
        assert model(torch.randn(1, 4, 256, 40)).shape == (1, 5, 42)


def test_full_phm_variant_has_fewer_parameters() -> None:
    base = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, slots=3)
    full = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, slots=3, full_phm=True)
    real = create_model("sednet", family="real", in_channels=4, num_classes=14, slots=3)
    assert count(full) < count(base) < count(real)
    # hidden FC layers 512→1024, 1024→1024, 1024→1024 shrink about 4×
    dense_fc = 512 * 1024 + 2 * 1024 * 1024
    assert count(base) - count(full) == pytest.approx(dense_fc * 3 / 4, rel=0.01)


def test_n_larger_than_channels_is_refused_with_advice() -> None:
    with pytest.raises(ValueError) as info:
        create_model("sednet", family="phc", n=8, in_channels=4, num_classes=14, slots=3)
    message = str(info.value)
    assert "in_channels=4" in message and "n=8" in message and "data.mics" in message


def test_full_phm_needs_hypercomplex_family() -> None:
    with pytest.raises(ValueError, match="full_phm"):
        create_model("sednet", family="real", in_channels=4, num_classes=14, slots=3, full_phm=True)


@pytest.mark.parametrize("shape", [(1, 4, 256, 12), (1, 4, 128, 16), (4, 256, 16)])
def test_bad_input_shape_is_named(shape: tuple[int, ...]) -> None:
    model = SEDnet(make_family("phc", 4), 4, 42, **TINY)
    with pytest.raises(ValueError) as info:
        model(torch.randn(shape))
    assert str(tuple(shape)) in str(info.value) and "multiple of 8" in str(info.value)


def test_training_step_gets_gradients_everywhere() -> None:
    model = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, slots=3, full_phm=True, **TINY)
    model(torch.randn(2, 4, 256, 16)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_output_bias_starts_at_the_prior() -> None:
    model = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, slots=3, output_prior=0.1, **TINY)
    torch.testing.assert_close(torch.sigmoid(model.head[-1].bias), torch.full((42,), 0.1))
    with pytest.raises(ValueError, match="output_prior"):
        create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, slots=3, output_prior=1.5, **TINY)


# --- the DOA (localisation) head -----------------------------------------------------------------

FAMILIES = [("real", 1, 4, False), ("quaternion", 4, 4, False), ("quaternion", 4, 8, True), ("phc", 2, 4, False),
            ("phc", 4, 8, True), ("phc", 8, 8, False), ("phc", 16, 16, True)]


@pytest.mark.parametrize(("family", "n", "channels", "full"), FAMILIES)
def test_doa_head_shapes_every_family(family: str, n: int, channels: int, full: bool) -> None:
    model = create_model("sednet", family=family, n=n, in_channels=channels, num_classes=14, slots=3, doa=True,
                         full_phm=full, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, 256, 24))
    assert out.shape == (2, 3, 42 + 126) and model.outputs == 168
    assert out[..., 42:].abs().max() <= 1.0  # tanh: metres / 2
    sed_only = create_model("sednet", family=family, n=n, in_channels=channels, num_classes=14, slots=3, full_phm=full,
                            **TINY)
    assert sed_only.outputs == 42 and sed_only.doa_head is None
    with torch.no_grad():
        assert sed_only.eval()(torch.randn(2, channels, 256, 24)).shape == (2, 3, 42)


@pytest.mark.parametrize(("family", "n", "channels", "full"), FAMILIES)
def test_doa_head_parameter_count_every_family(family: str, n: int, channels: int, full: bool) -> None:
    """The DOA head is the SED head's hidden layers (PHM with full_phm) and a dense layer to 126 outputs."""
    kwargs = dict(family=family, n=n, in_channels=channels, num_classes=14, slots=3, full_phm=full, **TINY)
    with_doa, without = create_model("sednet", doa=True, **kwargs), create_model("sednet", **kwargs)
    hidden, fc = TINY["fc_width"], TINY["fc_width"]
    gru_out = 2 * TINY["gru_hidden"]
    dense_hidden = gru_out * hidden + hidden + (TINY["fc_layers"] - 1) * (hidden * hidden + hidden)
    if full:  # PHM: n³ algebra + 1/n of the weights per layer, biases dense
        phm_hidden = ((n**3 + gru_out * hidden // n + hidden)
                      + (TINY["fc_layers"] - 1) * (n**3 + hidden * hidden // n + hidden))
        # the quaternion algebra is fixed: a buffer, not parameters
        expected_hidden = phm_hidden - (TINY["fc_layers"] * n**3 if family == "quaternion" else 0)
        hidden_layers = [m for m in with_doa.doa_head[:-2] if isinstance(m, (torch.nn.Linear, PHMLinear))]
        assert len(hidden_layers) == TINY["fc_layers"] and all(isinstance(m, PHMLinear) for m in hidden_layers)
    else:
        expected_hidden = dense_hidden
    assert count(with_doa) - count(without) == expected_hidden + fc * 126 + 126


def official_seldnet_augmented_parameters(in_channels: int = 4) -> int:
    """`Seldnet_augmented` of the official L3DAS21 code, counted from its layers (train_baseline_task2.py defaults)."""
    convs = [(in_channels, 64), (64, 128), (128, 256), (256, 512)]
    conv = sum(i * o * 9 + o for i, o in convs)  # Conv2d(kernel 3) with bias
    batch_norm = sum(2 * o for _, o in convs)
    gru_layer = lambda inputs: 3 * (256 * inputs + 256 * 256 + 2 * 256)  # noqa: E731  one direction
    gru = 2 * (gru_layer(512 * 2) + 2 * gru_layer(2 * 256))  # input: 512 filters × 2 bins left of 256
    head = lambda outputs: 512 * 1024 + 1024 + 2 * (1024 * 1024 + 1024) + 1024 * outputs + outputs  # noqa: E731
    return conv + batch_norm + gru + head(42) + head(42 * 3)


def test_baseline_config_has_the_official_parameter_count() -> None:
    """configs/sed/seldnet_baseline.yaml = the official baseline, minus the conv biases batch norm makes redundant."""

    import yaml

    from phnn.tasks import SoundEventDetector

    config = yaml.safe_load((SHIPPED_CONFIGS / "sed" / "seldnet_baseline.yaml").read_text())
    init = {k: v for k, v in config["model"]["init_args"].items() if k != "optimizer"}
    channels = 4 * len(config["data"]["init_args"]["mics"])
    task = SoundEventDetector(num_classes=14, in_channels=channels, **init)
    conv_biases = 64 + 128 + 256 + 512
    assert count(task.model) == official_seldnet_augmented_parameters(channels) - conv_biases == 11_308_328
    assert not any(isinstance(m, PHMLinear) for m in task.modules()) and task.doa is not None


# --- the DOA branch (doa_shared_blocks) ------------------------------------------------------------

@pytest.mark.parametrize(("family", "n", "channels", "full"), FAMILIES)
@pytest.mark.parametrize("shared", [0, 2, 4])
def test_doa_branch_shapes_and_parameters_every_family(family: str, n: int, channels: int, full: bool,
                                                       shared: int) -> None:
    """A branch with its own conv blocks after `shared` and its own GRU: exactly those layers' parameters more."""
    kwargs = dict(family=family, n=n, in_channels=channels, num_classes=14, slots=3, full_phm=full, doa=True, **TINY)
    trunk = create_model("sednet", **kwargs)
    branch = create_model("sednet", doa_shared_blocks=shared, **kwargs).eval()
    with torch.no_grad():
        out = branch(torch.randn(2, channels, 256, 24))
    assert out.shape == (2, 3, 168) and out[..., 42:].abs().max() <= 1.0
    own_blocks = sum(count(block) for block in trunk.conv[shared:])
    assert count(branch) - count(trunk) == own_blocks + count(trunk.gru)


def test_unshared_doa_branch_leaves_detection_alone() -> None:
    """doa_shared_blocks=0: the DOA outputs depend on no parameter of the SED path, and the SED outputs on
    none of the DOA branch — the DOA loss cannot slow detection down."""
    model = create_model("sednet", family="phc", n=4, in_channels=8, num_classes=14, slots=3, doa=True,
                         doa_shared_blocks=0,
                         **TINY)
    out = model(torch.randn(2, 8, 256, 16))
    out[..., 42:].sum().backward(retain_graph=True)
    def untouched(parameters) -> bool:
        return all(p.grad is None or not p.grad.any() for p in parameters)

    doa_path = [*model.doa_conv.parameters(), *model.doa_gru.parameters(), *model.doa_head.parameters()]
    assert untouched([*model.conv.parameters(), *model.gru.parameters(), *model.head.parameters()])
    assert not untouched(model.doa_conv[0].parameters())
    model.zero_grad(set_to_none=True)
    out[..., :42].sum().backward()
    assert untouched(doa_path) and not untouched(model.conv[0].parameters())


def test_doa_branch_widths_and_pooling() -> None:
    model = create_model("sednet", family="phc", n=4, in_channels=8, num_classes=14, slots=3, doa=True,
                         doa_shared_blocks=1,
                         doa_widths=(8, 32, 16), doa_pooling="avg", **{**TINY, "widths": (4, 8, 16, 16)})
    assert [block[0].out_channels for block in model.doa_conv] == [8, 32, 16]
    assert all(isinstance(block[3], torch.nn.AvgPool2d) for block in model.doa_conv)
    assert model(torch.randn(1, 8, 256, 16)).shape == (1, 2, 168)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"doa_shared_blocks": 5}, "doa_shared_blocks=5"),
    ({"doa_shared_blocks": 1, "doa_widths": (8, 8)}, "doa_widths=[8, 8] must give the 3 conv blocks"),
    ({"doa_widths": (8, 8, 8, 8)}, "doa_widths needs doa=True and doa_shared_blocks"),
    ({"doa_shared_blocks": 0, "doa_pooling": "min"}, "doa_pooling='min'"),
])
def test_bad_doa_branch_options_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, slots=3, doa=True, **kwargs, **TINY)


def test_max_pool_before_relu_is_the_published_block() -> None:
    """Blocks pool before the ReLU (16x fewer elements to rectify): the same function as the published
    conv → BN → ReLU → MaxPool order."""
    model = create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, slots=3, **TINY).eval()
    x = torch.randn(2, 4, 256, 16)
    for block in model.conv:
        conv, norm, pool = block[0], block[1], block[2]
        published = pool(torch.relu(norm(conv(x))))
        torch.testing.assert_close(block(x), published)
        x = published


# --- the fully PH network: PH recurrent part ------------------------------------------------------

@pytest.mark.parametrize(("n", "at_most"), [(4, 0.30), (16, 0.12)])
def test_fully_ph_seld_network_has_about_one_nth_of_the_parameters(n: int, at_most: float) -> None:
    """Published SELD sizes (16 input channels, DOA head): conv, hidden FC and GRU all PH (docs/recurrent.md)."""
    real = count(SEDnet(make_family("real"), 16, 42, doa=True))
    full = SEDnet(make_family("phc", n), 16, 42, doa=True, full_phm=True, recurrent="ph")
    assert real == 11_315_240
    assert count(full) / real <= at_most
    assert isinstance(full.gru, PHGRU) and full.gru.n == n


def test_ph_recurrent_matches_its_dense_export_and_needs_a_hypercomplex_family() -> None:
    from phnn.nn import to_dense

    model = create_model("sednet", family="quaternion", in_channels=8, num_classes=14, slots=3, doa=True,
                         doa_shared_blocks=1,
                         recurrent="ph", **TINY).eval()
    assert isinstance(model.gru, PHGRU) and isinstance(model.doa_gru, PHGRU)
    assert model.gru.ih_l0.algebra_name == "quaternion"
    x = torch.randn(1, 8, 256, 8)
    with torch.no_grad():
        torch.testing.assert_close(to_dense(model)(x), model(x), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="recurrent='ph' needs a hypercomplex family"):
        create_model("sednet", family="real", in_channels=4, num_classes=14, slots=3, recurrent="ph", **TINY)
    with pytest.raises(ValueError, match="recurrent='gru'"):
        create_model("sednet", family="phc", n=4, in_channels=4, num_classes=14, slots=3, recurrent="gru", **TINY)
