"""Layer families: what a backbone asks for its convs and linears, instead of hard-coding them.

    real        torch layers
    quaternion  PH layers with the fixed Hamilton algebra (n = 4)
    phc         PH layers with a learned algebra, any n

One ResNet, one VGG, one SEDnet: the family is a parameter, never a copy of the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from phnn import nn as phnn_nn

_REAL_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_PH_CONVS = {1: phnn_nn.PHConv1d, 2: phnn_nn.PHConv2d, 3: phnn_nn.PHConv3d}

#: the family names, for type hints (the CLI then only accepts these)
FamilyName = Literal["real", "quaternion", "phc"]

# family name -> (fixed n or None for "any n", algebra of its PH layers or None for torch layers)
FAMILIES: dict[str, tuple[int | None, str | None]] = {
    "real": (1, None),
    "quaternion": (4, "quaternion"),
    "phc": (None, "learned"),
}


@dataclass(frozen=True)
class LayerFamily:
    """A factory of convs and linears of one family; `n` is 1 for the real family."""

    name: str
    n: int
    algebra: str | None

    @property
    def tag(self) -> str:
        """Short label for run names: real, quaternion, phc3."""
        return f"phc{self.n}" if self.name == "phc" else self.name

    @property
    def is_hypercomplex(self) -> bool:
        return self.algebra is not None

    def conv(self, in_channels: int, out_channels: int, kernel_size: Any, *, dims: int = 2, **kwargs: Any) -> nn.Module:
        if self.algebra is None:
            return _REAL_CONVS[dims](in_channels, out_channels, kernel_size, **kwargs)
        return _PH_CONVS[dims](in_channels, out_channels, kernel_size, n=self.n, algebra=self.algebra, **kwargs)

    def linear(self, in_features: int, out_features: int, bias: bool = True) -> nn.Module:
        if self.algebra is None:
            return nn.Linear(in_features, out_features, bias)
        return phnn_nn.PHMLinear(in_features, out_features, bias, n=self.n, algebra=self.algebra)


def make_family(family: str, n: int = 4) -> LayerFamily:
    """`make_family("phc", 3)`; the real (n = 1) and quaternion (n = 4) families ignore `n`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}")
    fixed_n, algebra = FAMILIES[family]
    if fixed_n is None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"family {family!r}: n must be a positive integer; got {n!r}")
    return LayerFamily(family, fixed_n if fixed_n is not None else n, algebra)
