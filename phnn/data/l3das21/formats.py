"""The two prediction file formats, read and written in one place (the prediction writer and `phnn score`).

L3DAS21 frame format (the Task 2 submission files): one row per active frame and sound, no header::

    frame,class            class-only (phnn's SED predictions)
    frame,class,x,y,z      with coordinates in metres (relative to mic A)

``frame`` is the 100 ms label frame (an integer; ``3.0`` is accepted, as written by numpy/pandas),
``class`` the index in `CLASSES`.

DCASE event format: one row per event, times in seconds, an optional header line::

    filename,onset,offset,event_label[,confidence]
    filename,onset,offset,event_label,confidence,x,y,z,azimuth,elevation     with localisation

where x, y, z are the event's mean position in metres over its frames and azimuth / elevation the
direction of that position in degrees (azimuth = atan2(y, x), counter-clockwise from the front
X axis towards Y on the left; elevation = atan2(z, √(x² + y²)), up positive; the Ambisonics axes).

Readers raise ``ValueError`` naming the file, the line, the field and what was expected.
Writers go through `phnn.io.atomic_open` (temporary file + rename).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phnn.data.l3das21.labels import LabelGrid, frame_seconds, parse_number
from phnn.data.l3das21.layout import CLASSES, MAX_SLOTS, NUM_CLASSES
from phnn.io import atomic_open

EVENT_COLUMNS: tuple[str, ...] = ("filename", "onset", "offset", "event_label", "confidence")
POSITION_COLUMNS: tuple[str, ...] = ("x", "y", "z", "azimuth", "elevation")


@dataclass(frozen=True)
class FrameRow:
    """One active sound in one 100 ms frame; ``xyz`` in metres, or None for class-only files."""

    frame: int
    class_index: int
    xyz: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class EventRow:
    """One DCASE event: seconds, the class name, the detector's confidence and mean position (metres) when given."""

    filename: str
    onset: float
    offset: float
    label: str
    confidence: float | None = None
    xyz: tuple[float, float, float] | None = None


def direction_degrees(xyz: Sequence[float]) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of a position seen from the origin (mic A); see the module docstring."""
    x, y, z = xyz
    return math.degrees(math.atan2(y, x)), math.degrees(math.atan2(z, math.hypot(x, y)))


def _index(text: str, where: str, field: str, upper: int | None) -> int:
    value = parse_number(text, where, field)
    if value != int(value) or value < 0 or (upper is not None and value >= upper):
        bound = f" below {upper}" if upper is not None else ""
        raise ValueError(f"{where}: field {field}={text!r} must be a whole number >= 0{bound}")
    return int(value)


def _rows(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(line number, stripped fields) of the non-empty lines of a comma- or tab-separated file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read ({error})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, [field.strip() for field in next(csv.reader([line], delimiter="\t" if "\t" in line else ","))]


def read_frame_file(path: str | Path, num_classes: int = len(CLASSES)) -> list[FrameRow]:
    """Rows of an L3DAS21 frame file (``frame,class`` or ``frame,class,x,y,z``, no header)."""
    path = Path(path)
    rows = []
    width = None
    for number, fields in _rows(path):
        where = f"{path}, line {number}"
        if len(fields) not in (2, 5):
            raise ValueError(f"{where}: {len(fields)} fields {fields}; expected frame,class or frame,class,x,y,z")
        if width is not None and len(fields) != width:
            raise ValueError(f"{where}: {len(fields)} fields, but earlier lines have {width}; one file, one layout")
        width = len(fields)
        frame = _index(fields[0], where, "frame", None)
        class_index = _index(fields[1], where, "class", num_classes)
        xyz = None if width == 2 else tuple(parse_number(v, where, n) for v, n in zip(fields[2:], "xyz"))
        rows.append(FrameRow(frame, class_index, xyz))  # type: ignore[arg-type]
    return rows


def write_frame_file(path: str | Path, rows: Iterable[FrameRow]) -> None:
    """Write frame rows (no header; coordinates with 4 decimals, i.e. 0.1 mm)."""
    with atomic_open(Path(path), "w", newline="") as file:
        writer = csv.writer(file)
        for row in rows:
            writer.writerow([row.frame, row.class_index] + ([] if row.xyz is None else [f"{v:.4f}" for v in row.xyz]))


def read_event_file(path: str | Path, class_names: Sequence[str] = CLASSES) -> list[EventRow]:
    """Events of a DCASE event file (``filename,onset,offset,event_label[,confidence]``, header optional)."""
    path = Path(path)
    known = set(class_names)
    events = []
    for number, fields in _rows(path):
        where = f"{path}, line {number}"
        if [f.lower() for f in fields[:4]] == list(EVENT_COLUMNS[:4]):
            continue
        if len(fields) not in (4, 5, 10):
            raise ValueError(f"{where}: {len(fields)} fields {fields}; expected "
                             f"filename,onset,offset,event_label[,confidence[,x,y,z,azimuth,elevation]]")
        onset, offset = parse_number(fields[1], where, "onset"), parse_number(fields[2], where, "offset")
        if onset < 0 or offset < onset:
            raise ValueError(f"{where}: onset={onset}, offset={offset}; expected 0 <= onset <= offset (seconds)")
        if fields[3] not in known:
            raise ValueError(f"{where}: field event_label={fields[3]!r} is not a class; "
                             f"expected one of {list(class_names)}")
        confidence = parse_number(fields[4], where, "confidence") if len(fields) >= 5 and fields[4] else None
        xyz = tuple(parse_number(v, where, n) for v, n in zip(fields[5:8], "xyz")) if len(fields) == 10 else None
        events.append(EventRow(fields[0], onset, offset, fields[3], confidence, xyz))  # type: ignore[arg-type]
    return events


def write_event_file(path: str | Path, events: Iterable[EventRow], located: bool | None = None) -> None:
    """Write events with the header line (times with 3 decimals, confidence with 4); with the position
    columns (metres with 4 decimals, degrees with 2) when `located`, by default when an event has a position."""
    events = list(events)
    located = any(event.xyz is not None for event in events) if located is None else located
    with atomic_open(Path(path), "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(EVENT_COLUMNS + (POSITION_COLUMNS if located else ()))
        for event in events:
            confidence = "" if event.confidence is None else f"{event.confidence:.4f}"
            row = [event.filename, f"{event.onset:.3f}", f"{event.offset:.3f}", event.label, confidence]
            if event.xyz is not None:
                row += [f"{v:.4f}" for v in event.xyz] + [f"{a:.2f}" for a in direction_degrees(event.xyz)]
            elif located:
                row += [""] * len(POSITION_COLUMNS)
            writer.writerow(row)


def file_format(path: str | Path) -> str:
    """``"frames"`` or ``"events"``: what the first non-empty line of a prediction file looks like."""
    path = Path(path)
    for _number, fields in _rows(path):
        try:
            float(fields[0])
        except ValueError:
            return "events"
        return "frames"
    return "frames"  # an empty file: no detections in either format


def rows_to_slots(rows: Sequence[FrameRow], num_frames: int, num_classes: int = NUM_CLASSES, min_slots: int = MAX_SLOTS,
                  source: str | Path = "<rows>") -> tuple[np.ndarray, np.ndarray | None]:
    """Frame rows → activity ``(num_frames, C, S)`` bool and coordinates ``(num_frames, C, S, 3)`` (or None).

    Sounds of one class in one frame take slots in row order; S = max(min_slots, most such sounds).
    A row past ``num_frames`` is a ValueError naming it.
    """
    counts: dict[tuple[int, int], int] = {}
    for row in rows:
        if row.frame >= num_frames:
            raise ValueError(f"{source}: frame {row.frame} is past the clip's {num_frames} label frames")
        counts[row.frame, row.class_index] = counts.get((row.frame, row.class_index), 0) + 1
    slots = max([min_slots, *counts.values()])
    active = np.zeros((num_frames, num_classes, slots), dtype=bool)
    located = bool(rows) and rows[0].xyz is not None
    xyz = np.zeros((num_frames, num_classes, slots, 3)) if located else None
    used: dict[tuple[int, int], int] = {}
    for row in rows:
        slot = used.get((row.frame, row.class_index), 0)
        used[row.frame, row.class_index] = slot + 1
        active[row.frame, row.class_index, slot] = True
        if xyz is not None and row.xyz is not None:
            xyz[row.frame, row.class_index, slot] = row.xyz
    return active, xyz


def slots_to_rows(detections: np.ndarray, num_classes: int = len(CLASSES),
                  xyz: np.ndarray | None = None) -> list[FrameRow]:
    """Detections ``(T, C·S)`` (and coordinates ``(T, C·S, 3)`` in metres) → frame rows, by frame then column."""
    slots = detections.shape[1] // num_classes
    return [FrameRow(int(frame), int(column // slots),
                     None if xyz is None else tuple(float(v) for v in xyz[frame, column]))  # type: ignore[arg-type]
            for frame, column in zip(*np.nonzero(detections))]


def find_runs(detections: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of active frames per column (class slot) → (column, first_frame, last_frame), by onset."""
    active = np.pad(detections.astype(bool), ((1, 1), (0, 0)))
    runs = []
    for column in np.flatnonzero(active.any(0)):
        edges = np.flatnonzero(np.diff(active[:, column].astype(np.int8)))
        runs += [(int(column), int(start), int(stop) - 1) for start, stop in zip(edges[::2], edges[1::2])]
    return runs


def _event_runs(scores: np.ndarray, detections: np.ndarray, num_classes: int) -> list[tuple[int, int, int, float, int]]:
    """Runs of active frames per class slot → (class, first_frame, last_frame, mean score, column), by onset."""
    slots = detections.shape[1] // num_classes
    events = [(column // slots, first, last, float(scores[first : last + 1, column].mean()), column)
              for column, first, last in find_runs(detections)]
    return sorted(events, key=lambda event: (event[1], event[0], event[2]))


def find_events(scores: np.ndarray, detections: np.ndarray, num_classes: int) -> list[tuple[int, int, int, float]]:
    """Runs of active frames per class slot → (class, first_frame, last_frame, mean score), by onset."""
    return [event[:4] for event in _event_runs(scores, detections, num_classes)]


def detected_events(scores: np.ndarray, detections: np.ndarray, duration: float, label_grid: LabelGrid = "official",
                    num_classes: int = len(CLASSES)) -> list[tuple[float, float, int, float]]:
    """Runs of detected frames → ``(onset s, offset s, class, confidence)``, the times where ``label_grid``
    maps the run's ends (`phnn.data.l3das21.labels.frame_seconds`), the confidence the mean score."""
    return [(*frame_seconds(first, last, label_grid, duration), cls, confidence)
            for cls, first, last, confidence in find_events(scores, detections, num_classes)]


def detections_to_events(scores: np.ndarray, detections: np.ndarray, filename: str, duration: float,
                         label_grid: LabelGrid = "official", class_names: Sequence[str] = CLASSES,
                         xyz: np.ndarray | None = None) -> list[EventRow]:
    """`detected_events` as DCASE event rows of ``filename``; with positions ``xyz`` ``(T, C·S, 3)`` in
    metres, each event's position is the mean over its frames."""
    rows = []
    for cls, first, last, confidence, column in _event_runs(scores, detections, len(class_names)):
        onset, offset = frame_seconds(first, last, label_grid, duration)
        position = None if xyz is None else tuple(float(v) for v in xyz[first : last + 1, column].mean(0))
        rows.append(EventRow(filename, onset, offset, class_names[cls], confidence, position))  # type: ignore[arg-type]
    return rows
