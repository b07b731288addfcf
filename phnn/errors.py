"""phnn's exception types and the one error path of the `phnn` command.

Modules raise these where the fault is known, with a message that names the file, the value and
the fix. `phnn` (see `report_failures`) prints a user-facing failure as one `phnn <command>:
error: ...` message and exits with code 2; `PHNN_DEBUG=1` (or true, yes) re-raises it for the traceback. Bugs
(anything else) keep their traceback.

User-facing failures are: every `PHNNError`, every `ValueError` (bad configuration or input, the
convention of the whole code base) and every `OSError` (a missing file, a full or read-only disk,
no permission), which gets a hint for its `errno`.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable

#: exit code of a user-facing failure
EXIT_USER_ERROR = 2
#: exit code after SIGTERM stopped a run (128 + the signal number, as a shell reports it)
EXIT_SIGTERM = 143
#: the values of PHNN_DEBUG that turn debugging on (any other value, 0 and empty included, leaves it off)
DEBUG_ON = ("1", "true", "yes")


class PHNNError(Exception):
    """A failure the user can fix; its message says what, where and how."""


class UsageError(PHNNError, ValueError):
    """A command-line argument that cannot work (e.g. an `--out` file that is a folder)."""


class DatasetNotFoundError(PHNNError, FileNotFoundError, ValueError):
    """The dataset's files are not under `root` (and download is off)."""


class DataFileError(PHNNError, ValueError):
    """An input file that cannot be read or is invalid (a corrupt image, a bad clip); names the file."""


class CheckpointError(PHNNError, ValueError):
    """A checkpoint that cannot be used: missing, empty, truncated, unsafe, or another task's."""


class ConfigFileError(PHNNError, ValueError):
    """A config file that cannot be used: not found, too large, too deeply nested or too many values."""


#: the fix for an OSError, by errno (its strerror already says what happened)
_OS_HINTS: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free some space, or write somewhere else",
    errno.EDQUOT: "the disk quota is used up: free some space, or write somewhere else",
    errno.EROFS: "write somewhere else",
    errno.EACCES: "check the owner and mode of the file and its folder, or write somewhere else",
    errno.EPERM: "check the owner and mode of the file and its folder, or write somewhere else",
    errno.ENOENT: "check the path",
    errno.EISDIR: "give a file name, not a folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
}


def _unwrap_worker_message(error: BaseException, text: str) -> str:
    """The original message of an exception re-raised from a DataLoader worker (which wraps it in
    "Caught X in DataLoader worker process k. Original Traceback ...")."""
    if "Original Traceback" not in text:
        return text
    cls = type(error)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    start = text.rfind(f"\n{name}: ")
    return text[start + len(name) + 3:].strip() if start >= 0 else text


def _union_reason(text: str) -> str:
    """Our message without jsonargparse's wrapping ("Does not validate against any of the Union
    subtypes ... - <our message>") when a class failed to build."""
    reasons = [line[4:] for line in text.splitlines() if line.startswith("  - ") and "NoneType" not in line]
    return "\n".join(reasons) if "Union subtypes" in text and reasons else text


def describe(error: BaseException) -> str | None:
    """The message to show for a user-facing failure, or None for a bug (which keeps its traceback)."""
    if isinstance(error, OSError) and not isinstance(error, PHNNError):
        hint = _OS_HINTS.get(error.errno or -1)
        where = error.filename if error.filename is not None else None
        reason = error.strerror or _unwrap_worker_message(error, str(error))
        text = f"{where}: {reason}" if where is not None else reason
        return f"{text} ({hint})" if hint else text
    if isinstance(error, (PHNNError, ValueError)):
        return _union_reason(_unwrap_worker_message(error, str(error)))
    return None


def debugging() -> bool:
    """Whether PHNN_DEBUG asks for tracebacks (1, true or yes, in any case)."""
    return os.environ.get("PHNN_DEBUG", "").strip().lower() in DEBUG_ON


def report_failures(command: str, run: Callable[[], int]) -> int:
    """Run `run()` and return its exit code; a user-facing failure becomes one message on stderr and
    exit code 2 (with `PHNN_DEBUG=1` it is re-raised, traceback and all)."""
    try:
        return run()
    except Exception as error:
        message = describe(error)
        if message is None or debugging():
            raise
        print(f"phnn {command}: error: {message}\n(set PHNN_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_USER_ERROR
