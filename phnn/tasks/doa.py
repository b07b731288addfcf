"""`DOAHead`: the localisation part of SELD as one object, present (SELD) or absent (plain SED).

It holds what the task does with the DOA outputs: the loss (kind, weight, mask), the weight of the
detection loss beside it, the smoothing of reported positions and the spatial threshold of the SELD
metrics. The DOA branch's network options (`doa_shared_blocks`, `doa_widths`, `doa_pooling`) are network
options and live in `SEDnetConfig`.

DOA outputs and targets are `(…, 3 · S)`: `[x of the S slots, y of the S, z of the S]` in metres / 2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from phnn.data.l3das21.labels import DOA_SCALE_METRES

DOALoss = Literal["mse", "distance"]
Smoothing = Literal["none", "event_median"]


def event_median_positions(detections: Tensor, positions: Tensor) -> Tensor:
    """Positions (T, S, 3) where each run of consecutive detected frames of a slot (detections (T, S)) holds
    the run's median position. L3DAS21 sounds do not move during an event, and the median drops the
    frames where the DOA output wanders (at onsets and offsets, or with a sign flipped)."""
    smoothed = positions.clone()
    active = detections.bool()
    for slot in torch.nonzero(active.any(0)).flatten().tolist():
        edges = torch.diff(active[:, slot].int(), prepend=active.new_zeros(1, dtype=torch.int),
                           append=active.new_zeros(1, dtype=torch.int))
        starts, stops = torch.nonzero(edges == 1).flatten().tolist(), torch.nonzero(edges == -1).flatten().tolist()
        for start, stop in zip(starts, stops):
            smoothed[start:stop, slot] = positions[start:stop, slot].median(0).values
    return smoothed


@dataclass(frozen=True)
class DOAHead:
    """Localisation settings of `SoundEventDetector(doa=...)`; defaults are the official baseline.

    Args:
        loss: `mse` (the baseline) or `distance`: the Euclidean distance per slot, the quantity the
            localisation error averages (its minimiser is the median position, not the mean).
        loss_weight: weight of the DOA loss (baseline: 5).
        sed_loss_weight: weight of the detection BCE beside it (baseline: 1).
        loss_mask: average the DOA loss over active target slots only (the baseline averages over every
            slot, pulling inactive slots towards the origin).
        smoothing: `event_median` gives each run of detected frames of a class slot its median position
            (sounds do not move during an event), in test and predict alike; `none`: per frame.
        spatial_threshold: metres within which a detection counts as localised (2 m in L3DAS21).
    """

    loss: DOALoss = "mse"
    loss_weight: float = 5.0
    sed_loss_weight: float = 1.0
    loss_mask: bool = False
    smoothing: Smoothing = "none"
    spatial_threshold: float = 2.0

    def __post_init__(self) -> None:
        for name, allowed in (("loss", ("mse", "distance")), ("smoothing", ("none", "event_median"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"doa.{name}={getattr(self, name)!r}: expected one of {list(allowed)}")
        if min(self.sed_loss_weight, self.loss_weight) < 0 or not self.spatial_threshold > 0:
            raise ValueError(f"doa: loss weights must be >= 0 and spatial_threshold > 0; got sed_loss_weight="
                             f"{self.sed_loss_weight}, loss_weight={self.loss_weight}, "
                             f"spatial_threshold={self.spatial_threshold}")

    @classmethod
    def of(cls, value: DOAHead | Mapping[str, Any] | None) -> DOAHead | None:
        """`value` as a DOAHead: the object, a mapping of its fields (a checkpoint's plain data), or None."""
        if value is None or isinstance(value, cls):
            return value
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(value, Mapping) or set(value) - fields:
            raise ValueError(f"doa: expected null or a mapping of some of {sorted(fields)}; got {value!r}")
        return cls(**value)

    def as_plain(self) -> dict[str, Any]:
        """The fields as plain data, what a checkpoint's hyperparameters hold."""
        return dataclasses.asdict(self)

    def loss_of(self, doa: Tensor, doa_targets: Tensor, targets: Tensor) -> Tensor:
        """MSE or Euclidean distance of the DOA outputs, over every slot or the active target slots only."""
        if doa.shape != doa_targets.shape:
            raise ValueError(f"SoundEventDetector: DOA output {tuple(doa.shape)} does not match DOA targets "
                             f"{tuple(doa_targets.shape)} (expected 3 coordinates per class slot)")
        if self.loss == "distance":
            # Euclidean distance per active slot, the quantity the localisation error averages
            error = (doa - doa_targets).unflatten(-1, (3, -1))  # [x of S, y of S, z of S]
            distance = torch.linalg.vector_norm(error, dim=-2)  # its gradient at 0 is 0, not NaN
            active = targets.bool() if self.loss_mask else torch.ones_like(targets, dtype=torch.bool)
            return (distance * active).sum() / active.sum().clamp(min=1)
        if not self.loss_mask:
            return F.mse_loss(doa, doa_targets)
        active = targets.bool().repeat(1, 1, 3)  # the layout is [x of S, y of S, z of S]
        squared = (doa - doa_targets).square() * active
        return squared.sum() / active.sum().clamp(min=1)

    @staticmethod
    def positions(doa: Tensor) -> Tensor:
        """DOA outputs or targets (…, 3 · S) `[x of S, y of S, z of S]` / 2 m → metres (…, S, 3)."""
        return doa.unflatten(-1, (3, -1)).transpose(-1, -2) * DOA_SCALE_METRES

    def located(self, detections: Tensor, doa: Tensor) -> Tensor:
        """Positions in metres (T, S, 3) that evaluation and prediction report for a clip's DOA outputs."""
        positions = self.positions(doa)
        return event_median_positions(detections, positions) if self.smoothing == "event_median" else positions
