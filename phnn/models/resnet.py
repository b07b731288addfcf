"""CIFAR-style ResNets (3×3 stem, no max-pool) built from a layer family.

One implementation, after torchvision's `models/resnet.py`: the block type, the blocks per stage and
the stage widths are parameters, and weights are initialised in one place
(`phnn.models.common.init_weights`). Every conv — the stem included — comes from the family, so a PH
family gives a PH network end to end; only the final classifier is a plain `nn.Linear`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from phnn.models.common import conv_bn, init_weights
from phnn.models.family import LayerFamily
from phnn.models.registry import building, register_model

#: Stage widths of the CIFAR ResNets in the original paper.
WIDTHS = (64, 128, 256, 512)
#: Stage widths of the `_large` variants of the published PHNN configs. Every width is a multiple of
#: 12 (60 = 12·5, 516 = 12·43), so it divides by n = 2, 3 and 4; the Bottleneck's 4× expansion
#: (240/480/960/2064) keeps that property, so one architecture serves every family and n.
LARGE_WIDTHS = (60, 120, 240, 516)


class BasicBlock(nn.Module):
    """Two 3×3 convs; used by ResNet-18/34."""

    expansion: ClassVar[int] = 1

    def __init__(self, family: LayerFamily, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(family, in_channels, planes, 3, stride)
        self.conv2, self.bn2 = conv_bn(family, planes, planes, 3)
        self.shortcut = _shortcut(family, in_channels, planes * self.expansion, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride, as torchvision's V1.5), 1×1 expand ×4; ResNet-50+."""

    expansion: ClassVar[int] = 4

    def __init__(self, family: LayerFamily, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(family, in_channels, planes, 1)
        self.conv2, self.bn2 = conv_bn(family, planes, planes, 3, stride)
        self.conv3, self.bn3 = conv_bn(family, planes, planes * self.expansion, 1)
        self.shortcut = _shortcut(family, in_channels, planes * self.expansion, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + self.shortcut(x))


Block = type[BasicBlock] | type[Bottleneck]


def _shortcut(family: LayerFamily, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a strided 1×1 family conv + batch norm (projection)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(*conv_bn(family, in_channels, out_channels, 1, stride))


class ResNet(nn.Module):
    """Stem (3×3 conv, BN, ReLU) → four stages (strides 1, 2, 2, 2) → global average pool → Linear."""

    def __init__(
        self,
        family: LayerFamily,
        block: Block,
        layers: Sequence[int],
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        widths: Sequence[int] = WIDTHS,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"ResNet: expected 4 stages; got layers {list(layers)} and widths {list(widths)}")
        self.family = family
        with building("stem"):
            self.stem = nn.Sequential(*conv_bn(family, in_channels, widths[0], 3), nn.ReLU(inplace=True))
        channels = widths[0]
        stages = []
        for index, (planes, blocks) in enumerate(zip(widths, layers), start=1):
            stride = 1 if index == 1 else 2
            stage = []
            for position in range(blocks):
                with building(f"layer{index}.{position}"):
                    stage.append(block(family, channels, planes, stride if position == 0 else 1))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels
        init_weights(self)
        if zero_init_residual:
            zero_init_residuals(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features before the classifier, [B, num_features]."""
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))


def zero_init_residuals(model: nn.Module) -> None:
    """Zero each block's last batch-norm scale so that every residual block starts as the identity."""
    for module in model.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            nn.init.zeros_(module.last_bn.weight)


#: name -> (block, blocks per stage, stage widths)
ARCHITECTURES: dict[str, tuple[Block, tuple[int, ...], tuple[int, ...]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), WIDTHS),
    "resnet34": (BasicBlock, (3, 4, 6, 3), WIDTHS),
    "resnet50": (Bottleneck, (3, 4, 6, 3), WIDTHS),
    "resnet101": (Bottleneck, (3, 4, 23, 3), WIDTHS),
    "resnet152": (Bottleneck, (3, 8, 36, 3), WIDTHS),
    "resnet18_large": (BasicBlock, (2, 2, 2, 2), LARGE_WIDTHS),
    "resnet50_large": (Bottleneck, (3, 4, 6, 3), LARGE_WIDTHS),
    "resnet152_large": (Bottleneck, (3, 8, 36, 3), LARGE_WIDTHS),
}


def _register(name: str, block: Block, layers: tuple[int, ...], widths: tuple[int, ...]) -> None:
    def builder(family: LayerFamily, in_channels: int, num_classes: int, **kwargs: Any) -> ResNet:
        return ResNet(family, block, layers, in_channels=in_channels, num_classes=num_classes, widths=widths, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{name}: {block.__name__} × {list(layers)}, stage widths {list(widths)}."
    register_model(name)(builder)


for _name, _spec in ARCHITECTURES.items():
    _register(_name, *_spec)
