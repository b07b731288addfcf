"""Fault injection through the `phnn` commands: scores of missing and empty predictions, outputs that
must not be replaced, concurrent fits, and image prediction with bad images (see docs/safety.md)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from types import SimpleNamespace

import cli_helpers  # noqa: F401  registers the tiny_cnn backbone
import pytest
import torch
from PIL import Image
from test_image_cli import RUN, tiny

from phnn import notices, runs
from phnn.cli import main
from phnn.data.l3das21.formats import slots_to_rows, write_frame_file
from phnn.data.l3das21.labels import DOA_SCALE_METRES, load_targets
from phnn.data.l3das21.layout import NUM_CLASSES


def perfect_predictions(labels: Path, out: Path, frames: int = 40) -> list[str]:
    """A located frame file per label CSV with exactly its sounds (the dev clips are 4 s: 40 frames)."""
    out.mkdir(parents=True, exist_ok=True)
    stems = []
    for label in sorted(labels.glob("label_*.csv")):
        sed, doa = load_targets(label, frames, "official", frames / 10)
        slots = sed.shape[1]
        xyz = doa.reshape(frames, 3, slots).transpose(0, 2, 1) * DOA_SCALE_METRES
        stem = label.stem.removeprefix("label_")
        write_frame_file(out / f"{stem}.csv", slots_to_rows(sed > 0, NUM_CLASSES, xyz))
        stems.append(stem)
    return stems


def score(predictions: Path, labels: Path, tmp_path: Path) -> tuple[int, dict]:
    code = main(["score", str(predictions), "--labels", str(labels), "--json", str(tmp_path / "scores.json")])
    return code, json.loads((tmp_path / "scores.json").read_text())


def location_recall(scores: dict) -> list[float]:
    return [scores["l3das21_official"]["location"]["overall"]["recall"],
            scores["one_to_one"]["location"]["overall"]["recall"],
            scores["dcase_joint"]["localisation_recall"]]


@pytest.mark.parametrize("how", ["empty", "missing"])
def test_a_clip_without_detections_is_missed_in_every_score(l3das21_root: Path, tmp_path: Path, how: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    labels = l3das21_root / "L3DAS_Task2_dev" / "labels"
    stems = perfect_predictions(labels, tmp_path / "pred")
    code, perfect = score(tmp_path / "pred", labels, tmp_path)
    assert code == 0 and location_recall(perfect) == [1.0, 1.0, 1.0]
    emptied = tmp_path / "pred" / f"{stems[0]}.csv"
    if how == "empty":
        emptied.write_text("")  # what the writer writes for a clip without detections
    else:
        emptied.unlink()
    capsys.readouterr()
    code, scores = score(tmp_path / "pred", labels, tmp_path)
    assert code == (0 if how == "empty" else 1)
    assert scores["clips_scored"] == stems  # the clip is scored, not dropped
    for name in ("l3das21_official", "one_to_one"):  # location-sensitive counts the same true sounds as class-only
        sounds = {scores[name][where]["overall"]["tp"] + scores[name][where]["overall"]["fn"]
                  for where in ("class_only", "location")}
        assert len(sounds) == 1, name
    for recall in [*location_recall(scores), scores["one_to_one"]["class_only"]["overall"]["recall"]]:
        assert recall < 1.0
    assert scores["dcase_joint"]["error_rate"] > 0 and scores["localisation"] is not None
    if how == "missing":
        assert f"missing: {stems[0]} (scored as clips without detections)" in capsys.readouterr().err


def test_disjoint_clip_sets_are_a_one_line_error(l3das21_root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "another_clip.csv").write_text("1,1\n")
    code = main(["score", str(tmp_path / "pred"), "--labels", str(l3das21_root / "L3DAS_Task2_dev" / "labels")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "none of its 1 prediction file(s)" in err[0] and len(err) == 2
    assert not (tmp_path / "pred" / "scores.json").exists()


def test_the_test_metrics_count_a_clip_without_detections(l3das21_root: Path) -> None:
    """The metric path `phnn test` logs with: a clip whose model detected nothing misses all its sounds."""
    from phnn.metrics.seld import SELDScores

    labels = sorted((l3das21_root / "L3DAS_Task2_dev" / "labels").glob("*.csv"))
    metrics = SELDScores(NUM_CLASSES)
    active = []
    for index, label in enumerate(labels):
        sed, doa = load_targets(label, 40, "official", 4.0)
        target = torch.from_numpy(sed)[None] > 0
        target_xyz = torch.from_numpy(doa.reshape(40, 3, -1).transpose(0, 2, 1) * DOA_SCALE_METRES)[None]
        detections = target.clone() if index else torch.zeros_like(target)  # clip 0: nothing detected
        pred_xyz = target_xyz.clone() if index else torch.zeros_like(target_xyz)
        metrics.update(detections, target, pred_xyz, target_xyz)
        active.append(float(sed.sum()))
    result = metrics.compute()
    assert float(result["seld_recall"]) == pytest.approx(1 - active[0] / sum(active))
    assert float(result["seld_recall_l3das21"]) < 1.0 and float(result["dcase_localisation_recall"]) < 1.0
    assert float(result["seld_precision"]) == 1.0


def test_score_never_writes_over_its_inputs(l3das21_root: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    for label in (l3das21_root / "L3DAS_Task2_dev" / "labels").glob("*.csv"):
        (labels / label.name).write_bytes(label.read_bytes())
    stems = perfect_predictions(labels, tmp_path / "pred")
    for victim in (labels / f"label_{stems[0]}.csv", tmp_path / "pred" / f"{stems[1]}.csv"):
        before = victim.read_bytes()
        code = main(["score", str(tmp_path / "pred"), "--labels", str(labels), "--json", str(victim)])
        err = capsys.readouterr().err
        assert code == 2 and f"{victim}: will not write over it" in err and "Traceback" not in err
        assert victim.read_bytes() == before


def test_counted_warnings_reach_the_run_metrics(tmp_path: Path) -> None:
    from phnn.callbacks import DataWarnings

    logged: list[dict[str, float]] = []
    trainer = SimpleNamespace(is_global_zero=True, global_step=3,
                              loggers=[SimpleNamespace(log_metrics=lambda metrics, step: logged.append(metrics))])
    with notices.collecting():
        DataWarnings().on_fit_start(trainer, None)  # nothing to say: nothing logged
        notices.warn("clipped_events", "label_a.csv, row 1: clipped")
        notices.warn("clipped_events", "label_a.csv, row 1: clipped")  # the same fact, read twice
        notices.warn("duplicate_label_rows", "label_a.csv, row 2: dropped")
        DataWarnings().on_fit_end(trainer, None)
        path = runs.write_results(tmp_path, "test", [{"test/loss": 0.5}], None)
    assert logged == [{"data/warnings": 2.0, "data/warnings/clipped_events": 1.0,
                       "data/warnings/duplicate_label_rows": 1.0}]
    assert json.loads(path.read_text())["warnings"] == {"clipped_events": 1, "duplicate_label_rows": 1}


# -- image runs --------------------------------------------------------------------------------------

@pytest.fixture
def fitted(tmp_path: Path, image_folder_splits: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=1")]) == 0
    return tmp_path / RUN / "version_0"


def test_two_fits_started_together_get_two_versions(fitted: Path, image_folder_splits: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # the other fit has not yet written anything when this one looks for the next version
    monkeypatch.setattr(runs, "next_version", lambda root: 0)
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=1")]) == 0
    assert (fitted.parent / "version_1" / "checkpoints" / "last.ckpt").is_file()
    assert (fitted / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("target", ["/dev/null", "fifo", "symlink", "checkpoint"])
def test_export_refuses_to_replace_what_is_not_its_output(fitted: Path, tmp_path: Path, target: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = fitted / "checkpoints" / "last.ckpt"
    out = {"/dev/null": Path("/dev/null"), "fifo": tmp_path / "fifo", "symlink": tmp_path / "link.pt",
           "checkpoint": checkpoint}[target]
    if target == "fifo":
        os.mkfifo(out)
    elif target == "symlink":
        out.symlink_to(tmp_path / "elsewhere.pt")
    before = os.lstat(out)
    code = main(["export", str(checkpoint), "--format", "torchscript", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"phnn export: error: {out}: ") and "Traceback" not in err
    after = os.lstat(out)
    assert (after.st_mode, after.st_ino, after.st_size) == (before.st_mode, before.st_ino, before.st_size)
    assert not (tmp_path / "elsewhere.pt").exists()


BAD_IMAGES = {
    "corrupt": lambda path: path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10),
    "empty": lambda path: path.write_bytes(b""),
    "decompression bomb": lambda path: Image.new("1", (200, 200)).save(path),  # over the limit set below
}


@pytest.mark.parametrize("bad", BAD_IMAGES)
def test_image_prediction_names_and_skips_bad_images(fitted: Path, image_folder: Path, tmp_path: Path, bad: str,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "to_predict"
    folder.mkdir()
    good = sorted((image_folder / "dog").glob("*.png"))[:3]
    for path in good:
        (folder / path.name).write_bytes(path.read_bytes())
    BAD_IMAGES[bad](folder / "bad.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 200 × 200 is over twice the limit: a bomb
    code = main(["predict", "--config", str(fitted / "config.yaml"), "--ckpt_path",
                 str(fitted / "checkpoints" / "last.ckpt"), f"--data.predict_path={folder}", f"--out={tmp_path / 'o'}",
                 "--data.num_workers=0"])
    err = capsys.readouterr().err
    assert code == 1 and "1 failure(s)" in err and f"cannot read image {folder / 'bad.png'}" in err
    with open(tmp_path / "o" / "predictions" / "predictions.csv", newline="") as file:
        assert [Path(row["path"]).name for row in csv.DictReader(file)] == [p.name for p in good]
