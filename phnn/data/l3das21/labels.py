"""L3DAS21 label CSVs → frame targets on the 100 ms grid, in one of two named conventions.

* ``T_label = ceil(num_samples / 3200)`` at 32 kHz (``ceil(duration / 0.1)``): a trailing partial
  frame still gets a label frame, so the features (8 STFT frames per label frame, see
  ``features.py``) cover every sample.
* ``label_grid`` says which frames a sound ``Start`` … ``End`` covers (inclusive, clipped to the clip):

  - ``official`` (default): the official ``csv_to_matrix_task2``, bit for bit: ``t`` is quantised to
    ``q = round(t / 0.1) · 0.1`` and mapped to ``int(np.interp(q, (0, dur), (0, N − 1)))`` with the
    clip's own duration ``dur`` and ``N = int(dur / 0.1)`` (the official function is called with
    ``dur=int(file_size)``; 60 s clips give N = 600). The interp scales by (N − 1) / N, so a quantised
    ``k ≥ 1`` lands on frame ``k − 1`` (and 0 on 0): the official targets lead ``round(t / 0.1)``
    by one frame. It is the default because models trained here are scored against the official
    targets (and published numbers were): a model must be trained on the grid it is scored on.
  - ``nearest``: ``round(t / 0.1)`` (Python's round of the float quotient: 0.25 s → 2, 0.35 s → 3
    since 0.35 / 0.1 = 3.4999999999999996, 1.45 s → 14); the frame nearest in time.
  An event that starts at or after the clip's end is a ``DataFileError`` naming the file and row
  (such a label belongs to another clip, or the clip is truncated): never dropped silently.
  Changes that keep the data usable are counted warnings (`phnn.notices`), each naming file and row:
  an event that ends past the clip's end is clipped (``clipped_events``), a row repeating an earlier
  one exactly is dropped (``duplicate_label_rows``), a ``File`` column naming another clip
  (``label_file_names_other_clip``) and an event with Start = End (``zero_length_events``) are
  kept and said. Coordinates beyond ±100 m (`phnn.bounds.COORDINATE_M`) are an error.

* Slot: per frame, the number of sounds of the same class already active there (CSV row order).
* SED target ``(T_label, 42)``: column ``3·class + slot``.
* DOA target ``(T_label, 126)``: columns ``[x of the 42 slots, y of the 42, z of the 42]``, metres / 2
  (so within [-1, 1] for the L3DAS21 room), zero where the slot is inactive.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from phnn import notices
from phnn.bounds import COORDINATE_M
from phnn.data.l3das21.layout import (
    CLASS_INDEX,
    CLASSES,
    LABEL_FRAME_SECONDS,
    LABEL_FRAMES_PER_SECOND,
    MAX_SLOTS,
    NUM_CLASSES,
)
from phnn.errors import DataFileError

REQUIRED_COLUMNS: tuple[str, ...] = ("Start", "End", "Class", "X", "Y", "Z")
DOA_SCALE_METRES = 2.0
LabelGrid = Literal["official", "nearest"]
LABEL_GRIDS: tuple[str, ...] = ("official", "nearest")


@dataclass(frozen=True)
class Event:
    """One labelled sound: seconds, class index and position (metres, relative to mic A)."""

    start: float
    end: float
    class_index: int
    x: float
    y: float
    z: float


def num_label_frames(num_samples: int, sample_rate: int) -> int:
    """Label frames for a clip: ``ceil(duration / 0.1)`` (at least one)."""
    hop = sample_rate * LABEL_FRAME_SECONDS
    return max(1, math.ceil(num_samples / hop - 1e-9))


def check_label_grid(label_grid: str) -> None:
    """Raise a ValueError naming the value unless `label_grid` is one of the known label grids."""
    if label_grid not in LABEL_GRIDS:
        raise ValueError(f"label_grid={label_grid!r}: expected one of {list(LABEL_GRIDS)}")


def seconds_to_frame(seconds: float) -> int:
    """``round(seconds / 0.1)`` (the ``nearest`` grid: banker's rounding on the float quotient)."""
    return round(seconds / LABEL_FRAME_SECONDS)


def official_frame(seconds: float, duration: float) -> int:
    """The official ``csv_to_matrix_task2`` frame of a time, for a clip of ``duration`` seconds."""
    frames = max(1, int(duration / LABEL_FRAME_SECONDS))
    quantised = round(float(seconds) / LABEL_FRAME_SECONDS) * LABEL_FRAME_SECONDS
    return int(np.interp(quantised, (0, duration), (0, frames - 1)))


def event_frames(start: float, end: float, label_grid: LabelGrid, duration: float) -> tuple[int, int]:
    """First and last label frame (inclusive, not yet clipped to the clip) of a sound on ``label_grid``."""
    check_label_grid(label_grid)
    if label_grid == "official":
        return official_frame(start, duration), official_frame(end, duration)
    return seconds_to_frame(start), seconds_to_frame(end)


def frame_seconds(first: int, last: int, label_grid: LabelGrid, duration: float) -> tuple[float, float]:
    """Onset and offset (s) of a run of active frames: the times ``label_grid`` maps onto its ends.

    ``nearest``: frame f ↔ f / 10 s. ``official``: frame f ↔ (f + 1) / 10 s (a quantised k ≥ 1 lands
    on k − 1), except an onset on frame 0, which is 0 s (0 s and 0.1 s both land there). The offset
    is at most ``duration``. Dividing by 10 keeps whole tenths exact (3 / 10 == 0.3).
    """
    check_label_grid(label_grid)
    shift = 1 if label_grid == "official" else 0
    onset = 0.0 if first == 0 else (first + shift) / LABEL_FRAMES_PER_SECOND
    offset = min((last + shift) / LABEL_FRAMES_PER_SECOND, duration)
    return min(onset, offset), offset


def read_events(path: str | Path) -> list[Event]:
    """Read a label CSV by header name; other columns are ignored. Errors name file, row and field."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {missing} in the header {header}; expected {list(REQUIRED_COLUMNS)}"
            )
        reader.fieldnames = header
        events: list[Event] = []
        first_row: dict[Event, int] = {}
        other_clip = False
        for row_number, row in enumerate(reader, start=1):
            event = _parse_row(path, row_number, row)
            other_clip = other_clip or _names_other_clip(path, row_number, row.get("File"))
            if event in first_row:
                notices.warn("duplicate_label_rows", f"{path}, row {row_number}: repeats row {first_row[event]} "
                                                     "exactly; dropped (a sound is labelled once)")
                continue
            first_row[event] = row_number
            events.append(event)
    return events


def clip_of_label(path: Path) -> str:
    """The clip a label file belongs to: ``label_split0_ov1_1.csv`` → ``split0_ov1_1``."""
    return path.stem.removeprefix("label_")


def _names_other_clip(path: Path, row_number: int, value: str | None) -> bool:
    """Whether a ``File`` value names another clip than the label file's; said (counted) by the caller's
    first such row only, not refused."""
    name = Path((value or "").strip()).name
    stem = Path(name).stem if name.lower().endswith(".wav") else name
    stem = stem[:-2] if stem.endswith(("_A", "_B")) else stem
    if name and stem != clip_of_label(path):
        notices.warn("label_file_names_other_clip",
                     f"{path}, row {row_number}: field File={value!r} names another clip than "
                     f"{clip_of_label(path)!r}; its rows are used for {clip_of_label(path)!r}")
        return True
    return False


def parse_number(text: str, where: str, field: str) -> float:
    """A finite float, or a ValueError naming where, the field and the text."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: field {field}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{where}: field {field}={text!r} must be finite")
    return value


def _parse_row(path: Path, row_number: int, row: dict[str, str | None]) -> Event:
    where = f"{path}, row {row_number} (line {row_number + 1})"
    numbers = {name: parse_number((row.get(name) or "").strip(), where, name)
               for name in ("Start", "End", "X", "Y", "Z")}
    label = (row.get("Class") or "").strip()
    if label not in CLASS_INDEX:
        raise ValueError(f"{where}: field Class={label!r} is not an L3DAS21 class; expected one of {list(CLASSES)}")
    if numbers["Start"] < 0:
        raise ValueError(f"{where}: field Start={numbers['Start']} must be >= 0")
    if numbers["End"] < numbers["Start"]:
        raise ValueError(f"{where}: field End={numbers['End']} is before Start={numbers['Start']}")
    for name in "XYZ":
        COORDINATE_M.check(numbers[name], f"field {name}", where)
    return Event(numbers["Start"], numbers["End"], CLASS_INDEX[label], numbers["X"], numbers["Y"], numbers["Z"])


def events_to_targets(events: list[Event], num_frames: int, source: str | Path = "<events>",
                      label_grid: LabelGrid = "official", duration: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """SED ``(num_frames, 42)`` and DOA ``(num_frames, 126)`` float32 targets (see the module docstring).

    ``duration``: the clip's length in seconds (default ``num_frames · 0.1``), used by the official grid.
    """
    duration = num_frames * LABEL_FRAME_SECONDS if duration is None else duration
    slots = NUM_CLASSES * MAX_SLOTS
    sed = np.zeros((num_frames, slots), dtype=np.float32)
    doa = np.zeros((num_frames, 3 * slots), dtype=np.float32)
    position = np.empty(3, dtype=np.float32)
    for row_number, event in enumerate(events, start=1):
        if event.start >= duration:
            raise DataFileError(
                f"{source}, row {row_number}: event {CLASSES[event.class_index]} starts at Start={event.start} s, "
                f"at or past the end of its clip ({duration:g} s); fix the label file or use the clip it belongs to")
        first, last = event_frames(event.start, event.end, label_grid, duration)
        first, last = min(first, num_frames - 1), min(last, num_frames - 1)
        _say_changes(source, row_number, event, duration, first, last)
        position[:] = (event.x, event.y, event.z)
        position /= DOA_SCALE_METRES
        for frame in range(first, last + 1):
            base = event.class_index * MAX_SLOTS
            active = int(sed[frame, base : base + MAX_SLOTS].sum())
            if active >= MAX_SLOTS:
                raise ValueError(
                    f"{source}, row {row_number}: more than {MAX_SLOTS} simultaneous "
                    f"{CLASSES[event.class_index]} sounds at frame {frame}; the targets hold {MAX_SLOTS}"
                )
            column = base + active
            sed[frame, column] = 1.0
            doa[frame, column :: slots] = position
    return sed, doa


def _say_changes(source: str | Path, row_number: int, event: Event, duration: float, first: int, last: int) -> None:
    """Counted warnings for an event that is clipped at the clip's end or has no length."""
    name = CLASSES[event.class_index]
    if event.end > duration + 1e-9:
        notices.warn("clipped_events", f"{source}, row {row_number}: event {name} ends at End={event.end} s, past "
                                       f"the end of its clip ({duration:g} s); clipped to frames {first}-{last}")
    if event.end == event.start:
        notices.warn("zero_length_events", f"{source}, row {row_number}: event {name} has no length "
                                           f"(Start = End = {event.start} s); it marks frame {first} only")


def load_targets(path: str | Path, num_frames: int, label_grid: LabelGrid = "official",
                 duration: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a label CSV and quantise it on ``label_grid`` for a clip of ``num_frames`` label frames."""
    return events_to_targets(read_events(path), num_frames, path, label_grid, duration)
