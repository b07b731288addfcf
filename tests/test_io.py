"""phnn.io: atomic writes replace whole, leave nothing behind on failure, and never share a temporary file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

import phnn.io
from phnn.io import TEMPORARY_GLOB, atomic_open, atomic_path, save_npy_atomic, write_bytes_atomic, write_text_atomic


def test_writes_create_the_folder_and_replace_whole(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file.txt"
    write_text_atomic(target, "first")
    write_text_atomic(target, "second")
    assert target.read_text() == "second"
    write_bytes_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    save_npy_atomic(tmp_path / "x.npy", np.arange(3))
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), np.arange(3))
    assert not list(tmp_path.rglob(TEMPORARY_GLOB))


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "file.csv"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_open(target, "w") as file:
        file.write("half")
        raise KeyboardInterrupt

    def broken_replace(src: Path, dst: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(phnn.io.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_text_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.csv"]


def test_temporary_is_hidden_unique_in_the_same_folder_with_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "model.pt2"
    with atomic_path(target, suffix=".pt2") as first, atomic_path(target, suffix=".pt2") as second:
        assert first != second and first.parent == second.parent == tmp_path
        assert first.name.startswith(".model.pt2.tmp-") and first.suffix == ".pt2"
        assert first.match(TEMPORARY_GLOB) and first.is_file()
        first.write_text("1")
        second.write_text("2")
    assert target.read_text() == "1"  # the outer block finishes last


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_concurrent_writers_of_one_file(tmp_path: Path) -> None:
    target = tmp_path / "shared.txt"
    texts = [str(i) * 10000 for i in range(8)]
    threads = [threading.Thread(target=write_text_atomic, args=(target, text)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_text() in texts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.txt"]


def test_read_modes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"), atomic_open(tmp_path / "x", "a"):
        pass
