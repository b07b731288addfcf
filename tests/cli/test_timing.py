"""The Timing callback measures what it says: step time, data wait and its share, inference throughput."""

from __future__ import annotations

import time

import cli_helpers  # noqa: F401  registers the tiny_cnn backbone
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, Dataset

from phnn.callbacks import Timing
from phnn.tasks import ImageClassifier
from phnn.tasks.base import PHTask


class SlowImages(Dataset):
    """4×4 images that take `delay` seconds each to load."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        time.sleep(self.delay)
        return torch.rand(4, 4, 4), index % 2


def test_timing_separates_data_wait_from_the_step(tmp_path) -> None:
    timing = Timing(warmup_steps=0, summary=False)
    model = ImageClassifier("tiny_cnn", "real", num_classes=2, in_channels=4, lr_scheduler=None)
    assert isinstance(model, PHTask)
    trainer = Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=[timing],
                      num_sanity_val_steps=0, default_root_dir=tmp_path)
    slow = DataLoader(SlowImages(0.02), batch_size=2)  # 40 ms of loading per batch
    trainer.fit(model, slow, DataLoader(SlowImages(0.0), batch_size=4))
    assert timing.step.count == 4 and timing.step.mean > 0
    assert 0.03 < timing.wait.mean < 1.0
    assert timing.data_fraction == timing.wait.mean / (timing.wait.mean + timing.step.mean)
    metrics = timing.metrics()
    assert metrics["timing/val_samples_per_s"] > 0 and metrics["timing/data_wait_ms"] > 30
    assert "timing/train_step_ms" in trainer.callback_metrics
