"""phnn: Parameterized Hypercomplex Neural Networks with PyTorch Lightning."""

__version__ = "0.1.0"
