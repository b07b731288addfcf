"""Writes ImageClassifier predictions: one CSV row per image, and optionally a contact sheet.

In `output_dir` (the CLI's default: `<run>/predictions/`):

    predictions.csv     path,predicted_class,probability,top5
                        top5 = "class:probability" pairs, best first, separated by spaces
    contact_sheet.png   the first `sheet_size` images with their predicted class (if contact_sheet=True)

The class names come from the DataModule (`class_names`: the ImageFolder's folder names, the
dataset's classes) unless given. Files are written whole when prediction ends (temporary file +
rename); under DDP each rank writes its own `predictions_rank<r>.csv`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from phnn.io import atomic_open

COLUMNS = ("path", "predicted_class", "probability", "top5")


def _thumbnail(image: Tensor) -> Tensor:
    """An input tensor (C, H, W), normalised, as RGB in [0, 1] for display (the last 3 channels)."""
    rgb = image[-3:].float()
    low, high = rgb.amin(), rgb.amax()
    return ((rgb - low) / (high - low if high > low else 1.0)).permute(1, 2, 0)


class ImagePredictionWriter(BasePredictionWriter):
    """Lightning prediction writer for image classification: a CSV of classes and top-k probabilities.

    Args:
        output_dir: folder for predictions.csv (and contact_sheet.png); null: the CLI uses <run>/predictions.
        top_k: how many classes the top5 column lists (at most the number of classes).
        contact_sheet: also write contact_sheet.png, a grid of the first images with their predicted class.
        sheet_size: at most this many images on the contact sheet.
        class_names: names of the classes by index; null: the DataModule's `class_names`.
    """

    def __init__(self, output_dir: str | Path | None = None, top_k: int = 5, contact_sheet: bool = False,
                 sheet_size: int = 64, class_names: Sequence[str] | None = None) -> None:
        super().__init__(write_interval="batch")
        if top_k < 1 or sheet_size < 1:
            raise ValueError(f"ImagePredictionWriter: top_k and sheet_size must be >= 1; got {top_k}, {sheet_size}")
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.top_k = top_k
        self.contact_sheet = contact_sheet
        self.sheet_size = sheet_size
        self.class_names = list(class_names) if class_names is not None else None
        self.rows: list[list[str]] = []
        self.sheet: list[tuple[Tensor, str]] = []
        self.failures: list[str] = []  # images that could not be read: named at the end, exit code 1

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        if self.output_dir is None:
            raise ValueError("ImagePredictionWriter: output_dir is not set; give --writer.output_dir DIR or --out DIR")
        self.rows, self.sheet, self.failures = [], [], []
        if self.class_names is None:
            self.class_names = list(getattr(trainer.datamodule, "class_names", None) or []) or None

    def _name(self, index: int) -> str:
        names = self.class_names
        return names[index] if names is not None and index < len(names) else str(index)

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Any,
                           batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        probs = prediction["probs"].detach().float().cpu()
        k = min(self.top_k, probs.shape[1])
        top_probs, top_classes = probs.topk(k, dim=1)
        offset = len(self.rows)
        paths = prediction.get("paths") or [f"image[{offset + i}]" for i in range(len(probs))]
        errors = batch.get("errors") if isinstance(batch, dict) else None
        errors = list(errors) if errors is not None else [""] * len(probs)
        images = batch["images"].detach().cpu() if isinstance(batch, dict) else [None] * len(probs)
        for path, values, classes, error, image in zip(paths, top_probs.tolist(), top_classes.tolist(), errors, images):
            if error:  # an unreadable image: named, not predicted
                self.failures.append(error)
                continue
            top = " ".join(f"{self._name(c)}:{p:.4f}" for c, p in zip(classes, values))
            self.rows.append([str(path), self._name(classes[0]), f"{values[0]:.4f}", top])
            if self.contact_sheet and image is not None and len(self.sheet) < self.sheet_size:
                self.sheet.append((_thumbnail(image), f"{self.rows[-1][1]} {values[0]:.2f}"))

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        suffix = f"_rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        path = self.output_dir / f"predictions{suffix}.csv"
        with atomic_open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(COLUMNS)
            writer.writerows(self.rows)
        if self.contact_sheet and self.sheet:
            self._write_sheet(self.output_dir / f"contact_sheet{suffix}.png")

    def _write_sheet(self, path: Path) -> Path:
        from matplotlib.figure import Figure

        columns = min(8, len(self.sheet))
        rows = math.ceil(len(self.sheet) / columns)
        figure = Figure(figsize=(1.6 * columns, 1.8 * rows), layout="constrained")
        for index, axis in enumerate(figure.subplots(rows, columns, squeeze=False).flat):
            axis.axis("off")
            if index < len(self.sheet):
                image, title = self.sheet[index]
                axis.imshow(torch.clamp(image, 0, 1).numpy(), interpolation="nearest")
                axis.set_title(title, fontsize=8)
        with atomic_open(path, "wb") as file:
            figure.savefig(file, format="png", dpi=100)
        return path
