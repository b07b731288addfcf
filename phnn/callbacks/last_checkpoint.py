"""`LastCheckpoint`: `last.ckpt` is the last completed epoch, always, and SIGTERM saves before exiting.

Lightning's `ModelCheckpoint(save_last=True)` rewrites `last.ckpt` only when it also saved a
top-k checkpoint, i.e. when the monitored metric improved: after a kill, resuming could restart
many epochs back. This callback writes `last.ckpt` at the end of every training epoch (after that
epoch's validation) and, when a scheduler sends SIGTERM, where the run stopped (mid-epoch:
Lightning resumes it there). The file is written atomically by the Trainer's checkpoint IO
(`phnn.checkpoint.SafeCheckpointIO` in the CLI).
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


class LastCheckpoint(ModelCheckpoint):
    """Save `<dirpath>/last.ckpt` after every training epoch and on SIGTERM (dirpath: the run's
    `checkpoints/` folder unless given)."""

    def __init__(self, dirpath: str | Path | None = None) -> None:
        super().__init__(dirpath=dirpath, filename=self.CHECKPOINT_NAME_LAST, monitor=None, save_top_k=1,
                         save_on_train_epoch_end=True, enable_version_counter=False)

    @property
    def last_path(self) -> Path:
        return Path(self.dirpath or ".") / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and self.dirpath is not None:
            trainer.save_checkpoint(self.last_path)
