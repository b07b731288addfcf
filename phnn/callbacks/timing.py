"""`Timing`: what a step costs, so that layer families can be compared on cost as well as accuracy.

Training: mean time of a training step (forward, backward, optimizer) and mean time spent between
steps waiting for the next batch (data loading and host→device copy), with its share of the whole
step cycle — `data_fraction = wait / (wait + step)`. Inference: samples per second in validate,
test and predict, counted by the task (`samples_in(batch)`: images, or clips for SED — not channels).
Logged as `timing/*` and printed as a short summary when fit/test/predict ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info

# device type -> how to wait for queued kernels, so that a step's wall time is its real cost
_SYNCHRONIZE: dict[str, Callable[[torch.device], None]] = {
    "cuda": torch.cuda.synchronize,
    "mps": lambda device: torch.mps.synchronize(),
}


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the leading size of its first tensor (images, features, or a dict's first)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            size = _batch_size(item)
            if size:
                return size
    return 0


@dataclass
class _Meter:
    """Running total of seconds and counts (steps or samples)."""

    seconds: float = 0.0
    count: int = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.seconds += seconds
        self.count += count

    @property
    def mean(self) -> float:
        return self.seconds / self.count if self.count else 0.0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


class Timing(Callback):
    """Log training-step time, data-wait time and inference throughput.

    Args:
        warmup_steps: training steps (per fit) and inference batches (per loop) left out of the means:
            the first ones pay for lazy initialisation, allocator growth and kernel selection.
        summary: print a one-line summary at the end of fit, validate, test and predict.
    """

    def __init__(self, warmup_steps: int = 2, summary: bool = True) -> None:
        if warmup_steps < 0:
            raise ValueError(f"Timing: warmup_steps must be >= 0; got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self.summary = summary
        self.step = _Meter()
        self.wait = _Meter()
        self.inference: dict[str, _Meter] = {}
        self._train_seen = 0
        self._inference_seen: dict[str, int] = {}
        self._last_end: float | None = None
        self._start = 0.0
        self._wait_s = 0.0
        self.unit = "samples"  # what the task counts (its `sample_unit`, e.g. clips)

    # --- helpers --------------------------------------------------------------------------------

    def _now(self, pl_module: LightningModule) -> float:
        synchronize = _SYNCHRONIZE.get(pl_module.device.type)
        if synchronize is not None:
            synchronize(pl_module.device)
        return time.perf_counter()

    @property
    def data_fraction(self) -> float:
        """Share of the step cycle spent waiting for data: wait / (wait + step)."""
        cycle = self.wait.mean + self.step.mean
        return self.wait.mean / cycle if cycle > 0 else 0.0

    def metrics(self) -> dict[str, float]:
        """The measured means so far, by the names they are logged under."""
        values: dict[str, float] = {}
        if self.step.count:
            values |= {"timing/train_step_ms": 1e3 * self.step.mean, "timing/data_wait_ms": 1e3 * self.wait.mean,
                       "timing/data_fraction": self.data_fraction}
        for stage, meter in self.inference.items():
            if meter.count:
                values[f"timing/{stage}_samples_per_s"] = meter.rate
        return values

    def _print_summary(self, stages: tuple[str, ...]) -> None:
        if not self.summary:
            return
        parts = []
        if "train" in stages and self.step.count:
            parts.append(f"train step {1e3 * self.step.mean:.1f} ms, data wait {1e3 * self.wait.mean:.1f} ms "
                         f"({100 * self.data_fraction:.1f}% of the step cycle) over {self.step.count} steps")
        for stage in stages:
            meter = self.inference.get(stage)
            if meter is not None and meter.count:
                parts.append(f"{stage} {meter.rate:,.1f} {self.unit}/s")
        if parts:
            rank_zero_info("Timing: " + "; ".join(parts))

    # --- training -------------------------------------------------------------------------------

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.step, self.wait, self._train_seen = _Meter(), _Meter(), 0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_end = self._now(pl_module)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        self._start = self._now(pl_module)
        self._wait_s = self._start - self._last_end if self._last_end is not None else 0.0

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._last_end = self._now(pl_module)
        self._train_seen += 1
        if self._train_seen > self.warmup_steps:
            self.step.add(self._last_end - self._start)
            self.wait.add(self._wait_s)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last_end = None
        if self.step.count:
            pl_module.log_dict({k: v for k, v in self.metrics().items() if not k.endswith("_samples_per_s")},
                               sync_dist=True)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print_summary(("train", "val"))

    # --- inference: validate, test, predict -----------------------------------------------------

    def _inference_start(self, stage: str, trainer: Trainer) -> None:
        if not trainer.sanity_checking:
            self.inference[stage] = _Meter()
            self._inference_seen[stage] = 0

    def _batch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._start = self._now(pl_module)

    def _batch_end(self, stage: str, trainer: Trainer, pl_module: LightningModule, batch: Any) -> None:
        if trainer.sanity_checking:
            return
        end = self._now(pl_module)
        self._inference_seen[stage] += 1
        if self._inference_seen[stage] > self.warmup_steps:
            count = pl_module.samples_in(batch) if hasattr(pl_module, "samples_in") else _batch_size(batch)
            self.inference[stage].add(end - self._start, count)
            self.unit = getattr(pl_module, "sample_unit", "samples")

    def _inference_end(self, stage: str, pl_module: LightningModule, log: bool) -> None:
        meter = self.inference.get(stage)
        if log and meter is not None and meter.count:
            pl_module.log(f"timing/{stage}_samples_per_s", meter.rate, sync_dist=True)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._inference_start("val", trainer)

    def on_validation_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        self._batch_start(trainer, pl_module)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end("val", trainer, pl_module, batch)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._inference_end("val", pl_module, log=True)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._print_summary(("val",))

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._inference_start("test", trainer)

    def on_test_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int,
                            dataloader_idx: int = 0) -> None:
        self._batch_start(trainer, pl_module)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end("test", trainer, pl_module, batch)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._inference_end("test", pl_module, log=True)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print_summary(("test",))

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._inference_start("predict", trainer)

    def on_predict_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int,
                               dataloader_idx: int = 0) -> None:
        self._batch_start(trainer, pl_module)

    def on_predict_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                             batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end("predict", trainer, pl_module, batch)

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._print_summary(("predict",))
