"""Atomic file writes: write to a temporary file in the target's folder, then rename it into place.

A reader (or a resumed run) never sees a half-written file under its final name, and an existing
file is replaced whole. The temporary file is ``.<name>.tmp-<pid>-<thread>-<random><suffix>`` in
the same folder (hidden, unique per process and thread, created exclusively), so concurrent
writers never share one, and a leftover from a killed process is recognisably temporary. It is
created like ``open(path, "w")`` would create it (mode 0o666 less the umask), and removed when the
write fails.

Every writer goes through ``atomic_path``, which is also the one place that decides what may be
replaced (``check_output``): a regular file or nothing. A symbolic link, a folder, a device file,
a FIFO or a socket under the target name is refused, and so is any file the running command
declared as one of its inputs (``protected_inputs``). A write that fails without naming its file
(numpy's ``N requested and M written``, torch's ``unexpected pos``) is raised as an ``OSError``
naming the target, so the CLI ends it in its one-line error.

    with atomic_path(out / "model.pt2", suffix=".pt2") as tmp:   # for writers that take a path
        torch.export.save(program, tmp)
    with atomic_open(out / "events.csv", "w", newline="") as file:  # for writers that take a file
        csv.writer(file).writerows(rows)
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\\n")
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from phnn.errors import UsageError

#: matches the temporary files of this module in a folder (for ``Path.glob``).
TEMPORARY_GLOB = ".*.tmp-*"


#: (device, inode) of the files the running command reads; ``check_output`` refuses to replace them
_INPUTS: dict[tuple[int, int], str] = {}
#: below this much free space, a write that failed without an errno is reported as a full disk
_NEARLY_FULL_BYTES = 16 * 2**20

_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


@contextmanager
def protected_inputs(paths: Iterable[str | os.PathLike[str]], what: str = "an input of this command") -> Iterator[None]:
    """While the block runs, no write of this process may replace one of ``paths`` (files the command
    reads: a label CSV, a prediction file, a checkpoint). Links are followed: the file itself is protected."""
    added = {}
    for path in paths:
        key = _identity(Path(path))
        if key is not None and key not in _INPUTS:
            added[key] = f"{path} is {what}"
    _INPUTS.update(added)
    try:
        yield
    finally:
        for key in added:
            _INPUTS.pop(key, None)


def check_output(path: str | os.PathLike[str]) -> None:
    """Refuse (``UsageError`` naming ``path``) to write ``path`` unless it is absent or a regular file
    that is not an input of the running command."""
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError:
        return  # e.g. a part of the path is a file: the write itself names the fault
    for is_kind, kind in _KINDS:
        if is_kind(info.st_mode):
            raise UsageError(f"{path}: is {kind}; phnn replaces only regular files: remove it or write elsewhere")
    reason = _INPUTS.get((info.st_dev, info.st_ino))
    if reason is not None:
        raise UsageError(f"{path}: will not write over it ({reason}); write the output elsewhere")


def write_failure(path: Path, error: BaseException) -> OSError:
    """An ``OSError`` naming ``path`` for a write that failed without naming it; its errno says a full
    disk when the folder's disk has (nearly) no space left and the error gave none."""
    code = getattr(error, "errno", None)
    if code is None:
        try:
            nearly_full = shutil.disk_usage(path.parent).free < _NEARLY_FULL_BYTES
        except OSError:
            nearly_full = False
        code = errno.ENOSPC if nearly_full else errno.EIO
    lines = str(error).strip().splitlines()
    reason = getattr(error, "strerror", None) or (lines[-1] if lines else os.strerror(code))
    return OSError(code, f"writing failed: {reason}", str(path))


def _unnamed_write_failure(error: BaseException) -> bool:
    """An OSError without a file name, or the RuntimeError of torch's zip writer when a write fails."""
    if isinstance(error, OSError):
        return error.filename is None
    text = str(error)
    return isinstance(error, RuntimeError) and ("unexpected pos" in text or "file write failed" in text)


def _create_temporary(path: Path, suffix: str) -> Path:
    while True:
        token = f"{os.getpid()}-{threading.get_ident():x}-{secrets.token_hex(4)}"
        tmp = path.with_name(f".{path.name}.tmp-{token}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) from the OS caches to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "", sync: bool = False) -> Iterator[Path]:
    """A fresh empty temporary file next to ``path`` (its folder is created); renamed over ``path``
    when the block ends normally, removed when it raises.

    ``suffix`` ends the temporary name, for writers that pick the format from the extension.
    ``sync``: fsync the file before the rename and the folder after it, so that a power loss leaves
    the old file or the new one (for checkpoints and the feature cache; it costs a disk flush per file).
    """
    path = Path(path)
    check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path, suffix)
    try:
        yield tmp
        if sync:
            _fsync(tmp)
        check_output(path)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, Exception) and _unnamed_write_failure(error):
            raise write_failure(path, error) from error
        raise
    if sync:
        _fsync(path.parent)


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", sync: bool = False, **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode, **kwargs)`` on a temporary file, closed and then renamed over ``path``
    when the block ends normally (``mode``: ``"w"`` or ``"wb"``; ``sync``: see ``atomic_path``)."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open writes a new file; mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path, sync=sync) as tmp, open(tmp, mode, **kwargs) as file:
        yield file


def write_text_atomic(path: str | os.PathLike[str], text: str, sync: bool = False) -> None:
    """Write `text` to `path` atomically (temp file + rename); `sync` also fsyncs it."""
    with atomic_open(path, "w", sync=sync) as file:
        file.write(text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically (temp file + rename)."""
    with atomic_open(path, "wb") as file:
        file.write(data)


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray, sync: bool = False) -> None:
    """``np.save`` to ``path`` (which should end in ``.npy``: no extension is added) atomically."""
    with atomic_open(path, "wb", sync=sync) as file:
        np.save(file, array)
