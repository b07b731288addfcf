"""`ImageClassifier`: a registry backbone (ResNet, VGG) of any layer family, trained with cross-entropy.

    model = ImageClassifier(backbone="resnet18_large", family="phc", n=3, num_classes=10, in_channels=3)

Defaults are the published PHNN image settings: SGD (lr 0.1, momentum 0.9, weight decay 5e-4) and
cosine annealing over the whole run.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from phnn.models import create_model
from phnn.models.family import FamilyName
from phnn.tasks.base import SGD, CosineAnnealingLR, PHTask, SchedulerInterval

_STAGES = ("train", "val", "test")


class ImageClassifier(PHTask):
    """Image classification with a PH, quaternion or real backbone.

    Args:
        backbone: a name from `phnn.models.list_models()`, e.g. resnet18_large, vgg16.
        family: real (torch layers), quaternion (fixed Hamilton algebra, n = 4) or phc (learned algebra).
        n: the PH dimension for family phc (2, 3, 4, ...); quaternion is always 4, real 1.
        num_classes: classes (linked from the DataModule by the CLI).
        in_channels: input channels (linked from the DataModule; 4 with `extra_channel` for n = 4).
        model_kwargs: extra keyword arguments of `create_model`, e.g. {zero_init_residual: true}, or
            {converted_n: 4} (the backbone made dense and converted at n = 4: what `phnn compress` trains).
        label_smoothing: cross-entropy label smoothing (0 = plain cross-entropy, as published).
        optimizer: a callable `params -> Optimizer` (default: SGD with the published settings).
        lr_scheduler: a callable `optimizer -> LRScheduler` (default: cosine annealing over the run), or null.
        scheduler_interval: step the scheduler once per "epoch" or once per optimizer "step".
        algebra_l1: weight of the L1 penalty on every learned algebra (0 = off).

    Logs `train/loss`, `train/acc`, `val/loss`, `val/acc`, `test/loss`, `test/acc`, `test/acc_top5`
    (top-k with k = min(5, num_classes)). `predict_step` returns `{"probs": [B, C], "labels": [B]}`
    (and the batch's `paths` when it has them, for `ImagePredictionWriter`).
    """

    kind = "image classification"
    monitor = "val/acc"
    monitor_mode = "max"
    prediction_writer = "phnn.callbacks.ImagePredictionWriter"

    def __init__(
        self,
        backbone: str = "resnet18",
        family: FamilyName = "phc",
        n: int = 4,
        num_classes: int = 10,
        in_channels: int = 3,
        model_kwargs: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = SGD,
        lr_scheduler: LRSchedulerCallable | None = CosineAnnealingLR,
        scheduler_interval: SchedulerInterval = "epoch",
        algebra_l1: float = 0.0,
    ) -> None:
        super().__init__(num_classes, in_channels, optimizer, lr_scheduler, scheduler_interval, algebra_l1)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"ImageClassifier: label_smoothing must be in [0, 1); got {label_smoothing!r}")
        self.model = create_model(backbone, family=family, n=n, in_channels=in_channels, num_classes=num_classes,
                                  **(model_kwargs or {}))
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        top_k = min(5, num_classes)
        # keyed "<stage>_" because a Module already has a `train` attribute
        self.metrics = nn.ModuleDict({
            f"{stage}_": MetricCollection(
                {"acc": MulticlassAccuracy(num_classes, average="micro")}
                | ({"acc_top5": MulticlassAccuracy(num_classes, top_k=top_k, average="micro")}
                   if stage == "test" else {}),
                prefix=f"{stage}/",
            )
            for stage in _STAGES
        })

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def step(self, batch: Any, stage: str) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.loss_fn(logits, labels)
        metrics = self.metrics[f"{stage}_"]
        metrics.update(logits.detach(), labels)
        # epoch means under stable names (train/loss, val/loss, ...), averaged over DDP ranks
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(labels),
                 sync_dist=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "test", batch_size=len(labels))
        return loss

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Class probabilities and predicted labels; `batch` is images, (images, labels) or
        `{"images", "paths"}` (the DataModules' predict batches), whose paths are passed on."""
        if isinstance(batch, dict):
            images = batch["images"]
        else:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
        probs = torch.softmax(self(images).float(), dim=1)
        result: dict[str, Any] = {"probs": probs, "labels": probs.argmax(dim=1)}
        if isinstance(batch, dict) and "paths" in batch:
            result["paths"] = list(batch["paths"])
        return result
