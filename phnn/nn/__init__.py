"""phnn.nn: parameterized hypercomplex layers, pure torch (no Lightning), usable like torch.nn.

    from phnn.nn import PHConv2d, PHMLinear
    conv = PHConv2d(4, 64, 3, padding=1, n=4)                      # learned algebra
    quat = PHConv2d(4, 64, 3, padding=1, n=4, algebra="quaternion")  # fixed Hamilton rule
    dense = to_dense(model)                 # plain torch layers, same outputs, for deployment
    report = convert(torch_model, n=4)      # torch Conv/Linear/attention/RNN -> PH where sizes allow
    gru = PHGRU(64, 128, num_layers=2, bidirectional=True, n=4)     # nn.GRU's signature, ~1/4 of its weights
"""

from phnn.nn.algebra import align, complex_rule, hamilton
from phnn.nn.attention import PHMultiheadAttention
from phnn.nn.composition import compose, decompose
from phnn.nn.convert import ConversionReport, convert, to_dense
from phnn.nn.layers import (
    PHComposite,
    PHConv1d,
    PHConv2d,
    PHConv3d,
    PHConvTranspose1d,
    PHConvTranspose2d,
    PHConvTranspose3d,
    PHLayer,
    PHMLinear,
)
from phnn.nn.recurrent import PHGRU, PHLSTM, PHRNN, PHRNNBase
from phnn.nn.report import ParameterReport, parameter_report

__all__ = [
    "ConversionReport",
    "PHConv1d",
    "PHConv2d",
    "PHConv3d",
    "PHConvTranspose1d",
    "PHConvTranspose2d",
    "PHComposite",
    "PHConvTranspose3d",
    "PHGRU",
    "PHLSTM",
    "PHLayer",
    "PHMLinear",
    "PHMultiheadAttention",
    "PHRNN",
    "PHRNNBase",
    "ParameterReport",
    "align",
    "compose",
    "convert",
    "decompose",
    "complex_rule",
    "hamilton",
    "parameter_report",
    "to_dense",
]
