"""Which task wrote a checkpoint: phnn's tasks by the names a checkpoint records, and the check that
a checkpoint is given to the task that wrote it (an image classification checkpoint given to the
sound event detection task is refused in those words, before its weights are looked at)."""

from __future__ import annotations

import os
from typing import Any

from phnn.errors import CheckpointError


def task_classes() -> dict[str, type]:
    """phnn's tasks by every name a checkpoint may use for them (module path and package path)."""
    from phnn.tasks import ImageClassifier, SoundEventDetector

    return {name: cls for cls in (ImageClassifier, SoundEventDetector)
            for name in (f"{cls.__module__}.{cls.__qualname__}", f"phnn.tasks.{cls.__qualname__}")}


def describe_task(cls: type) -> str:
    """'image classification (ImageClassifier)': how messages name a task."""
    return f"{getattr(cls, 'kind', 'phnn task')} ({cls.__qualname__})"


def check_task(path: str | os.PathLike[str], checkpoint: dict[str, Any], expected_task: type) -> None:
    """Raise a `CheckpointError` when `checkpoint` is not from `expected_task` (e.g. an image
    classification checkpoint given to the sound event detection task)."""
    record = checkpoint.get("phnn")
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: not a phnn checkpoint (no 'phnn' record of its task); "
                              "use a checkpoint written by `phnn fit`")
    written_by = task_classes().get(record.get("task"))
    if written_by is None or not issubclass(written_by, expected_task):
        what = describe_task(written_by) if written_by else f"task {record.get('task')!r}"
        article = "an" if what[0] in "aeiou" else "a"
        raise CheckpointError(
            f"{path}: {article} {what} checkpoint given to the {describe_task(expected_task)} task; use a "
            f"checkpoint trained for {getattr(expected_task, 'kind', 'this task')}, or the config of the run that "
            "wrote this one")
