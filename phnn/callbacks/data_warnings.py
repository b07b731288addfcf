"""`DataWarnings`: the counted warnings of a fit (`phnn.notices`) in the run's loggers.

The data is read (and the feature cache built, its warnings replayed) before training starts, so the
counts are logged once when the fit starts and again when it ends (a prediction or validation pass
may add some): ``data/warnings`` (the total) and ``data/warnings/<kind>`` in ``metrics.csv`` and
TensorBoard. Nothing is logged by a fit without warnings.
"""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer

from phnn import notices


class DataWarnings(Callback):
    """Log `phnn.notices.metrics()` to every logger of the trainer at the start and the end of a fit."""

    def _log(self, trainer: Trainer) -> None:
        counted = notices.metrics()
        if not counted[notices.METRIC_PREFIX] or not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            logger.log_metrics(counted, step=trainer.global_step)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer)
