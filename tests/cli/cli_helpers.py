"""Test helpers for the CLI tests, importable by class path (also in DDP worker processes):
a tiny registered backbone, and callbacks that record what a run saw."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import nn

from phnn.models import LayerFamily, register_model


@register_model("tiny_cnn")
def tiny_cnn(family: LayerFamily, in_channels: int, num_classes: int, width: int = 8) -> nn.Module:
    """One family conv, BN, ReLU, global pool, Linear: a few hundred parameters, milliseconds a step."""
    return nn.Sequential(family.conv(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


class RecordBatches(Callback):
    """Write, per rank, a hash of every training batch to `<folder>/rank<r>.json`."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.hashes: list[str] = []

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        for image in batch[0]:
            self.hashes.append(hashlib.sha1(image.float().cpu().numpy().tobytes()).hexdigest())

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        info = {"world_size": trainer.world_size, "hashes": self.hashes, "pid": os.getpid()}
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(info))


class RecordResume(Callback):
    """Save the epoch and optimizer state that training starts from to `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        torch.save({"epoch": trainer.current_epoch, "optimizer": trainer.optimizers[0].state_dict()}, self.path)


class CollectPredictions(BasePredictionWriter):
    """Keep every prediction batch; with `fail`, report each batch as a failure like a real writer would."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.fail = fail
        self.predictions: list[dict[str, torch.Tensor]] = []
        self.failures: list[str] = []

    def write_on_batch_end(self, trainer: Trainer, pl_module: LightningModule, prediction: Any, batch_indices: Any,
                           batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.predictions.append(prediction)
        if self.fail:
            self.failures.append(f"batch {batch_idx}: rejected on purpose")


class SignalAt(Callback):
    """Send `signal_name` (e.g. SIGTERM, SIGKILL) to this process before batch `batch` of epoch `epoch`."""

    def __init__(self, signal_name: str, epoch: int, batch: int = 0) -> None:
        self.signal_name, self.epoch, self.batch = signal_name, epoch, batch

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            os.kill(os.getpid(), getattr(signal, self.signal_name))


def echo_command(argv: list[str]) -> int:
    """An extra command for the dispatch test: its exit code is the number of its arguments."""
    return len(argv)
