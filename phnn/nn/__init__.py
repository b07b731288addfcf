"""phnn.nn: parameterized hypercomplex layers, pure torch (no Lightning), usable like torch.nn.

    from phnn.nn import PHConv2d, PHMLinear
    conv = PHConv2d(4, 64, 3, padding=1, n=4)                      # learned algebra
    quat = PHConv2d(4, 64, 3, padding=1, n=4, algebra="quaternion")  # fixed Hamilton rule
"""

from phnn.nn.algebra import complex_rule, hamilton
from phnn.nn.composition import compose
from phnn.nn.layers import (
    PHConv1d,
    PHConv2d,
    PHConv3d,
    PHConvTranspose1d,
    PHConvTranspose2d,
    PHConvTranspose3d,
    PHLayer,
    PHMLinear,
)

__all__ = [
    "PHConv1d",
    "PHConv2d",
    "PHConv3d",
    "PHConvTranspose1d",
    "PHConvTranspose2d",
    "PHConvTranspose3d",
    "PHLayer",
    "PHMLinear",
    "compose",
    "complex_rule",
    "hamilton",
]
