"""SEDPredictionWriter: CSV contents, frame format, PNG, atomic replacement, failures."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import phnn.io
from phnn.callbacks import SEDPredictionWriter
from phnn.data.l3das21.layout import CLASSES
from phnn.io import TEMPORARY_GLOB


def fake_prediction(stem: str = "clip1") -> dict:
    """20 frames (2 s): class 2 slot 0 frames 3–6, class 2 slot 1 frame 5, class 13 slot 0 frames 18–19."""
    scores = torch.full((20, 42), 0.1)
    detections = torch.zeros(20, 42, dtype=torch.bool)
    for column, frames, value in ((6, range(3, 7), 0.8), (7, range(5, 6), 0.6), (39, range(18, 20), 0.9)):
        for frame in frames:
            detections[frame, column] = True
            scores[frame, column] = value
    scores[4, 6] = 1.0
    return {"stem": stem, "path": f"/data/{stem}_A.wav", "scores": scores, "detections": detections,
            "duration": 1.95, "error": None}


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


@pytest.mark.parametrize("grid, times", [
    # official: frame f ↔ (f + 1) / 10 s (quantised k ≥ 1 lands on frame k − 1); nearest: f ↔ f / 10 s
    ("official", [("0.400", "0.700"), ("0.600", "0.600"), ("1.900", "1.950")]),  # offset clipped to the duration
    ("nearest", [("0.300", "0.600"), ("0.500", "0.500"), ("1.800", "1.900")]),
])
def test_event_and_frame_csv(tmp_path: Path, grid: str, times: list[tuple[str, str]]) -> None:
    writer = SEDPredictionWriter(tmp_path / "out", plot=False)
    writer.write_on_batch_end(None, None, [{**fake_prediction(), "label_grid": grid}], [0], None, 0, 0)
    rows = read_csv(tmp_path / "out" / "clip1.csv")
    assert rows[0] == ["filename", "onset", "offset", "event_label", "confidence"]
    assert rows[1:] == [
        ["clip1_A.wav", *times[0], CLASSES[2], f"{(0.8 * 3 + 1.0) / 4:.4f}"],
        ["clip1_A.wav", *times[1], CLASSES[2], "0.6000"],
        ["clip1_A.wav", *times[2], CLASSES[13], "0.9000"],
    ]
    frames = read_csv(tmp_path / "out" / "l3das21_task2" / "clip1.csv")
    # the official submission rows: no header, class index (x, y, z follow for a localising model)
    assert frames == [["3", "2"], ["4", "2"], ["5", "2"], ["5", "2"], ["6", "2"], ["18", "13"], ["19", "13"]]
    assert writer.failures == []
    assert not list((tmp_path / "out").glob(TEMPORARY_GLOB))


def test_png_is_written(tmp_path: Path) -> None:
    writer = SEDPredictionWriter(tmp_path, plot=True)
    paths = writer.write_item(fake_prediction())
    png = tmp_path / "clip1.png"
    assert png in paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_error_items_are_recorded_and_skipped(tmp_path: Path) -> None:
    writer = SEDPredictionWriter(tmp_path, plot=False)
    bad = {"stem": "broken", "path": "/data/broken_A.wav", "error": "not a wav file"}
    named = {"stem": "x", "path": "/data/x_A.wav", "error": "/data/x_A.wav: 3 channels, expected 4"}
    writer.write_on_batch_end(None, None, [bad, fake_prediction("good"), named], [0, 1, 2], None, 0, 0)
    assert writer.failures == ["/data/broken_A.wav: not a wav file", "/data/x_A.wav: 3 channels, expected 4"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "good.csv", "l3das21_task2", "l3das21_task2/good.csv"]


def test_existing_output_is_replaced_whole_even_when_interrupted(tmp_path: Path, monkeypatch) -> None:
    writer = SEDPredictionWriter(tmp_path, plot=False)
    writer.write_item(fake_prediction())
    before = (tmp_path / "clip1.csv").read_text()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(phnn.io.os, "replace", broken_replace)
    empty = fake_prediction()
    empty["detections"] = torch.zeros(20, 42, dtype=torch.bool)
    with pytest.raises(OSError):
        writer.write_item(empty)
    assert (tmp_path / "clip1.csv").read_text() == before
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "clip1.csv", "l3das21_task2", "l3das21_task2/clip1.csv"]
    monkeypatch.undo()
    writer.write_item(empty)
    assert read_csv(tmp_path / "clip1.csv") == [["filename", "onset", "offset", "event_label", "confidence"]]


def test_mismatched_shapes_are_refused(tmp_path: Path) -> None:
    item = fake_prediction()
    item["detections"] = item["detections"][:, :40]
    with pytest.raises(ValueError, match="clip1"):
        SEDPredictionWriter(tmp_path).write_item(item)


def located_prediction(stem: str = "clip1", path: str | None = None) -> dict:
    """`fake_prediction` with positions: class 2 slot 0 from (1, 1, 0) to (1, 1, 0.4) m, the rest at (−2, 0, 0)."""
    item = fake_prediction(stem)
    positions = torch.zeros(20, 42, 3)
    positions[:, :] = torch.tensor([-2.0, 0.0, 0.0])
    for i, frame in enumerate(range(3, 7)):
        positions[frame, 6] = torch.tensor([1.0, 1.0, 0.4 * i / 3])
    return {**item, "positions": positions, **({"path": path} if path else {})}


def test_submission_folder_is_the_official_task2_format(tmp_path: Path) -> None:
    """One `<clip>.csv` per clip in `l3das21_task2/` and nothing else: rows frame,class,x,y,z (metres), no header."""
    writer = SEDPredictionWriter(tmp_path, plot=False)
    writer.write_item(located_prediction("split0_ov1_1"))
    writer.write_item(located_prediction("split0_ov2_1"))
    folder = tmp_path / "l3das21_task2"
    assert sorted(p.name for p in folder.iterdir()) == ["split0_ov1_1.csv", "split0_ov2_1.csv"]
    rows = read_csv(folder / "split0_ov1_1.csv")
    assert all(len(row) == 5 for row in rows) and len(rows) == 7
    assert rows[0] == ["3", "2", "1.0000", "1.0000", "0.0000"]
    assert rows[-1] == ["19", "13", "-2.0000", "0.0000", "0.0000"]
    assert all(int(row[0]) >= 0 and 0 <= int(row[1]) < 14 for row in rows)  # integers, as the official reader expects


def test_event_list_has_mean_position_and_direction(tmp_path: Path) -> None:
    writer = SEDPredictionWriter(tmp_path, plot=False)
    writer.write_item(located_prediction())
    rows = read_csv(tmp_path / "clip1.csv")
    assert rows[0] == ["filename", "onset", "offset", "event_label", "confidence", "x", "y", "z", "azimuth",
                       "elevation"]
    first = rows[1]  # class 2 slot 0, frames 3–6: mean z = 0.4 · (0 + 1 + 2 + 3) / 12 = 0.2
    assert first[3] == CLASSES[2] and first[5:8] == ["1.0000", "1.0000", "0.2000"]
    assert first[8] == "45.00" and float(first[9]) == pytest.approx(math.degrees(math.atan2(0.2, math.sqrt(2))),
                                                                    abs=0.01)
    assert rows[3][8:] == ["180.00", "0.00"]  # (−2, 0, 0): behind the microphone


def test_event_file_with_positions_reads_back(tmp_path: Path) -> None:
    from phnn.data.l3das21.formats import read_event_file

    SEDPredictionWriter(tmp_path, plot=False).write_item(located_prediction())
    events = read_event_file(tmp_path / "clip1.csv")
    assert [e.label for e in events] == [CLASSES[2], CLASSES[2], CLASSES[13]]
    assert events[0].xyz == pytest.approx((1.0, 1.0, 0.2)) and events[2].xyz == pytest.approx((-2.0, 0.0, 0.0))


def test_png_with_direction_panels_and_labels_next_to_the_clip(tmp_path: Path) -> None:
    data = tmp_path / "L3DAS_Task2_dev" / "data"
    labels = tmp_path / "L3DAS_Task2_dev" / "labels"
    data.mkdir(parents=True)
    labels.mkdir()
    (labels / "label_clip1.csv").write_text("File,Start,End,Class,X,Y,Z\n"
                                            "clip1,0.3,0.7,Cupboard_open_or_close,1,1,0.2\n")
    writer = SEDPredictionWriter(tmp_path / "out", plot=True)
    item = located_prediction(path=str(data / "clip1_A.wav"))
    assert writer._labels_next_to(item, "clip1")[0].class_index == 2
    writer.write_item(item)
    plain = SEDPredictionWriter(tmp_path / "plain", plot=True)
    plain.write_item(fake_prediction())
    from PIL import Image

    with Image.open(tmp_path / "out" / "clip1.png") as located, Image.open(tmp_path / "plain" / "clip1.png") as flat:
        assert located.size[1] > 2 * flat.size[1] * 0.9  # the azimuth and elevation panels below the scores


def test_positions_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    item = located_prediction()
    item["positions"] = item["positions"][:, :, :2]
    with pytest.raises(ValueError, match="positions"):
        SEDPredictionWriter(tmp_path).write_item(item)
