"""A name → builder registry, in the spirit of timm: configs name a backbone, never import it.

    @register_model("resnet18")
    def resnet18(family: LayerFamily, in_channels: int, num_classes: int, **kwargs) -> nn.Module: ...

    model = create_model("resnet18", family="phc", n=3, in_channels=3, num_classes=10)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from torch import nn

from phnn.models.family import LayerFamily, make_family
from phnn.nn.convert import convert, to_dense


class ModelBuilder(Protocol):
    """What a registered model builder is called with: the layer family, input channels, classes, options."""
    def __call__(self, family: LayerFamily, in_channels: int, num_classes: int, **kwargs: Any) -> nn.Module: ...


_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a builder under `name`; a second builder with the same name is a programming error."""

    def decorator(builder: ModelBuilder) -> ModelBuilder:
        if name in _REGISTRY and _REGISTRY[name] is not builder:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name]!r})")
        _REGISTRY[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(_REGISTRY)


def create_model(
    name: str,
    *,
    family: str = "phc",
    n: int = 4,
    in_channels: int = 3,
    num_classes: int = 10,
    converted_n: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the backbone `name` from the layer family `family` (real | quaternion | phc with `n`).

    With `converted_n` the backbone is then made dense (`to_dense`) and converted at that n by
    `phnn.nn.convert` (learned algebra): every layer it handles whose sizes n divides becomes a PH layer,
    the others (e.g. a 3-channel stem at n = 4, a 10-class classifier at n = 3) stay dense. That is the
    network `phnn compress` trains; it differs from `family="phc"` in which layers stay dense, so a
    compressed checkpoint records it to rebuild exactly the same modules.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {list_models()}")
    for field, value in (("in_channels", in_channels), ("num_classes", num_classes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"create_model({name!r}): {field} must be a positive integer; got {value!r}")
    layer_family = make_family(family, n)
    with building(f"create_model({name!r}, family={family!r}, n={layer_family.n}, in_channels={in_channels})"):
        model = _REGISTRY[name](layer_family, in_channels, num_classes, **kwargs)
    if converted_n is None:
        return model
    return convert(to_dense(model), converted_n, init="random", copy=False).model


@contextmanager
def building(where: str) -> Iterator[None]:
    """Prefix a ValueError raised while building a part with where it was, e.g. `layer2.0.conv1`."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error
