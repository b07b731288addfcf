"""`make demo` end to end, on a smaller synthetic set and one epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from phnn import demo


def test_last_logged_reads_the_last_value_of_each_metric(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("epoch,test/f_score,x\n0,0.5,\n1,,3\n2,0.75,\n")
    assert demo._last_logged(tmp_path, ["test/f_score", "x", "missing"]) == {"test/f_score": 0.75, "x": 3.0}


def test_demo_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(demo, "DATA", {"train_clips": 6, "dev_clips": 2, "duration": 6.0, "max_overlap": 3})
    monkeypatch.setattr(torch, "set_num_threads", lambda threads: None)  # keep the test session's threads
    assert demo.main(["--out", str(tmp_path / "demo"), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "test F (one-to-one" in printed and "test F (L3DAS21" in printed and "test DCASE ER" in printed
    assert "score " in printed and "--labels" in printed
    (run,) = (tmp_path / "demo" / "runs" / "demo").glob("version_*")  # fit, test and predict: one run folder
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "test" / "metrics.json").is_file()
    predictions = tmp_path / "demo" / "predictions"
    assert len(list((predictions / "l3das21_task2").glob("*.csv"))) == 2 and len(list(predictions.glob("*.png"))) == 2
