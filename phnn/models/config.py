"""`NetworkConfig`: a network's options as one object that a task takes instead of copying them.

    config = SEDnetConfig(family="real", widths=(8, 16, 32, 32))
    network = config.build(in_channels=4, num_classes=14)

A subclass is a frozen dataclass whose class attribute `name` is a registry name and whose fields are
`family`, `n` and the options of that builder. jsonargparse composes such an object field by field across
config files (a plain dict would be replaced whole), and `as_plain` / `of` turn it into and back from the
plain data a checkpoint holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from torch import nn

from phnn.models.family import FamilyName
from phnn.models.registry import create_model

C = TypeVar("C", bound="NetworkConfig")


@dataclass(frozen=True)
class NetworkConfig:
    """Layer family and builder options of one registered network (see the module doc)."""

    name: ClassVar[str] = ""

    family: FamilyName = "phc"
    n: int = 4
    #: the network of `family` made dense and converted at this n (`create_model`'s `converted_n`: what
    #: `phnn compress` trains); None: the family's own network
    converted_n: int | None = None

    def options(self) -> dict[str, Any]:
        """The builder's keyword arguments: every field but `family`, `n` and `converted_n`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("family", "n", "converted_n")}

    def build(self, in_channels: int, num_classes: int, **task_parts: Any) -> nn.Module:
        """The network, from the registry; `task_parts` are what the task decides (e.g. SED's `doa`)."""
        return create_model(self.name, family=self.family, n=self.n, in_channels=in_channels,
                            num_classes=num_classes, converted_n=self.converted_n, **self.options(), **task_parts)

    def as_plain(self) -> dict[str, Any]:
        """The fields as plain data (tuples as lists), what a checkpoint's hyperparameters hold."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def of(cls: type[C], value: C | Mapping[str, Any] | None) -> C:
        """`value` as a config: the object itself, a mapping of its fields, or None for the defaults."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"model: expected the options of {cls.name} (a mapping); got {value!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(f"model: unknown option(s) {unknown} of {cls.name}; expected some of {sorted(fields)}")
        return cls(**{key: tuple(item) if isinstance(item, list) else item for key, item in value.items()})
