"""SEDPredictionWriter: CSV contents, frame format, PNG, atomic replacement, failures."""

from __future__ import annotations

import csv
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
    frames = read_csv(tmp_path / "out" / "clip1_frames.csv")
    # the official submission rows: no header, class index
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.csv", "good_frames.csv"]


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip1.csv", "clip1_frames.csv"]
    monkeypatch.undo()
    writer.write_item(empty)
    assert read_csv(tmp_path / "clip1.csv") == [["filename", "onset", "offset", "event_label", "confidence"]]


def test_mismatched_shapes_are_refused(tmp_path: Path) -> None:
    item = fake_prediction()
    item["detections"] = item["detections"][:, :40]
    with pytest.raises(ValueError, match="clip1"):
        SEDPredictionWriter(tmp_path).write_item(item)
