"""Backbones built from a layer family, found by name through the registry.

Importing this package imports every model module so that its builders register.
"""

from phnn.models.config import NetworkConfig
from phnn.models.family import FAMILIES, LayerFamily, make_family
from phnn.models.registry import create_model, list_models, register_model

# Model modules: imported for their @register_model side effect (add sednet here).
from phnn.models import resnet, sednet, vgg  # noqa: E402,F401  isort: skip
from phnn.models.sednet import SEDnetConfig  # noqa: E402

__all__ = ["FAMILIES", "LayerFamily", "NetworkConfig", "SEDnetConfig", "create_model", "list_models", "make_family",
           "register_model"]
