"""Reflections of the first-order Ambisonic sound field: an exact training augmentation for localisation.

Mirroring a scene in the plane x = 0 (y = 0, z = 0) negates the X (Y, Z) Ambisonic component and nothing
else. In the features, W and every magnitude stay; that component's intensity changes sign and its phase
turns by π. In the targets, the classes stay and the x (y, z) coordinate of every DOA target changes sign.
So a reflected window is a new, equally valid example for the DOA head (and the same one for detection):
eight scenes for one when all three axes are used. The synthetic rooms are symmetric boxes, so reflected
positions stay inside the distribution. The reflection is exact for mic A alone. Mic B sits 20 cm from A
along +X, so with both mics only y and z keep the geometry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from phnn.data.l3das21.layout import CHANNELS_PER_MIC

Axis = Literal["x", "y", "z"]
AXES: tuple[Axis, ...] = ("x", "y", "z")
AXIS_CHANNEL = {"x": 3, "y": 1, "z": 2}  # ACN order within a mic: W, Y, Z, X
SIGN_CARRYING = ("phase", "intensity")


def check_reflections(axes: Sequence[str], mics: Sequence[str], kinds: Sequence[str]) -> tuple[Axis, ...]:
    """The validated axes; a `ValueError` names what does not fit."""
    unknown = [a for a in axes if a not in AXES]
    if unknown or len(set(axes)) != len(axes):
        raise ValueError(f"reflect={list(axes)}: expected distinct axes among {list(AXES)}")
    if "x" in axes and len(mics) > 1:
        raise ValueError(f"reflect={list(axes)} with mics {''.join(mics)}: mic B sits 20 cm from A along +X, so an "
                         f"x reflection is not a symmetry of the two-mic array; use reflect: [y, z]")
    if axes and not any(kind in kinds for kind in SIGN_CARRYING):
        raise ValueError(f"reflect={list(axes)} with magnitude features only: a reflection changes only the sign "
                         f"of the phase or intensity channels, so it would flip the DOA targets and not the input; "
                         f"set intensity: true (or phase: true), or reflect: []")
    return tuple(axes)  # type: ignore[return-value]


def reflect(features: torch.Tensor, doa: torch.Tensor | None, axis: Axis, kinds: Sequence[str], mics: int) -> None:
    """Mirror one window in place: ``features`` ``(C, F, T)`` in the official channel order (every mic's
    group of each kind, see ``features.group_channels``), ``doa`` ``(T, 3·S)`` laid out ``[x of S, y of S, z of S]``."""
    for group, kind in enumerate(kinds):
        if kind not in SIGN_CARRYING:
            continue
        for mic in range(mics):
            channel = (group * mics + mic) * CHANNELS_PER_MIC + AXIS_CHANNEL[axis]
            if kind == "intensity":
                features[channel].neg_()
            else:  # phase / π in (-1, 1]: add π, wrapped back into the same range
                features[channel] = torch.remainder(features[channel] + 2.0, 2.0) - 1.0
    if doa is not None:
        slots = doa.shape[-1] // 3
        index = AXES.index(axis)
        doa[:, index * slots : (index + 1) * slots].neg_()
