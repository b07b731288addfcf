"""The L3DAS21 frame format and the DCASE event format: round trips, tolerated variants, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from phnn.data.l3das21.formats import (
    EventRow,
    FrameRow,
    file_format,
    read_event_file,
    read_frame_file,
    rows_to_slots,
    slots_to_rows,
    write_event_file,
    write_frame_file,
)
from phnn.data.l3das21.layout import CLASSES


def test_frame_rows_round_trip_with_and_without_coordinates(tmp_path: Path) -> None:
    located = [FrameRow(0, 3, (1.25, -0.5, 0.0)), FrameRow(7, 13, (-2.0, 1.5, 1.0))]
    write_frame_file(tmp_path / "a.csv", located)
    assert (tmp_path / "a.csv").read_text().splitlines()[0] == "0,3,1.2500,-0.5000,0.0000"  # no header
    assert read_frame_file(tmp_path / "a.csv") == located
    write_frame_file(tmp_path / "b.csv", [FrameRow(2, 1)])
    assert read_frame_file(tmp_path / "b.csv") == [FrameRow(2, 1)]
    (tmp_path / "c.csv").write_text("3.0,2.0\n\n4,2\n")  # numpy/pandas floats and blank lines
    assert read_frame_file(tmp_path / "c.csv") == [FrameRow(3, 2), FrameRow(4, 2)]
    assert file_format(tmp_path / "c.csv") == "frames"


def test_event_rows_round_trip_header_optional(tmp_path: Path) -> None:
    events = [EventRow("clip.wav", 0.3, 1.25, CLASSES[2], 0.8125), EventRow("clip.wav", 2.0, 2.5, CLASSES[13])]
    write_event_file(tmp_path / "e.csv", events)
    assert (tmp_path / "e.csv").read_text().splitlines()[0] == "filename,onset,offset,event_label,confidence"
    assert read_event_file(tmp_path / "e.csv") == events
    (tmp_path / "f.csv").write_text(f"clip.wav\t0.5\t1.0\t{CLASSES[0]}\n")  # tab-separated, no header
    assert read_event_file(tmp_path / "f.csv") == [EventRow("clip.wav", 0.5, 1.0, CLASSES[0])]
    assert file_format(tmp_path / "e.csv") == file_format(tmp_path / "f.csv") == "events"


@pytest.mark.parametrize(("reader", "text", "message"), [
    (read_frame_file, "1,2\n3\n", r"line 2: 1 fields \['3'\]; expected frame,class or frame,class,x,y,z"),
    (read_frame_file, "1,14\n", r"line 1: field class='14' must be a whole number >= 0 below 14"),
    (read_frame_file, "1,2\n1,2,0,0,0\n", r"line 2: 5 fields, but earlier lines have 2"),
    (read_frame_file, "1,2,0,nan,0\n", r"line 1: field y='nan' must be finite"),
    (read_event_file, "a.wav,1.0,0.5,Knock\n", r"line 1: onset=1.0, offset=0.5"),
    (read_event_file, "a.wav,0,1,Dog\n", r"line 1: field event_label='Dog' is not a class"),
])
def test_errors_name_file_line_and_field(tmp_path: Path, reader, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"bad\.csv, " + message):
        reader(path)


def test_slots_hold_every_sound_of_a_class_in_row_order() -> None:
    rows = [FrameRow(1, 4, (0.0, 0.0, 0.0)), FrameRow(1, 4, (1.0, 0.0, 0.0)), FrameRow(1, 4, (2.0, 0.0, 0.0)),
            FrameRow(1, 4, (3.0, 0.0, 0.0)), FrameRow(0, 0, (0.5, 0.5, 0.5))]
    active, xyz = rows_to_slots(rows, 3, 14)
    assert active.shape == (3, 14, 4) and active[1, 4].all() and active.sum() == 5  # 4 slots: the most in a cell
    assert xyz is not None and xyz[1, 4, :, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    back = slots_to_rows(active.reshape(3, -1), 14, xyz.reshape(3, -1, 3))
    assert sorted(back, key=lambda r: (r.frame, r.xyz)) == sorted(rows, key=lambda r: (r.frame, r.xyz))
    with pytest.raises(ValueError, match="frame 5 is past the clip's 3 label frames"):
        rows_to_slots([FrameRow(5, 0)], 3, 14, source="x.csv")
    assert not rows_to_slots([], 2, 14)[0].any() and rows_to_slots([], 2, 14)[1] is None
    assert np.array_equal(rows_to_slots([FrameRow(1, 2)], 2, 14)[0].nonzero(), ([1], [2], [0]))
