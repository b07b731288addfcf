"""`SoundEventDetector`: L3DAS21 Task 2 sound event detection — and, with a `doa` head, localisation
(SELD) — with a SEDnet of any layer family, given as one `SEDnetConfig` (`model`).

Training batches are `(features [B, C, 256, 8·T], targets [B, T, 42])`, plus `doa [B, T, 126]`
(metres / 2, the DataModule's `return_doa`) when localising. The loss is BCE-with-logits on the
42 = 14 classes × 3 slots outputs; with a `DOAHead`, `doa.sed_loss_weight · BCE + doa.loss_weight ·`
the DOA loss (MSE or distance, over every slot or the active ones: see `phnn.tasks.doa`).
Validation, test and prediction take
one whole clip at a time (a dict from the DataModule) and score it with `clip_scores`: the network
over windows of the clip, the window outputs (SED scores and DOA outputs) stitched (overlapping
frames averaged). So `phnn test` scores exactly what `phnn predict` writes, and `phnn score` on those
files gives the same numbers.

Validation and test log the L3DAS21 frame metric in both countings (`f_score`, `precision`, `recall`:
one-to-one, used for model selection; `…_l3das21`: the official counting), the DCASE segment-based
(1 s) `error_rate` and `segment_f1` and the event-based `event_f1` and `event_error_rate`, computed on
the detected events against the label CSV's events (as `phnn score` does), and the loss (of the
stitched outputs). When localising, also the SELD metrics of `phnn.metrics.seld` (`seld_f_score`,
`seld_f_score_l3das21`, … , `doa_error_m`, `doa_error_deg`, `dcase_*`), and `val/seld_f_score`
selects the best checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchmetrics import MeanMetric

from phnn.data.l3das21.formats import detected_events
from phnn.data.l3das21.layout import LABEL_FRAME_SECONDS, MAX_SLOTS, NUM_CLASSES, STFT_FRAMES_PER_LABEL_FRAME
from phnn.metrics import DCASEScore, L3DAS21FrameScore
from phnn.metrics.seld import SELDScores
from phnn.models.sednet import SEDnetConfig
from phnn.tasks.base import PHTask, SchedulerInterval
from phnn.tasks.doa import DOAHead
from phnn.tasks.legacy import install_config_upgrade, upgrade_sed_args

# counting of the L3DAS21 frame metric (see phnn.metrics.frames) → suffix of its logged names
FRAME_SCORES: dict[str, str] = {"one_to_one": "", "official": "_l3das21"}


def probability_bce(scores: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy of sigmoid scores, in float32. Written out because
    `F.binary_cross_entropy` refuses to run under CUDA autocast (the gpu.yaml and gpu_bf16.yaml trainer
    configs): evaluation scores stitched windows' sigmoids, so the logits are gone."""
    p = scores.float().clamp(1e-7, 1 - 1e-7)
    targets = targets.float()
    return -(targets * p.log() + (1 - targets) * (-p).log1p()).mean()


class SoundEventDetector(PHTask):
    """SEDnet + BCE + L3DAS21/DCASE metrics + windowed whole-clip prediction; with `doa`, SELD.

    Args:
        num_classes: sound classes (14, linked from the DataModule); outputs = num_classes · 3 slots.
        in_channels: input channels (4, 8 or 16, linked from the DataModule).
        model: the network, a `SEDnetConfig` (family, n, widths, GRU, FC, dropout, the DOA branch's layout);
            None: the published SEDnet, family phc with n = 4.
        doa: a `DOAHead` (loss, weights, smoothing, spatial threshold) adds the DOA head and trains detection
            and localisation together (needs batches with DOA targets: `data.return_doa: true`); the best
            checkpoint is then chosen by `val/seld_f_score`. None: detection only.
        threshold: a class slot is detected when its sigmoid score exceeds this.
        predict_window_frames: prediction window, in 100 ms label frames (600 = 60 s).
        predict_overlap_frames: frames shared by consecutive windows; their scores are averaged.
        optimizer: a callable `params -> Optimizer` (published: Adam; configs/sed sets lr 1e-5).
        lr_scheduler: a callable `optimizer -> LRScheduler`, or null for a constant rate.
        scheduler_interval: step the scheduler once per "epoch" or once per optimizer "step".
        algebra_l1: weight of the L1 penalty on every learned algebra (0 = off).
    """

    kind: ClassVar[str] = "sound event detection"
    monitor: ClassVar[str] = "val/f_score"
    monitor_mode: ClassVar[Literal["min", "max"]] = "max"
    prediction_writer: ClassVar[str | None] = "phnn.callbacks.SEDPredictionWriter"
    backbone_tag: ClassVar[str] = "sednet"
    sample_unit: ClassVar[str] = "clips"

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        in_channels: int = 4,
        model: SEDnetConfig | None = None,
        doa: DOAHead | None = None,
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
        self.network_config, self.doa = SEDnetConfig.of(model), DOAHead.of(doa)
        # plain data in the checkpoint (it loads with weights_only=True)
        self.hparams["model"] = self.network_config.as_plain()
        self.hparams["doa"] = None if self.doa is None else self.doa.as_plain()
        self.model = self.network_config.build(in_channels, num_classes, slots=MAX_SLOTS, doa=self.doa is not None)
        self.sed_outputs = num_classes * MAX_SLOTS
        self.threshold = threshold
        self.window = predict_window_frames
        self.overlap = predict_overlap_frames
        self._build_metrics()

    def _build_metrics(self) -> None:
        """Per stage (val, test): the frame scores in both countings, the loss, the DCASE scores, and with a DOA
        head the SELD scores (then `val/seld_f_score` picks the best checkpoint)."""
        classes = self.num_classes
        # f_score: one-to-one matching (model selection); f_score_l3das21: the official counting
        self.val_frame, self.test_frame = (torch.nn.ModuleDict({counting: L3DAS21FrameScore(classes, counting)
                                                                for counting in FRAME_SCORES})
                                           for _ in range(2))
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_dcase, self.test_dcase = (torch.nn.ModuleDict({kind: DCASEScore(classes, kind)
                                                                for kind in ("segment", "event")}) for _ in range(2))
        if self.doa is not None:
            self.monitor = "val/seld_f_score"
            self.val_seld = SELDScores(classes, self.doa.spatial_threshold)
            self.test_seld = SELDScores(classes, self.doa.spatial_threshold)

    @classmethod
    def upgrade_hparams(cls, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """A checkpoint's hyperparameters in this signature's shape (old flat SEDnet/DOA keys mapped)."""
        return upgrade_sed_args(hparams)

    @classmethod
    def run_tag(cls, init_args: Mapping[str, Any]) -> str:
        """`sednet_<family tag>[_compress_n<n>]` from the task's arguments (`model` a SEDnetConfig, a mapping or a
        Namespace)."""
        network = init_args.get("model")

        def field(name: str, default: Any) -> Any:
            value = network.get(name) if hasattr(network, "get") else getattr(network, name, None)
            return default if value is None else value

        return super().run_tag({"family": field("family", SEDnetConfig.family), "n": field("n", SEDnetConfig.n),
                                "model": {"converted_n": field("converted_n", None)}})

    def forward(self, features: Tensor) -> Tensor:
        """Network outputs (B, T, num_classes · slots) logits for features (B, C, 256, 8·T); when
        localising followed by the 3 · num_classes · slots tanh DOA outputs (metres / 2)."""
        return self.model(features)

    def split_outputs(self, outputs: Tensor) -> tuple[Tensor, Tensor | None]:
        """(…, outputs) → SED part (…, 42) and DOA part (…, 126) or None without a DOA head."""
        if self.doa is None:
            return outputs, None
        return outputs[..., : self.sed_outputs], outputs[..., self.sed_outputs :]

    @property
    def sed_loss_weight(self) -> float:
        """Weight of the detection BCE: the DOA head's `sed_loss_weight`, 1 without one."""
        return 1.0 if self.doa is None else self.doa.sed_loss_weight

    def step(self, batch: Any, stage: str) -> Tensor:
        if stage in ("val", "test"):
            return self.evaluate_clip(batch, stage)
        features, targets = batch[0], batch[1]
        if self.doa is not None and len(batch) < 3:
            raise ValueError("SoundEventDetector(doa=...): batches need DOA targets (features, sed, doa); "
                             "set data.init_args.return_doa: true")
        logits, doa = self.split_outputs(self(features))
        if logits.shape != targets.shape:
            raise ValueError(f"SoundEventDetector: network output {tuple(logits.shape)} does not match targets "
                             f"{tuple(targets.shape)}; features need {STFT_FRAMES_PER_LABEL_FRAME} STFT frames "
                             f"per label frame")
        sed_loss = F.binary_cross_entropy_with_logits(logits, targets.float())
        loss = self.sed_loss_weight * sed_loss
        log = {"batch_size": features.shape[0], "on_step": True, "on_epoch": True}
        if self.doa is not None and doa is not None:
            doa_loss = self.doa.loss_of(doa, batch[2].to(doa.dtype), targets)
            loss = loss + self.doa.loss_weight * doa_loss
            self.log_dict({f"{stage}/sed_loss": sed_loss, f"{stage}/doa_loss": doa_loss}, **log)
        self.log(f"{stage}/loss", loss, prog_bar=True, **log)
        return loss

    def evaluate_clip(self, item: dict[str, Any], stage: str) -> Tensor:
        """Score one whole clip as `predict_clip` does and update the stage's metrics."""
        targets = torch.as_tensor(item["sed"], device=self.device).float()
        scores, doa = self.split_outputs(self.clip_scores(item["features"])[: targets.shape[0]])
        if scores.shape != targets.shape:
            raise ValueError(f"SoundEventDetector: clip {item.get('stem')!r}: scores {tuple(scores.shape)} do not "
                             f"match targets {tuple(targets.shape)}")
        loss = self.sed_loss_weight * probability_bce(scores, targets)
        detections = scores > self.threshold
        if self.doa is not None and doa is not None:
            if item.get("doa") is None:
                raise ValueError("SoundEventDetector(doa=...): evaluation clips need DOA targets; "
                                 "set data.init_args.return_doa: true")
            doa_targets = torch.as_tensor(item["doa"], device=self.device).to(doa.dtype)
            loss = loss + self.doa.loss_weight * self.doa.loss_of(doa[None], doa_targets[None], targets[None])
            located = self.doa.located(detections, doa)
            getattr(self, f"{stage}_seld").update(detections[None], targets[None], located[None],
                                                  self.doa.positions(doa_targets)[None])
        getattr(self, f"{stage}_loss").update(loss, weight=targets.shape[0])  # mean over frames, across ranks
        for metric in getattr(self, f"{stage}_frame").values():
            metric.update(detections[None], targets[None])
        estimated = [(onset, offset, cls) for onset, offset, cls, _ in detected_events(
            scores.cpu().numpy(), detections.cpu().numpy(), float(item["duration"]), item["label_grid"],
            self.num_classes)]
        for metric in getattr(self, f"{stage}_dcase").values():
            metric.update(item["events"], estimated)
        return loss

    def _log_scores(self, stage: str) -> None:
        loss = getattr(self, f"{stage}_loss")
        values = {f"{stage}/loss": loss.compute()}
        loss.reset()
        for counting, metric in getattr(self, f"{stage}_frame").items():
            values.update({f"{stage}/{name}{FRAME_SCORES[counting]}": value
                           for name, value in metric.compute().items()})
            metric.reset()
        dcase = getattr(self, f"{stage}_dcase")
        segment, event = dcase["segment"].compute(), dcase["event"].compute()
        values.update({f"{stage}/error_rate": segment["error_rate"], f"{stage}/segment_f1": segment["f1"],
                       f"{stage}/event_error_rate": event["error_rate"], f"{stage}/event_f1": event["f1"]})
        for metric in dcase.values():
            metric.reset()
        self.log_dict(values, prog_bar=stage == "val")
        if self.doa is not None:
            seld = getattr(self, f"{stage}_seld")
            self.log_dict({f"{stage}/{name}": value for name, value in seld.compute().items()},
                          prog_bar=False)
            seld.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_scores("val")

    def on_test_epoch_end(self) -> None:
        self._log_scores("test")

    # --- prediction on whole clips ---------------------------------------------------------------

    def samples_in(self, batch: Any) -> int:
        """Clips in a predict batch (one dict per clip), else the leading size of the features."""
        if isinstance(batch, dict):
            return 1
        if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], dict):
            return len(batch)
        return super().samples_in(batch)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> list[dict[str, Any]]:
        """One dict per clip: stem, path(s), scores (T, 42), detections (T, 42), duration, and when
        localising positions (T, 42, 3) in metres — or the error."""
        items = batch if isinstance(batch, (list, tuple)) else [batch]
        return [self.predict_clip(item) for item in items]

    def predict_clip(self, item: dict[str, Any]) -> dict[str, Any]:
        """Run the network on the whole clip in windows; an invalid item comes back with its error."""
        paths = item.get("paths") or [item.get("path", item.get("stem"))]
        result = {"stem": item.get("stem"), "path": str(paths[0]), "paths": [str(p) for p in paths]}
        if item.get("error"):
            return {**result, "error": str(item["error"])}
        features = item["features"]
        if isinstance(features, Tensor) and features.dim() == 4 and features.shape[0] == 1:
            features = features[0]
        if len(features.shape) != 3 or features.shape[0] != self.in_channels:
            return {**result, "error": f"expected features with {self.in_channels} channels (the model was trained "
                                       f"on {self.in_channels}); got shape {tuple(features.shape)}"}
        outputs = self.clip_scores(features)
        frames = int(item.get("num_frames", outputs.shape[0]))
        scores, doa = self.split_outputs(outputs[:frames])
        duration = float(item.get("duration", frames * LABEL_FRAME_SECONDS))
        detections = scores > self.threshold
        positions = {} if self.doa is None or doa is None else {"positions": self.doa.located(detections, doa).cpu()}
        return {**result, "scores": scores.cpu(), "detections": detections.cpu(), **positions,
                "duration": duration, "label_grid": item.get("label_grid", "official"), "error": None}

    def activate(self, outputs: Tensor) -> Tensor:
        """Network outputs → sigmoid scores on the SED part; the DOA part is already tanh (metres / 2)."""
        if self.doa is None:
            return torch.sigmoid(outputs)
        return torch.cat([torch.sigmoid(outputs[..., : self.sed_outputs]), outputs[..., self.sed_outputs :]], -1)

    @torch.no_grad()
    def clip_scores(self, features: Any) -> Tensor:
        """Scores (ceil(T_stft / 8), outputs) for one clip's features (C, F, T_stft): the sigmoid SED
        scores, followed by the DOA outputs (metres / 2) when localising (`split_outputs` parts them).
        The one windowing/stitching path of evaluation and prediction: both parts are averaged over overlaps.

        Uses only ``features.shape`` and slices ``features[..., a:b]`` along the STFT frame axis, so
        a lazy object (e.g. a memmap-backed `CachedClipFeatures`) works as well as a tensor.
        """
        step = STFT_FRAMES_PER_LABEL_FRAME
        frames = -(-features.shape[-1] // step)
        total = torch.zeros(frames, self.model.outputs, device=self.device)
        count = torch.zeros(frames, 1, device=self.device)
        stride = self.window - self.overlap
        for start in range(0, max(frames - self.overlap, 1), stride):
            stop = min(start + self.window, frames)
            window = torch.as_tensor(features[..., start * step:stop * step], device=self.device, dtype=self.dtype)
            missing = (stop - start) * step - window.shape[-1]
            if missing:
                window = F.pad(window, (0, missing))
            total[start:stop] += self.activate(self.model(window[None])[0]).float()
            count[start:stop] += 1
        return total / count


# old flat configs (family, widths, localize, doa_loss_weight, ...) keep parsing: see phnn.tasks.legacy
install_config_upgrade()
