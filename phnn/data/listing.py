"""The input files of a folder or a glob: regular files only, every other entry skipped with a word.

A prediction folder can hold entries that look like inputs by name but are not files to read: a
symbolic link whose target is gone (dangling) or that points back at itself (a loop), a FIFO (reading
it would block), a device file or a socket. `regular_files` keeps the regular files (links to them
followed) and skips each other entry with a counted warning (`phnn.notices`, kind
``skipped_inputs``) naming it and what it is. Folders are not reported: they are not inputs by name.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from phnn import notices

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _what(path: Path) -> str | None:
    """None for a regular file or a folder, else what the entry is (for the warning)."""
    try:
        mode = os.stat(path).st_mode  # follows links: a link to a regular file is a regular file
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "a symbolic link loop"
        if os.path.islink(path):
            return "a dangling symbolic link (its target is gone)"
        return f"unreadable ({error.strerror})"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return next((kind for is_kind, kind in _KINDS if is_kind(mode)), "not a regular file")


def regular_files(candidates: Iterable[Path], context: str) -> list[Path]:
    """The regular files among ``candidates``, in order; each entry that is neither a regular file nor a
    folder is skipped with a counted warning ``<context>: skipped <path>: it is <what>``."""
    files = []
    for path in candidates:
        what = _what(path)
        if what is not None:
            notices.warn("skipped_inputs", f"{context}: skipped {path}: it is {what}")
        elif not path.is_dir():
            files.append(path)
    return files
