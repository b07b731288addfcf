"""Plausible ranges of the numbers phnn reads from options and files, checked where they are defined.

A `Bound` is a named interval; `check` returns the value or raises `UsageError` with one line that
names the option or field, the value, and the range it must lie in (NaN and infinities are never
in range). Each bound is defined once, beside the option or file field it governs; this module holds
only the mechanism and the bounds shared by several places.

    SPATIAL_THRESHOLD_M.check(args.spatial_threshold, "--spatial-threshold")
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from phnn.errors import UsageError


@dataclass(frozen=True)
class Bound:
    """``low`` ≤ value ≤ ``high`` (``low`` excluded with ``low_open``), finite; whole numbers with ``integer``."""

    what: str
    low: float
    high: float
    low_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        """E.g. ``a distance in metres in (0, 1000]``."""
        kind = "a whole number" if self.integer else self.what
        interval = f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        return f"{kind} in {interval}" if not self.integer else f"{self.what}: a whole number in {interval}"

    def contains(self, value: float) -> bool:
        """Whether ``value`` is finite, inside the interval and (for ``integer``) whole."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return False
        if not math.isfinite(number) or number > self.high or number < self.low:
            return False
        if self.low_open and number == self.low:
            return False
        return not self.integer or number == int(number)

    def check(self, value: float, name: str, where: str = "") -> float:
        """``value`` when it is in range, else a ``UsageError``: ``[where: ]name=value: expected ...``."""
        if not self.contains(value):
            prefix = f"{where}: " if where else ""
            raise UsageError(f"{prefix}{name}={value!r}: expected {self.describe()}")
        return value


#: clip lengths phnn renders or assumes, in seconds (a day: far beyond any L3DAS21 clip, still finite)
CLIP_SECONDS = Bound("a clip length in seconds", 0.0, 86400.0, low_open=True)
#: positions of sounds relative to the microphone, per coordinate (L3DAS21 rooms are a few metres wide)
COORDINATE_M = Bound("a coordinate in metres", -100.0, 100.0)
#: a distance within which a located detection matches its true sound
SPATIAL_THRESHOLD_M = Bound("a distance in metres", 0.0, 1000.0, low_open=True)
