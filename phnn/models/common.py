"""Pieces every backbone shares: the family conv + batch norm pair, and the one weight init."""

from __future__ import annotations

from torch import nn

from phnn.models.family import LayerFamily
from phnn.nn import PHLayer


def conv_bn(family: LayerFamily, in_channels: int, out_channels: int, kernel_size: int,
            stride: int = 1) -> list[nn.Module]:
    """A bias-free family conv ("same" padding for odd kernels) and its batch norm."""
    conv = family.conv(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
    return [conv, nn.BatchNorm2d(out_channels)]


def init_weights(model: nn.Module) -> None:
    """The one place where backbone weights are initialised.

    Convs and linears of every family keep the torch default variance (PH layers re-run their own
    `reset_parameters`, which matches it on the composed weight, instead of a kaiming init on the
    raw factors), so real, quaternion and PHC networks start from the same statistics; batch norms
    start at weight 1, bias 0.
    """
    for module in model.modules():
        if isinstance(module, (PHLayer, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            module.reset_parameters()
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
