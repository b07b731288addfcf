"""CIFAR-style VGGs with batch norm, built from a layer family.

One implementation: a layer list ("M" = 2×2 max-pool) and the classifier's hidden widths are the
parameters. Every conv comes from the family; the classifier's hidden layers are `family.linear`
(PHMLinear in PH families) and the last layer a plain `nn.Linear`. Pools use `ceil_mode` and the
features end in a global average pool, so any input size works (32×32 CIFAR as well as 8×8 tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from phnn.models.common import conv_bn, init_weights
from phnn.models.family import LayerFamily
from phnn.models.registry import building, register_model

Layout = Sequence[int | str]

#: name -> (conv layout, classifier hidden widths)
ARCHITECTURES: dict[str, tuple[tuple[int | str, ...], tuple[int, ...]]] = {
    "vgg11": ((64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"), (512, 512)),
    "vgg13": ((64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"), (512, 512)),
    "vgg16": ((64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
              (512, 512)),
    "vgg19": ((64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
               512, 512, 512, 512, "M"), (512, 512)),
    # VGG19's layout with the published large widths 24/72/216/648 (the last two blocks share 648,
    # as VGG19's share 512); every width is a multiple of 24, so it divides by n = 2, 3, 4 (and 8).
    "vgg19_large": ((24, 24, "M", 72, 72, "M", 216, 216, 216, 216, "M", 648, 648, 648, 648, "M",
                     648, 648, 648, 648, "M"), (516, 516)),
}


class VGG(nn.Module):
    """Conv blocks (family conv 3×3, BN, ReLU; "M" max-pool) → global average pool → MLP classifier."""

    def __init__(
        self,
        family: LayerFamily,
        layout: Layout,
        hidden: Sequence[int] = (512, 512),
        *,
        in_channels: int = 3,
        num_classes: int = 10,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"VGG: dropout must be in [0, 1); got {dropout!r}")
        self.family = family
        layers: list[nn.Module] = []
        channels = in_channels
        for index, item in enumerate(layout):
            if item == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                continue
            if not isinstance(item, int) or item < 1:
                raise ValueError(f"VGG: layout item {index} must be a positive width or 'M'; got {item!r}")
            with building(f"features.{len(layers)}"):
                layers += [*conv_bn(family, channels, item, 3), nn.ReLU(inplace=True)]
            channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        head: list[nn.Module] = []
        for width in hidden:
            with building(f"classifier.{len(head)}"):
                head += [family.linear(channels, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            channels = width
        head.append(nn.Linear(channels, num_classes))
        self.classifier = nn.Sequential(*head)
        self.num_features = channels
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _register(name: str, layout: tuple[int | str, ...], hidden: tuple[int, ...]) -> None:
    def builder(family: LayerFamily, in_channels: int, num_classes: int, **kwargs: Any) -> VGG:
        return VGG(family, layout, hidden, in_channels=in_channels, num_classes=num_classes, **kwargs)

    widths = sorted({item for item in layout if item != "M"})
    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"{name}: conv widths {widths}, classifier hidden widths {list(hidden)}."
    register_model(name)(builder)


for _name, _spec in ARCHITECTURES.items():
    _register(_name, *_spec)
