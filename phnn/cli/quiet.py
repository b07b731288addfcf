"""Library warnings and info lines known to be harmless or advertisements, hidden while the CLI runs
(never on `import phnn`)."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

HARMLESS_WARNINGS: tuple[str, ...] = (
    # TensorBoard and CSV share each run's folder on purpose; the CSV logger warns when it finds it in use
    r"Experiment logs directory .* exists and is not empty",
    # main(args) runs in-process on purpose (tests, scripts): the host's own sys.argv is not ours
    r"LightningCLI's args parameter is intended to run from within Python",
    # Lightning 2.6 on torch 2.11 uses a deprecated pytree class internally
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
#: validate/test/predict restore only the weights: the fit's ModelCheckpoint is not needed, not missing
CHECKPOINT_CALLBACKS_WARNING = r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint"
#: Lightning's info lines that are advertisements rather than information
HIDDEN_INFO: tuple[str, ...] = ("💡 Tip:",)


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(HIDDEN_INFO)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Filter `HARMLESS_WARNINGS` and `HIDDEN_INFO` for the duration of one CLI run."""
    quiet = _Quiet()
    loggers = [logging.getLogger(f"lightning.{part}.utilities.rank_zero") for part in ("pytorch", "fabric")]
    with warnings.catch_warnings():
        for message in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        for logger in loggers:
            logger.addFilter(quiet)
        try:
            yield
        finally:
            for logger in loggers:
                logger.removeFilter(quiet)


@contextlib.contextmanager
def without_checkpoint_callbacks_warning() -> Iterator[None]:
    """Hide Lightning's warning that the fit's callbacks are not restored with `ckpt_path`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=CHECKPOINT_CALLBACKS_WARNING)
        yield
