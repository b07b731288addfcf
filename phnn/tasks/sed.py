"""`SoundEventDetector`: L3DAS21 Task 2 sound event detection with a SEDnet of any layer family.

Training and evaluation batches are `(features [B, C, 256, 8·T], targets [B, T, 42])`; the loss is
BCE-with-logits on the 42 = 14 classes × 3 slots outputs. Validation and test log the L3DAS21
frame metric and the DCASE 1-second segment metrics. Prediction takes one clip at a time (a dict
from the DataModule), runs the network over windows of the whole clip, stitches the window scores
(overlapping frames are averaged) and returns a dict for `SEDPredictionWriter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from phnn.metrics import DCASESegmentScore, L3DAS21FrameScore
from phnn.models import create_model
from phnn.tasks.base import PHTask, SchedulerInterval

STFT_FRAMES_PER_LABEL_FRAME = 8
# counting of the L3DAS21 frame metric (see phnn.metrics.frames) → suffix of its logged names
FRAME_SCORES: dict[str, str] = {"one_to_one": "", "official": "_l3das21"}
LABEL_FRAME_SECONDS = 0.1


class SoundEventDetector(PHTask):
    """SEDnet + BCE + L3DAS21/DCASE metrics + windowed whole-clip prediction.

    Args:
        num_classes: sound classes (14, linked from the DataModule); outputs = num_classes · slots.
        in_channels: input channels (4, 8 or 16, linked from the DataModule).
        family, n: the layer family of the conv blocks (real | quaternion | phc with n).
        full_phm: make the hidden FC layers PHM too (the paper's "full" variant).
        widths, gru_hidden, gru_layers, fc_width, fc_layers, dropout: SEDnet sizes (published
            defaults; smaller for the demo and tests).
        output_prior: initial output probability (output bias = logit(prior)); None: torch init.
        slots: simultaneous sounds per class in the targets (3 in L3DAS21).
        threshold: a class slot is detected when its sigmoid score exceeds this.
        predict_window_frames: prediction window, in 100 ms label frames (600 = 60 s).
        predict_overlap_frames: frames shared by consecutive windows; their scores are averaged.
        optimizer, lr_scheduler, scheduler_interval, algebra_l1: see `PHTask` (the published SED
            runs: Adam; configs/sed sets lr 1e-5 as the L3DAS21 baseline did).
    """

    monitor: ClassVar[str] = "val/f_score"
    monitor_mode: ClassVar[Literal["min", "max"]] = "max"

    def __init__(
        self,
        num_classes: int = 14,
        in_channels: int = 4,
        family: str = "phc",
        n: int = 4,
        full_phm: bool = False,
        widths: Sequence[int] = (64, 128, 256, 512),
        gru_hidden: int = 256,
        gru_layers: int = 3,
        fc_width: int = 1024,
        fc_layers: int = 3,
        dropout: float = 0.3,
        output_prior: float | None = 0.03,
        slots: int = 3,
        threshold: float = 0.5,
        predict_window_frames: int = 600,
        predict_overlap_frames: int = 0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: SchedulerInterval = "epoch",
        algebra_l1: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_channels, optimizer, lr_scheduler, scheduler_interval, algebra_l1)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"SoundEventDetector: threshold must be in (0, 1); got {threshold!r}")
        if predict_window_frames < 1 or not 0 <= predict_overlap_frames < predict_window_frames:
            raise ValueError(
                f"SoundEventDetector: need predict_window_frames ≥ 1 and 0 ≤ predict_overlap_frames < "
                f"predict_window_frames; got {predict_window_frames} and {predict_overlap_frames}")
        self.model = create_model(
            "sednet", family=family, n=n, in_channels=in_channels, num_classes=num_classes, slots=slots,
            widths=tuple(widths), gru_hidden=gru_hidden, gru_layers=gru_layers, fc_width=fc_width,
            fc_layers=fc_layers, dropout=dropout, full_phm=full_phm,
            output_prior=output_prior)
        self.threshold = threshold
        self.window = predict_window_frames
        self.overlap = predict_overlap_frames
        # f_score: one-to-one matching (model selection); f_score_l3das21: the official counting
        self.val_frame, self.test_frame = (torch.nn.ModuleDict({counting: L3DAS21FrameScore(num_classes, counting)
                                                                for counting in FRAME_SCORES})
                                           for _ in range(2))
        self.val_segment, self.test_segment = DCASESegmentScore(num_classes), DCASESegmentScore(num_classes)

    def forward(self, features: Tensor) -> Tensor:
        """Logits (B, T, num_classes · slots) for features (B, C, 256, 8·T)."""
        return self.model(features)

    def step(self, batch: Any, stage: str) -> Tensor:
        features, targets = batch
        logits = self(features)
        if logits.shape != targets.shape:
            raise ValueError(f"SoundEventDetector: network output {tuple(logits.shape)} does not match targets "
                             f"{tuple(targets.shape)}; features need {STFT_FRAMES_PER_LABEL_FRAME} STFT frames "
                             f"per label frame")
        loss = F.binary_cross_entropy_with_logits(logits, targets.float())
        self.log(f"{stage}/loss", loss, prog_bar=stage != "test", on_step=stage == "train", on_epoch=True,
                 batch_size=features.shape[0], sync_dist=stage != "train")
        if stage in ("val", "test"):
            detections = torch.sigmoid(logits) > self.threshold
            for metric in getattr(self, f"{stage}_frame").values():
                metric.update(detections, targets)
            getattr(self, f"{stage}_segment").update(detections, targets)
        return loss

    def _log_scores(self, stage: str) -> None:
        frames, segment = getattr(self, f"{stage}_frame"), getattr(self, f"{stage}_segment")
        values = {}
        for counting, metric in frames.items():
            values.update({f"{stage}/{name}{FRAME_SCORES[counting]}": value for name, value in metric.compute().items()})
            metric.reset()
        errors = segment.compute()
        values.update({f"{stage}/error_rate": errors["error_rate"], f"{stage}/segment_f1": errors["f1"]})
        self.log_dict(values, prog_bar=stage == "val")
        segment.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    # --- prediction on whole clips ---------------------------------------------------------------

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        """One dict per clip: stem, path(s), scores (T, 42), detections (T, 42), duration — or the error."""
        items = batch if isinstance(batch, (list, tuple)) else [batch]
        return [self.predict_clip(item) for item in items]

    def predict_clip(self, item: dict[str, Any]) -> dict[str, Any]:
        """Run the network on the whole clip in windows; an invalid item comes back with its error."""
        paths = item.get("paths") or [item.get("path", item.get("stem"))]
        result = {"stem": item.get("stem"), "path": str(paths[0]), "paths": [str(p) for p in paths]}
        if item.get("error"):
            return {**result, "error": str(item["error"])}
        features = torch.as_tensor(item["features"], device=self.device, dtype=self.dtype)
        if features.dim() == 4 and features.shape[0] == 1:
            features = features[0]
        if features.dim() != 3 or features.shape[0] != self.in_channels:
            return {**result, "error": f"expected features with {self.in_channels} channels (the model was trained "
                                       f"on {self.in_channels}); got shape {tuple(features.shape)}"}
        scores = self.clip_scores(features)
        frames = int(item.get("num_frames", scores.shape[0]))
        scores = scores[:frames]
        duration = float(item.get("duration", frames * LABEL_FRAME_SECONDS))
        return {**result, "scores": scores.cpu(), "detections": (scores > self.threshold).cpu(),
                "duration": duration, "error": None}

    @torch.no_grad()
    def clip_scores(self, features: Tensor) -> Tensor:
        """Sigmoid scores (ceil(T_stft / 8), outputs) for one clip's features (C, F, T_stft)."""
        step = STFT_FRAMES_PER_LABEL_FRAME
        pad = -features.shape[-1] % step
        if pad:
            features = F.pad(features, (0, pad))
        frames = features.shape[-1] // step
        total = torch.zeros(frames, self.model.head[-1].out_features, device=features.device)
        count = torch.zeros(frames, 1, device=features.device)
        stride = self.window - self.overlap
        for start in range(0, max(frames - self.overlap, 1), stride):
            stop = min(start + self.window, frames)
            window = features[None, ..., start * step:stop * step]
            total[start:stop] += torch.sigmoid(self.model(window)[0]).float()
            count[start:stop] += 1
        return total / count
