"""Writes SoundEventDetector predictions per clip: event CSV, L3DAS21 frame CSV, activity plot.

For each predicted clip `<stem>` in `output_dir`:

    <stem>.csv          filename,onset,offset,event_label,confidence   (seconds; the DCASE convention)
    <stem>_frames.csv   frame,class  (no header; class as its index)   (L3DAS21 Task 2 submission rows)
    <stem>.png          class scores over time, detected events outlined   (if plot=True)

Both CSV formats are those of `phnn.data.l3das21.formats`, which `phnn score` reads back. An event
is a run of consecutive active frames of one class slot, its confidence the mean score over the
run; its onset and offset are the times the item's ``label_grid`` (official unless the item says
otherwise) maps onto the run's first and last frame (`phnn.data.l3das21.labels.frame_seconds`). Every file is
written to a temporary name in `output_dir` and renamed, so a killed run never leaves a half
file and an existing output is replaced whole. Items that carry an error (unreadable or invalid
clip) are recorded in `failures` as "path: message" and skipped; the CLI reports them and exits
non-zero.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from phnn.data.l3das21.formats import detections_to_events, find_events, slots_to_rows, write_event_file, write_frame_file
from phnn.data.l3das21.layout import CLASSES
from phnn.io import atomic_open

def _as_array(value: Any, name: str, stem: str) -> np.ndarray:
    array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"prediction {stem!r}: {name} must be (frames, classes·slots); got shape {array.shape}")
    return array


class SEDPredictionWriter(BasePredictionWriter):
    """Lightning prediction writer for SED: one set of files per clip, written as each batch ends."""

    def __init__(self, output_dir: str | Path = "predictions", plot: bool = True,
                 frame_seconds: float = 0.1, class_names: Sequence[str] = CLASSES) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = Path(output_dir)
        self.plot = plot
        self.frame_seconds = frame_seconds
        self.class_names = tuple(class_names)
        self.failures: list[str] = []
        self.written: list[Path] = []

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Any,
                           batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        for item in prediction if isinstance(prediction, (list, tuple)) else [prediction]:
            self.write_item(item)

    def write_item(self, item: dict[str, Any]) -> list[Path]:
        """Write the files of one clip prediction; an item with an error is recorded and skipped."""
        if item.get("error"):
            where, error = str(item.get("path", item.get("stem", "?"))), str(item["error"])
            self.failures.append(error if error.startswith(where) else f"{where}: {error}")
            return []
        stem = str(item["stem"])
        scores = _as_array(item["scores"], "scores", stem)
        detections = _as_array(item["detections"], "detections", stem) > 0.5
        if scores.shape != detections.shape or scores.shape[1] % len(self.class_names):
            raise ValueError(f"prediction {stem!r}: scores {scores.shape} and detections {detections.shape} must "
                             f"have the same shape, with a multiple of {len(self.class_names)} columns")
        duration = float(item.get("duration", scores.shape[0] * self.frame_seconds))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        filename = Path(str(item.get("path", stem))).name
        events = detections_to_events(scores, detections, filename, duration, item.get("label_grid", "official"),
                                      self.class_names)
        paths = [self.output_dir / f"{stem}.csv", self.output_dir / f"{stem}_frames.csv"]
        write_event_file(paths[0], events)
        write_frame_file(paths[1], slots_to_rows(detections, len(self.class_names)))
        if self.plot:
            paths.append(self.output_dir / f"{stem}.png")
            with atomic_open(paths[2], "wb") as file:
                self._plot(file, stem, scores, find_events(scores, detections, len(self.class_names)), duration)
        self.written.extend(paths)
        return paths

    def _plot(self, file: io.IOBase, stem: str, scores: np.ndarray, events: list[tuple[int, int, int, float]],
              duration: float) -> None:
        """Heat map of the class score (max over slots), one red box per detected event."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        classes = len(self.class_names)
        per_class = scores.reshape(scores.shape[0], classes, -1).max(-1).T
        figure = Figure(figsize=(10, 4), layout="constrained")
        axes = figure.add_subplot()
        extent = (0.0, scores.shape[0] * self.frame_seconds, classes - 0.5, -0.5)
        image = axes.imshow(per_class, aspect="auto", interpolation="nearest", cmap="viridis",
                            vmin=0.0, vmax=1.0, extent=extent)
        for cls, first, last, _ in events:
            axes.add_patch(Rectangle((first * self.frame_seconds, cls - 0.45), (last + 1 - first) * self.frame_seconds,
                                     0.9, fill=False, edgecolor="red", linewidth=1.0))
        axes.set_yticks(range(classes), self.class_names, fontsize=7)
        axes.set_xlabel("time (s)")
        axes.set_xlim(0.0, max(duration, self.frame_seconds))
        axes.set_title(f"{stem}: class scores, detected events boxed in red")
        figure.colorbar(image, ax=axes, label="score")
        figure.savefig(file, format="png", dpi=100)
