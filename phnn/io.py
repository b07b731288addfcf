"""Atomic file writes: write to a temporary file in the target's folder, then rename it into place.

A reader (or a resumed run) never sees a half-written file under its final name, and an existing
file is replaced whole. The temporary file is ``.<name>.tmp-<pid>-<thread>-<random><suffix>`` in
the same folder (hidden, unique per process and thread, created exclusively), so concurrent
writers never share one, and a leftover from a killed process is recognisably temporary. It is
created like ``open(path, "w")`` would create it (mode 0o666 less the umask), and removed when the
write fails.

    with atomic_path(out / "model.pt2", suffix=".pt2") as tmp:   # for writers that take a path
        torch.export.save(program, tmp)
    with atomic_open(out / "events.csv", "w", newline="") as file:  # for writers that take a file
        csv.writer(file).writerows(rows)
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\\n")
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

#: matches the temporary files of this module in a folder (for ``Path.glob``).
TEMPORARY_GLOB = ".*.tmp-*"


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path, suffix)
    try:
        yield tmp
        if sync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
    with atomic_open(path, "w", sync=sync) as file:
        file.write(text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as file:
        file.write(data)


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray, sync: bool = False) -> None:
    """``np.save`` to ``path`` (which should end in ``.npy``: no extension is added) atomically."""
    with atomic_open(path, "wb", sync=sync) as file:
        np.save(file, array)
