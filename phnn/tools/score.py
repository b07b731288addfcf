"""`phnn score PRED_DIR --labels LABEL_DIR`: score prediction files against L3DAS21 label CSVs.

Predictions: phnn's own (the output folder of `phnn predict`: `<stem>.csv` events and the L3DAS21
Task 2 submission files `l3das21_task2/<stem>.csv`, read from that subfolder) or anyone's, per clip
in the L3DAS21 frame format (`frame,class[,x,y,z]`, no header) or the DCASE event format
(`filename,onset,offset,event_label[,confidence[,x,y,z,azimuth,elevation]]`); see
`phnn.data.l3das21.formats`. A file's clip is its name without `.csv`, a `_frames` suffix and a
`label_` prefix; labels are `label_<stem>.csv`.
Frame metrics read the frame file (or the events put on the label grid); DCASE metrics read the
event file (or the runs of the frame rows, timed as the label grid maps them).

Scores, overall and per class, with the metric code the task logs with (`phnn.metrics`):
- L3DAS21 official counting (`f_score_l3das21`), class only, and location-sensitive within
  `--spatial-threshold` metres when the frame rows carry coordinates;
- the one-to-one counting (phnn's `f_score`), the same two ways;
- DCASE segment-based ER/F1 on 1 s segments and event-based F1/ER (onset collar 200 ms, offset
  collar max(200 ms, 50 % of the event)), reference = the label CSV's events;
- with coordinates, the localisation error (metres and degrees, over detections matched to a true
  event of their class) and the DCASE joint SELD metrics (ER and F within 20°, LE_CD, LR_CD) of
  `phnn.metrics.seld`, as `phnn test` logs them.

Every labelled clip is scored: a clip without a prediction file, or with an empty one, is a clip
without detections (its sounds count as missed in every metric, location-sensitive ones included).
Prints a table, writes JSON (atomically; never over one of the label or prediction files). Missing,
extra and unreadable files are listed and make the exit code 1; prediction files that name none of
the labelled clips are a one-line error.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from phnn.bounds import CLIP_SECONDS, SPATIAL_THRESHOLD_M
from phnn.data.l3das21.formats import (
    EventRow,
    FrameRow,
    detected_events,
    file_format,
    read_event_file,
    read_frame_file,
    rows_to_slots,
)
from phnn.data.l3das21.labels import (
    DOA_SCALE_METRES,
    LABEL_GRIDS,
    event_frames,
    events_to_targets,
    num_label_frames,
    read_events,
)
from phnn.data.l3das21.layout import CLASS_INDEX, CLASSES, MAX_SLOTS, NUM_CLASSES, SUBMISSION_FOLDER
from phnn.errors import UsageError
from phnn.io import protected_inputs, write_text_atomic
from phnn.metrics import DCASEScore, L3DAS21FrameScore
from phnn.metrics.seld import DCASEJointScore, LocalisationError

COUNTINGS = {"l3das21_official": "official", "one_to_one": "one_to_one"}


def clip_stem(path: Path) -> str:
    """`label_split0_ov1_1.csv`, `split0_ov1_1_frames.csv`, `split0_ov1_1.csv` → `split0_ov1_1`."""
    stem = path.stem.removesuffix("_frames")
    return stem.removeprefix("label_")


@dataclass
class ClipPrediction:
    """What was read for one clip: frame rows and/or events (each from its own file)."""

    frames: list[FrameRow] | None = None
    events: list[EventRow] | None = None
    files: list[str] = field(default_factory=list)


def read_predictions(folder: Path) -> tuple[dict[str, ClipPrediction], list[dict[str, str]]]:
    """Every `.csv` in `folder` by clip stem, and the files that could not be read (with the reason)."""
    clips: dict[str, ClipPrediction] = {}
    unreadable = []
    submission = sorted((folder / SUBMISSION_FOLDER).glob("*.csv"))  # phnn predict's frame files
    for path in sorted(folder.glob("*.csv")) + submission:
        clip = clips.setdefault(clip_stem(path), ClipPrediction())
        try:
            kind = "frames" if path.stem.endswith("_frames") or path in submission else file_format(path)
            if getattr(clip, kind) is not None:
                raise ValueError(f"{path}: a second {kind} file for clip {clip_stem(path)!r} ({clip.files})")
            setattr(clip, kind, read_frame_file(path) if kind == "frames" else read_event_file(path))
            clip.files.append(path.name)
        except ValueError as error:
            unreadable.append({"file": str(path), "error": str(error)})
    return {stem: clip for stem, clip in clips.items() if clip.files}, unreadable


def clip_length(stem: str, audio: Path | None, duration: float) -> tuple[int, float]:
    """(label frames, seconds) of a clip: from its wav (`<stem>_A.wav` or `<stem>.wav`) when found."""
    for name in (f"{stem}_A.wav", f"{stem}.wav"):
        if audio is not None and (audio / name).is_file():
            info = soundfile.info(str(audio / name))
            return num_label_frames(info.frames, info.samplerate), info.frames / info.samplerate
    return max(1, math.ceil(duration * 10 - 1e-9)), duration


def events_to_rows(events: list[EventRow], label_grid: str, duration: float, frames: int) -> list[FrameRow]:
    """DCASE events on the label grid (class only), for the frame metrics."""
    rows = []
    for event in events:
        first, last = event_frames(event.onset, event.offset, label_grid, duration)  # type: ignore[arg-type]
        rows += [FrameRow(f, CLASS_INDEX[event.label]) for f in range(first, min(last, frames - 1) + 1)]
    return sorted(rows, key=lambda row: (row.frame, row.class_index))


class Scorer:
    """Accumulates every score over clips with the metric classes the task logs with."""

    def __init__(self, label_grid: str, spatial_threshold: float, located: bool = False) -> None:
        self.label_grid = label_grid
        self.located = located  # the submission carries coordinates: a clip without detections is located too
        self.frame = {(name, where): L3DAS21FrameScore(NUM_CLASSES, counting, spatial_threshold)
                      for name, counting in COUNTINGS.items() for where in ("class_only", "location")}
        self.dcase = {kind: DCASEScore(NUM_CLASSES, kind) for kind in ("segment", "event")}
        self.localisation, self.dcase_joint = LocalisationError(NUM_CLASSES), DCASEJointScore(NUM_CLASSES)
        self.located_clips = 0
        self.clips = 0

    def add(self, label_path: Path, prediction: ClipPrediction, frames: int, duration: float) -> None:
        reference_events = read_events(label_path)
        sed, doa = events_to_targets(reference_events, frames, label_path,  # type: ignore[arg-type]
                                     self.label_grid, duration)
        rows = prediction.frames
        if rows is None:
            rows = events_to_rows(prediction.events or [], self.label_grid, duration, frames)
        source = prediction.files[0] if prediction.files else f"(no prediction file for {label_path.name})"
        active, xyz = rows_to_slots(rows, frames, NUM_CLASSES, MAX_SLOTS, source=source)
        slots = active.shape[-1]
        if self.located and xyz is None:
            if rows:
                raise ValueError(f"{source}: rows without coordinates, but other clips' files carry x,y,z; "
                                 "one submission, one layout")
            xyz = np.zeros((*active.shape, 3))  # no detections: every true sound of the clip is missed
        target = np.zeros_like(active)
        target[..., :MAX_SLOTS] = sed.reshape(frames, NUM_CLASSES, MAX_SLOTS) > 0
        p, t = torch.from_numpy(active)[None], torch.from_numpy(target)[None]
        located: tuple[torch.Tensor, torch.Tensor] | None = None
        if xyz is not None:
            target_xyz = np.zeros((frames, NUM_CLASSES, slots, 3))
            target_xyz[..., :MAX_SLOTS, :] = (doa.reshape(frames, 3, NUM_CLASSES, MAX_SLOTS).transpose(0, 2, 3, 1)
                                               * DOA_SCALE_METRES)
            located = torch.from_numpy(xyz)[None], torch.from_numpy(target_xyz)[None]
        for (_, where), metric in self.frame.items():
            if where == "class_only":
                metric.update(p, t)
            elif located is not None:
                metric.update(p, t, *located)
        if located is not None:
            for metric in (self.localisation, self.dcase_joint):
                metric.update(p, t, *located)
        self.located_clips += xyz is not None
        self.clips += 1
        estimated = ([(e.onset, e.offset, CLASS_INDEX[e.label]) for e in prediction.events]
                     if prediction.events is not None else
                     [(on, off, cls) for on, off, cls, _ in detected_events(
                         np.ones((frames, NUM_CLASSES * slots)), active.reshape(frames, -1), duration,
                         self.label_grid, NUM_CLASSES)])  # type: ignore[arg-type]
        reference = [(e.start, e.end, e.class_index) for e in reference_events]
        for metric in self.dcase.values():
            metric.update(reference, estimated)

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for (name, where), metric in self.frame.items():
            if where == "location" and not self.located_clips:
                out.setdefault(name, {})[where] = None
                continue
            overall = {key: float(value) for key, value in metric.compute().items()}
            overall.update(tp=int(metric.tp.sum()), fp=int(metric.fp.sum()), fn=int(metric.fn.sum()))
            out.setdefault(name, {})[where] = {"overall": overall,
                                               "per_class": dict(zip(CLASSES, metric.per_class()))}
        for kind, metric in self.dcase.items():
            out[f"dcase_{kind}"] = metric.scores(CLASSES)
        located = bool(self.located_clips)
        out["localisation"] = {k: float(v) for k, v in self.localisation.compute().items()} if located else None
        out["dcase_joint"] = {k: float(v) for k, v in self.dcase_joint.compute().items()} if located else None
        return out


def format_table(results: dict[str, Any]) -> str:
    """The scores of `phnn score` as a fixed-width text table (F, precision, recall, error rate per metric)."""
    lines = [f"{'metric':<40} {'F':>7} {'P':>7} {'R':>7} {'ER':>7}"]
    for name in COUNTINGS:
        for where in ("class_only", "location"):
            score = results[name][where]
            if score is not None:
                o = score["overall"]
                lines.append(f"{name + ' ' + where:<40} {o['f_score']:7.4f} {o['precision']:7.4f} {o['recall']:7.4f} "
                             f"{'':>7}")
    for kind, label in (("segment", "DCASE segment-based (1 s)"), ("event", "DCASE event-based (200 ms, 50 %)")):
        o = results[f"dcase_{kind}"]["overall"]
        lines.append(f"{label:<40} {o['f1']:7.4f} {o['precision']:7.4f} {o['recall']:7.4f} {o['error_rate']:7.4f}")
    if results.get("dcase_joint") is not None:
        joint, error = results["dcase_joint"], results["localisation"]
        lines.append(f"{'DCASE joint (20°)':<40} {joint['f_score']:7.4f} {'':>7} {'':>7} {joint['error_rate']:7.4f}")
        lines.append(f"localisation error {error['error_m']:.3f} m, {error['error_deg']:.2f}° over "
                     f"{int(error['matched'])} matched detections; LE_CD {joint['localisation_error']:.2f}°, "
                     f"LR_CD {joint['localisation_recall']:.4f}")
    lines.append("")
    lines.append(f"{'class':<34} {'F l3das21':>9} {'F 1-to-1':>9} {'seg F1':>7} {'seg ER':>7} {'evt F1':>7}")
    for name in CLASSES:
        lines.append(f"{name:<34} {results['l3das21_official']['class_only']['per_class'][name]['f_score']:9.4f} "
                     f"{results['one_to_one']['class_only']['per_class'][name]['f_score']:9.4f} "
                     f"{results['dcase_segment']['per_class'][name]['f1']:7.4f} "
                     f"{results['dcase_segment']['per_class'][name]['error_rate']:7.4f} "
                     f"{results['dcase_event']['per_class'][name]['f1']:7.4f}")
    return "\n".join(lines)


def score_folder(predictions: Path, labels: Path, audio: Path | None = None, duration: float = 60.0,
                 label_grid: str = "official", spatial_threshold: float = 2.0) -> dict[str, Any]:
    """Scores of the prediction files in `predictions` against the label CSVs in `labels` (see the module docstring)."""
    for folder, what in ((predictions, "prediction"), (labels, "label")):
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such {what} folder")
    label_files = {clip_stem(p): p for p in sorted(labels.glob("*.csv"))}
    if not label_files:
        raise ValueError(f"{labels}: no label CSV (label_<stem>.csv) found")
    clips, unreadable = read_predictions(predictions)
    if clips and not set(clips) & set(label_files):
        raise UsageError(f"{predictions}: none of its {len(clips)} prediction file(s) (e.g. {min(clips)!r}) "
                         f"names a clip of {labels} (e.g. {min(label_files)!r}); "
                         "check that the two folders are of the same split")
    located = any(row.xyz is not None for clip in clips.values() for row in clip.frames or [])
    scorer = Scorer(label_grid, spatial_threshold, located)
    scored = []
    for stem in sorted(label_files):
        # a clip without a prediction file is scored as a clip without detections: its sounds are missed
        prediction = clips.get(stem, ClipPrediction(frames=[]))
        frames, seconds = clip_length(stem, audio, duration)
        try:
            scorer.add(label_files[stem], prediction, frames, seconds)
        except ValueError as error:
            unreadable.append({"file": ", ".join(prediction.files), "error": str(error)})
            continue
        scored.append(stem)
    if not scorer.clips:
        raise UsageError(f"{labels}: no clip could be scored ({len(unreadable)} unreadable file(s), e.g. "
                         f"{_reason(unreadable[0]) if unreadable else 'none'})")
    return {
        "predictions": str(predictions), "labels": str(labels), "label_grid": label_grid,
        "spatial_threshold_m": spatial_threshold, "clips_scored": scored,
        "missing": sorted(set(label_files) - set(clips)), "extra": sorted(set(clips) - set(label_files)),
        "unreadable": unreadable, **scorer.results(),
    }


def _reason(item: dict[str, str]) -> str:
    return item["error"] if item["error"].startswith(item["file"]) else f"{item['file']}: {item['error']}"


def main(argv: list[str]) -> int:
    """Score prediction files against the L3DAS21 label CSVs."""
    parser = argparse.ArgumentParser(
        prog="phnn score", description=__doc__.splitlines()[0].split(": ", 1)[1],
        epilog="Example: phnn score demo_output/predictions --labels demo_output/data/L3DAS_Task2_dev/labels")
    parser.add_argument("predictions", type=Path, metavar="PRED_DIR", help="folder of prediction CSVs")
    parser.add_argument("--labels", type=Path, required=True, metavar="LABEL_DIR", help="folder of label_<stem>.csv")
    parser.add_argument("--audio", type=Path, default=None,
                        help="folder of the clips' wavs, for their length (default: LABEL_DIR/../data when it exists)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="clip length in seconds when no wav is found (default 60, as the official tools)")
    parser.add_argument("--label-grid", choices=LABEL_GRIDS, default="official",
                        help="which label frames a sound covers (default official; see phnn/data/l3das21/labels.py)")
    parser.add_argument("--spatial-threshold", type=float, default=2.0,
                        help="metres within which a located detection matches (default 2, as the challenge)")
    parser.add_argument("--json", type=Path, default=None,
                        help="where to write the scores (default PRED_DIR/scores.json; next to PRED_DIR for a "
                             f"{SUBMISSION_FOLDER} folder, which must hold the clips' CSVs only)")
    args = parser.parse_args(argv)
    SPATIAL_THRESHOLD_M.check(args.spatial_threshold, "--spatial-threshold")
    CLIP_SECONDS.check(args.duration, "--duration")
    audio = args.audio if args.audio is not None else args.labels.parent / "data"
    inputs = [p for folder in (args.labels, args.predictions, args.predictions / SUBMISSION_FOLDER)
              for p in (sorted(folder.glob("*.csv")) if folder.is_dir() else [])]
    with protected_inputs(inputs, "an input of phnn score (a label or prediction file)"):
        results = score_folder(args.predictions, args.labels, audio if audio.is_dir() else None, args.duration,
                               args.label_grid, args.spatial_threshold)
        print(format_table(results))
        # never into a submission folder, which must hold the clips' CSVs only
        folder = args.predictions.parent if args.predictions.name == SUBMISSION_FOLDER else args.predictions
        path = args.json or folder / "scores.json"
        write_text_atomic(path, json.dumps(results, indent=2) + "\n")
    print(f"\n{len(results['clips_scored'])} clip(s) scored; wrote {path}")
    problems = [(name, results[name]) for name in ("missing", "extra", "unreadable") if results[name]]
    for name, items in problems:
        note = " (scored as clips without detections)" if name == "missing" else ""
        print(f"phnn score: {name}: " + "; ".join(i if isinstance(i, str) else _reason(i) for i in items) + note,
              file=sys.stderr)
    return 1 if problems else 0
