"""Writes SoundEventDetector predictions per clip: event CSV, L3DAS21 submission file, activity plot.

For each predicted clip `<stem>` in `output_dir`:

    <stem>.csv                 filename,onset,offset,event_label,confidence   (seconds; the DCASE convention)
                               + x,y,z,azimuth,elevation with localisation (mean position of the event)
    l3das21_task2/<stem>.csv   frame,class,x,y,z  (no header; class index; metres)   the L3DAS21 Task 2
                               submission: one file per clip named by the clip (its wav name without
                               the _A/_B mic suffix), nothing else in that folder; frame,class rows for
                               a model that only detects
    <stem>.png                 class scores over time, detected events outlined; with localisation
                               also the azimuth and elevation of each detection over time, and the
                               labelled sounds' when a label file sits next to the clip   (if plot=True)

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

from phnn.data.l3das21.formats import (
    detections_to_events,
    direction_degrees,
    find_events,
    slots_to_rows,
    write_event_file,
    write_frame_file,
)
from phnn.data.l3das21.labels import Event, read_events
from phnn.data.l3das21.layout import CLASSES, LABEL_FRAME_SECONDS, SUBMISSION_FOLDER, label_path
from phnn.io import atomic_open


def _as_array(value: Any, name: str, stem: str) -> np.ndarray:
    array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"prediction {stem!r}: {name} must be (frames, classes·slots); got shape {array.shape}")
    return array


class SEDPredictionWriter(BasePredictionWriter):
    """Lightning prediction writer for SED: one set of files per clip, written as each batch ends.

    Args:
        output_dir: folder for the files; null: the CLI uses <run>/predictions (or --out).
        plot: also write <stem>.png, the class scores over time with the detected events boxed.
        frame_seconds: length of one label frame in seconds (0.1 in L3DAS21).
        class_names: the class names by index (the 14 L3DAS21 classes).
    """

    def __init__(self, output_dir: str | Path | None = None, plot: bool = True,
                 frame_seconds: float = LABEL_FRAME_SECONDS, class_names: Sequence[str] = CLASSES) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.plot = plot
        self.frame_seconds = frame_seconds
        self.class_names = tuple(class_names)
        self.failures: list[str] = []

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
        if self.output_dir is None:
            raise ValueError("SEDPredictionWriter: output_dir is not set; give --writer.output_dir DIR or --out DIR")
        stem = str(item["stem"])
        scores = _as_array(item["scores"], "scores", stem)
        detections = _as_array(item["detections"], "detections", stem) > 0.5
        if scores.shape != detections.shape or scores.shape[1] % len(self.class_names):
            raise ValueError(f"prediction {stem!r}: scores {scores.shape} and detections {detections.shape} must "
                             f"have the same shape, with a multiple of {len(self.class_names)} columns")
        duration = float(item.get("duration", scores.shape[0] * self.frame_seconds))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        filename = Path(str(item.get("path", stem))).name
        xyz = None if item.get("positions") is None else self._positions(item["positions"], scores.shape, stem)
        events = detections_to_events(scores, detections, filename, duration, item.get("label_grid", "official"),
                                      self.class_names, xyz)
        paths = [self.output_dir / f"{stem}.csv", self.output_dir / SUBMISSION_FOLDER / f"{stem}.csv"]
        write_event_file(paths[0], events, located=xyz is not None)
        write_frame_file(paths[1], slots_to_rows(detections, len(self.class_names), xyz))
        if self.plot:
            paths.append(self.output_dir / f"{stem}.png")
            truth = None if xyz is None else self._labels_next_to(item, stem)
            with atomic_open(paths[2], "wb") as file:
                self._plot(file, stem, scores, find_events(scores, detections, len(self.class_names)), duration,
                           None if xyz is None else (detections, xyz, truth))
        return paths

    def _positions(self, value: Any, shape: tuple[int, ...], stem: str) -> np.ndarray:
        array = value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value, dtype=float)
        if array.shape != (*shape, 3):
            raise ValueError(f"prediction {stem!r}: positions must be (frames, classes·slots, 3) = {(*shape, 3)} "
                             f"metres; got shape {array.shape}")
        return array

    @staticmethod
    def _labels_next_to(item: dict[str, Any], stem: str) -> list[Event] | None:
        """The clip's label file in the official layout (`<split>/labels/label_<stem>.csv` beside `<split>/data/`)
        or in the clip's own folder; None when there is none or it cannot be read."""
        folder = Path(str(item.get("path", stem))).parent
        for candidate in (label_path(folder.parent, stem), folder / f"label_{stem}.csv"):
            if candidate.is_file():
                try:
                    return read_events(candidate)
                except ValueError:
                    return None
        return None

    def _plot(self, file: io.IOBase, stem: str, scores: np.ndarray, events: list[tuple[int, int, int, float]],
              duration: float, located: tuple[np.ndarray, np.ndarray, list[Event] | None] | None = None) -> None:
        """Heat map of the class score (max over slots), one red box per detected event; with `located`
        (detections, positions, labelled events or None) two more panels: azimuth and elevation over time."""
        from matplotlib.figure import Figure  # a Figure renders itself: no pyplot, no global backend
        from matplotlib.patches import Rectangle

        classes = len(self.class_names)
        per_class = scores.reshape(scores.shape[0], classes, -1).max(-1).T
        figure = Figure(figsize=(10, 4 if located is None else 9), layout="constrained")
        grid = figure.add_gridspec(1 if located is None else 3, 1, height_ratios=[2] if located is None else [2, 1, 1])
        axes = figure.add_subplot(grid[0])
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
        if located is not None:
            self._plot_directions(figure, grid, axes, *located, duration)
        figure.savefig(file, format="png", dpi=100)

    def _plot_directions(self, figure: Any, grid: Any, top: Any, detections: np.ndarray, xyz: np.ndarray,
                         truth: list[Event] | None, duration: float) -> None:
        """Azimuth and elevation (degrees) of every detected frame, coloured by class; labelled sounds in black."""
        from matplotlib import colormaps

        colours = colormaps["tab20"]
        slots = detections.shape[1] // len(self.class_names)
        frames, columns = np.nonzero(detections)
        directions = np.array([direction_degrees(xyz[f, c]) for f, c in zip(frames, columns)]).reshape(-1, 2)
        times = (frames + 0.5) * self.frame_seconds
        for row, (name, limit) in enumerate((("azimuth (°)", 180), ("elevation (°)", 90)), start=1):
            axes = figure.add_subplot(grid[row], sharex=top)
            axes.scatter(times, directions[:, row - 1], s=6, c=[colours(c // slots % 20) for c in columns],
                         label="detected (colour = class)")
            for event in truth or []:
                angle = direction_degrees((event.x, event.y, event.z))[row - 1]
                axes.plot([event.start, event.end], [angle, angle], color="black", linewidth=1.5,
                          label="labelled" if event is truth[0] else None)
            axes.set_ylim(-limit, limit)
            axes.set_ylabel(name)
            axes.set_xlim(0.0, max(duration, self.frame_seconds))
            axes.legend(loc="upper right", fontsize=7)
        axes.set_xlabel("time (s)")
