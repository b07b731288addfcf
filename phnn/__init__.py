"""phnn: Parameterized Hypercomplex Neural Networks with PyTorch Lightning."""

import os

__version__ = "0.1.0"

# torchmetrics imports onnxruntime whenever it is installed (the dev and export extras), and
# onnxruntime then opens a telemetry database under ~/.cache/Microsoft; phnn never wants that, on
# any command, `--help` included. A value the user set wins.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
