"""`SoundEventDetector`: L3DAS21 Task 2 sound event detection — and, with `localize=True`, localisation
(SELD) — with a SEDnet of any layer family.

Training batches are `(features [B, C, 256, 8·T], targets [B, T, 42])`, plus `doa [B, T, 126]`
(metres / 2, the DataModule's `return_doa`) when localising. The loss is `sed_loss_weight ·
BCE-with-logits` on the 42 = 14 classes × 3 slots outputs, plus, when localising, `doa_loss_weight ·
MSE` between the tanh DOA outputs and the DOA targets (defaults 1 and 5, as the official baseline;
`doa_loss_mask` restricts it to the active target slots, `doa_loss: distance` takes the Euclidean
distance per slot instead). Validation, test and prediction take
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

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchmetrics import MeanMetric

from phnn.data.l3das21.formats import detected_events
from phnn.data.l3das21.labels import DOA_SCALE_METRES
from phnn.metrics import DCASEScore, L3DAS21FrameScore
from phnn.metrics.seld import SELDScores
from phnn.models import create_model
from phnn.models.family import FamilyName
from phnn.tasks.base import PHTask, SchedulerInterval

STFT_FRAMES_PER_LABEL_FRAME = 8
# counting of the L3DAS21 frame metric (see phnn.metrics.frames) → suffix of its logged names
FRAME_SCORES: dict[str, str] = {"one_to_one": "", "official": "_l3das21"}
LABEL_FRAME_SECONDS = 0.1


def probability_bce(scores: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy of sigmoid scores, in float32. Written out because
    `F.binary_cross_entropy` refuses to run under CUDA autocast (the gpu.yaml and gpu_bf16.yaml trainer
    configs): evaluation scores stitched windows' sigmoids, so the logits are gone."""
    p = scores.float().clamp(1e-7, 1 - 1e-7)
    targets = targets.float()
    return -(targets * p.log() + (1 - targets) * (-p).log1p()).mean()


def event_median_positions(detections: Tensor, positions: Tensor) -> Tensor:
    """Positions (T, S, 3) where each run of consecutive detected frames of a slot (detections (T, S)) holds
    the run's median position. L3DAS21 sounds do not move during an event, and the median drops the
    frames where the DOA output wanders (at onsets and offsets, or with a sign flipped)."""
    smoothed = positions.clone()
    active = detections.bool()
    for slot in torch.nonzero(active.any(0)).flatten().tolist():
        edges = torch.diff(active[:, slot].int(), prepend=active.new_zeros(1, dtype=torch.int),
                           append=active.new_zeros(1, dtype=torch.int))
        for start, stop in zip(torch.nonzero(edges == 1).flatten().tolist(), torch.nonzero(edges == -1).flatten().tolist()):
            smoothed[start:stop, slot] = positions[start:stop, slot].median(0).values
    return smoothed


class SoundEventDetector(PHTask):
    """SEDnet + BCE + L3DAS21/DCASE metrics + windowed whole-clip prediction.

    Args:
        num_classes: sound classes (14, linked from the DataModule); outputs = num_classes · slots.
        in_channels: input channels (4, 8 or 16, linked from the DataModule).
        family: layer family of the conv blocks: real, quaternion (n = 4) or phc (learned algebra).
        n: the PH dimension for family phc; must divide in_channels.
        full_phm: make the hidden FC layers PHM too (the paper's "full" variant).
        widths: filters of the four conv blocks (published: 64, 128, 256, 512).
        gru_hidden: hidden size of the bidirectional GRU (published: 256).
        gru_layers: GRU layers (published: 3).
        fc_width: width of the hidden fully connected layers (published: 1024).
        fc_layers: hidden fully connected layers (published: 3).
        dropout: dropout after each conv block and FC layer (published: 0.3).
        output_prior: initial output probability (output bias = logit(prior)); None: torch init.
        localize: add the DOA head and train detection and localisation together (needs batches
            with DOA targets: `data.return_doa: true`); the best checkpoint is then chosen by
            `val/seld_f_score` (location-sensitive, one-to-one).
        sed_loss_weight, doa_loss_weight: weights of the BCE and of the DOA loss (baseline: 1 and 5).
        doa_loss_mask: average the DOA loss over active target slots only (the baseline averages over
            every slot, pulling inactive slots towards the origin).
        doa_loss: `mse` (the baseline) or `distance`: the Euclidean distance per slot, the quantity the
            localisation error averages (its minimiser is the median position, not the mean).
        doa_shared_blocks: None: the DOA head reads the shared GRU (the baseline); k: the DOA branch
            shares only the first k conv blocks and has its own blocks and GRU (0: nothing shared, so
            the DOA loss cannot slow detection down; what the CPU demo's narrow network needs).
        doa_widths: filters of the DOA branch's own conv blocks (default: as `widths`).
        doa_pooling: pooling of the DOA branch's blocks: `max` (as the SED path) or `avg`.
        doa_smoothing: `event_median` gives each run of detected frames of a class slot its median
            position (sounds do not move during an event), in test and predict alike; `none`: per frame.
        spatial_threshold: metres within which a detection counts as localised (2 m in L3DAS21).
        slots: simultaneous sounds per class in the targets (3 in L3DAS21).
        threshold: a class slot is detected when its sigmoid score exceeds this.
        predict_window_frames: prediction window, in 100 ms label frames (600 = 60 s).
        predict_overlap_frames: frames shared by consecutive windows; their scores are averaged.
        optimizer: a callable `params -> Optimizer` (published: Adam; configs/sed sets lr 1e-5).
        lr_scheduler: a callable `optimizer -> LRScheduler`, or null for a constant rate.
        scheduler_interval: step the scheduler once per "epoch" or once per optimizer "step".
        algebra_l1: weight of the L1 penalty on every learned algebra (0 = off).
        converted_n: the SEDnet of `family` made dense and converted at this n (`create_model`'s
            `converted_n`: the network `phnn compress` trains); None: the family's own network.
    """

    kind: ClassVar[str] = "sound event detection"
    monitor: ClassVar[str] = "val/f_score"
    monitor_mode: ClassVar[Literal["min", "max"]] = "max"
    prediction_writer: ClassVar[str | None] = "phnn.callbacks.SEDPredictionWriter"
    backbone_tag: ClassVar[str] = "sednet"
    sample_unit: ClassVar[str] = "clips"

    def __init__(
        self,
        num_classes: int = 14,
        in_channels: int = 4,
        family: FamilyName = "phc",
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
        localize: bool = False,
        sed_loss_weight: float = 1.0,
        doa_loss_weight: float = 5.0,
        doa_loss_mask: bool = False,
        doa_loss: Literal["mse", "distance"] = "mse",
        doa_shared_blocks: int | None = None,
        doa_widths: Sequence[int] | None = None,
        doa_pooling: Literal["max", "avg"] = "max",
        doa_smoothing: Literal["none", "event_median"] = "none",
        spatial_threshold: float = 2.0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: SchedulerInterval = "epoch",
        algebra_l1: float = 0.0,
        converted_n: int | None = None,
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
            output_prior=output_prior, doa=localize, doa_shared_blocks=doa_shared_blocks,
            doa_widths=None if doa_widths is None else tuple(doa_widths), doa_pooling=doa_pooling,
            converted_n=converted_n)
        if min(sed_loss_weight, doa_loss_weight) < 0 or not spatial_threshold > 0:
            raise ValueError(f"SoundEventDetector: loss weights must be >= 0 and spatial_threshold > 0; got "
                             f"{sed_loss_weight}, {doa_loss_weight}, {spatial_threshold}")
        self.localize = localize
        self.sed_outputs = num_classes * slots
        self.loss_weights = (float(sed_loss_weight), float(doa_loss_weight))
        self.doa_loss_mask = doa_loss_mask
        if doa_smoothing not in ("none", "event_median"):
            raise ValueError(f"SoundEventDetector: doa_smoothing={doa_smoothing!r}: expected 'none' or 'event_median'")
        self.doa_smoothing = doa_smoothing
        if doa_loss not in ("mse", "distance"):
            raise ValueError(f"SoundEventDetector: doa_loss={doa_loss!r}: expected 'mse' or 'distance'")
        self.doa_loss_kind = doa_loss
        if localize:
            self.monitor = "val/seld_f_score"
            self.val_seld = SELDScores(num_classes, spatial_threshold)
            self.test_seld = SELDScores(num_classes, spatial_threshold)
        self.threshold = threshold
        self.window = predict_window_frames
        self.overlap = predict_overlap_frames
        # f_score: one-to-one matching (model selection); f_score_l3das21: the official counting
        self.val_frame, self.test_frame = (torch.nn.ModuleDict({counting: L3DAS21FrameScore(num_classes, counting)
                                                                for counting in FRAME_SCORES})
                                           for _ in range(2))
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_dcase, self.test_dcase = (torch.nn.ModuleDict({kind: DCASEScore(num_classes, kind)
                                                                for kind in ("segment", "event")}) for _ in range(2))

    def forward(self, features: Tensor) -> Tensor:
        """Network outputs (B, T, num_classes · slots) logits for features (B, C, 256, 8·T); when
        localising followed by the 3 · num_classes · slots tanh DOA outputs (metres / 2)."""
        return self.model(features)

    def split_outputs(self, outputs: Tensor) -> tuple[Tensor, Tensor | None]:
        """(…, outputs) → SED part (…, 42) and DOA part (…, 126) or None without localisation."""
        if not self.localize:
            return outputs, None
        return outputs[..., : self.sed_outputs], outputs[..., self.sed_outputs :]

    def positions(self, doa: Tensor) -> Tensor:
        """DOA outputs or targets (…, 126) `[x of 42, y of 42, z of 42]` / 2 m → metres (…, 42, 3)."""
        return doa.unflatten(-1, (3, self.sed_outputs)).transpose(-1, -2) * DOA_SCALE_METRES

    def located(self, detections: Tensor, doa: Tensor) -> Tensor:
        """Positions in metres (T, 42, 3) that evaluation and prediction report for a clip's DOA outputs."""
        positions = self.positions(doa)
        return event_median_positions(detections, positions) if self.doa_smoothing == "event_median" else positions

    def step(self, batch: Any, stage: str) -> Tensor:
        if stage in ("val", "test"):
            return self.evaluate_clip(batch, stage)
        features, targets = batch[0], batch[1]
        if self.localize and len(batch) < 3:
            raise ValueError("SoundEventDetector(localize=True): batches need DOA targets (features, sed, doa); "
                             "set data.init_args.return_doa: true")
        logits, doa = self.split_outputs(self(features))
        if logits.shape != targets.shape:
            raise ValueError(f"SoundEventDetector: network output {tuple(logits.shape)} does not match targets "
                             f"{tuple(targets.shape)}; features need {STFT_FRAMES_PER_LABEL_FRAME} STFT frames "
                             f"per label frame")
        sed_loss = F.binary_cross_entropy_with_logits(logits, targets.float())
        loss = self.loss_weights[0] * sed_loss
        log = {"batch_size": features.shape[0], "on_step": True, "on_epoch": True}
        if doa is not None:
            doa_loss = self.doa_loss(doa, batch[2].to(doa.dtype), targets)
            loss = loss + self.loss_weights[1] * doa_loss
            self.log_dict({f"{stage}/sed_loss": sed_loss, f"{stage}/doa_loss": doa_loss}, **log)
        self.log(f"{stage}/loss", loss, prog_bar=True, **log)
        return loss

    def evaluate_clip(self, item: dict[str, Any], stage: str) -> Tensor:
        """Score one whole clip as `predict_clip` does and update the stage's metrics."""
        targets = torch.as_tensor(item["sed"], device=self.device).float()
        scores, doa = self.split_outputs(self.clip_scores(item["features"])[: targets.shape[0]])
        if scores.shape != targets.shape:
            raise ValueError(f"SoundEventDetector: clip {item.get('stem')!r}: scores {tuple(scores.shape)} do not match "
                             f"targets {tuple(targets.shape)}")
        loss = self.loss_weights[0] * probability_bce(scores, targets)
        detections = scores > self.threshold
        if doa is not None:
            if item.get("doa") is None:
                raise ValueError("SoundEventDetector(localize=True): evaluation clips need DOA targets; "
                                 "set data.init_args.return_doa: true")
            doa_targets = torch.as_tensor(item["doa"], device=self.device).to(doa.dtype)
            loss = loss + self.loss_weights[1] * self.doa_loss(doa[None], doa_targets[None], targets[None])
            getattr(self, f"{stage}_seld").update(detections[None], targets[None],
                                                  self.located(detections, doa)[None], self.positions(doa_targets)[None])
        getattr(self, f"{stage}_loss").update(loss, weight=targets.shape[0])  # mean over frames, across ranks
        for metric in getattr(self, f"{stage}_frame").values():
            metric.update(detections[None], targets[None])
        estimated = [(onset, offset, cls) for onset, offset, cls, _ in detected_events(
            scores.cpu().numpy(), detections.cpu().numpy(), float(item["duration"]), item["label_grid"],
            self.num_classes)]
        for metric in getattr(self, f"{stage}_dcase").values():
            metric.update(item["events"], estimated)
        return loss

    def doa_loss(self, doa: Tensor, doa_targets: Tensor, targets: Tensor) -> Tensor:
        """MSE (baseline) or Euclidean distance of the DOA outputs, over every slot or over the active target
        slots (`doa_loss_mask`)."""
        if doa.shape != doa_targets.shape:
            raise ValueError(f"SoundEventDetector: DOA output {tuple(doa.shape)} does not match DOA targets "
                             f"{tuple(doa_targets.shape)} (expected 3 coordinates per class slot)")
        if self.doa_loss_kind == "distance":
            # Euclidean distance per active slot, the quantity the localisation error averages
            error = (doa - doa_targets).unflatten(-1, (3, self.sed_outputs))  # [x of 42, y of 42, z of 42]
            distance = torch.linalg.vector_norm(error, dim=-2)  # its gradient at 0 is 0, not NaN
            active = targets.bool() if self.doa_loss_mask else torch.ones_like(targets, dtype=torch.bool)
            return (distance * active).sum() / active.sum().clamp(min=1)
        if not self.doa_loss_mask:
            return F.mse_loss(doa, doa_targets)
        active = targets.bool().repeat(1, 1, 3)  # the layout is [x of 42, y of 42, z of 42]
        squared = (doa - doa_targets).square() * active
        return squared.sum() / active.sum().clamp(min=1)

    def _log_scores(self, stage: str) -> None:
        loss = getattr(self, f"{stage}_loss")
        values = {f"{stage}/loss": loss.compute()}
        loss.reset()
        for counting, metric in getattr(self, f"{stage}_frame").items():
            values.update({f"{stage}/{name}{FRAME_SCORES[counting]}": value for name, value in metric.compute().items()})
            metric.reset()
        dcase = getattr(self, f"{stage}_dcase")
        segment, event = dcase["segment"].compute(), dcase["event"].compute()
        values.update({f"{stage}/error_rate": segment["error_rate"], f"{stage}/segment_f1": segment["f1"],
                       f"{stage}/event_error_rate": event["error_rate"], f"{stage}/event_f1": event["f1"]})
        for metric in dcase.values():
            metric.reset()
        self.log_dict(values, prog_bar=stage == "val")
        if self.localize:
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
        positions = {} if doa is None else {"positions": self.located(detections, doa).cpu()}
        return {**result, "scores": scores.cpu(), "detections": detections.cpu(), **positions,
                "duration": duration, "label_grid": item.get("label_grid", "official"), "error": None}

    def activate(self, outputs: Tensor) -> Tensor:
        """Network outputs → sigmoid scores on the SED part; the DOA part is already tanh (metres / 2)."""
        if not self.localize:
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
