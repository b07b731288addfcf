"""Fault injection, by families: what phnn's writers replace, run versions, bounds, counted warnings,
full disks and hostile downloads. Each family generates its variants; see docs/safety.md."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from phnn import notices, runs
from phnn.cli import main
from phnn.errors import UsageError, describe
from phnn.io import TEMPORARY_GLOB, atomic_path, protected_inputs, save_npy_atomic, write_text_atomic

# -- what a writer may replace ----------------------------------------------------------------------

def _symlink(path: Path) -> None:
    (path.parent / "target.txt").write_text("target")
    path.symlink_to(path.parent / "target.txt")


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "gone.txt")


SPECIAL = {
    "symlink": (_symlink, "a symbolic link"),
    "dangling symlink": (_dangling, "a symbolic link"),
    "folder": (lambda path: path.mkdir(), "a folder"),
    "fifo": (lambda path: os.mkfifo(path), "a FIFO"),
}
WRITERS: dict[str, Callable[[Path], None]] = {
    "text": lambda path: write_text_atomic(path, "new"),
    "npy": lambda path: save_npy_atomic(path, np.zeros(2)),
    "path": lambda path: atomic_path(path).__enter__(),
}


def _snapshot(path: Path) -> tuple:
    info = os.lstat(path)
    return info.st_mode, info.st_ino, os.readlink(path) if path.is_symlink() else None


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("kind", SPECIAL)
def test_writers_replace_only_regular_files(tmp_path: Path, kind: str, writer: str) -> None:
    target = tmp_path / "out.file"
    make, described = SPECIAL[kind]
    make(target)
    before = _snapshot(target)
    with pytest.raises(UsageError, match=f"{target}: is {described}.*; phnn replaces only regular files"):
        WRITERS[writer](target)
    assert _snapshot(target) == before
    assert not list(tmp_path.glob(TEMPORARY_GLOB))
    assert not (tmp_path / "target.txt").exists() or (tmp_path / "target.txt").read_text() == "target"


@pytest.mark.parametrize("writer", WRITERS)
def test_device_files_are_refused(writer: str) -> None:
    with pytest.raises(UsageError, match="/dev/null: is a character device"):
        WRITERS[writer](Path("/dev/null"))


@pytest.mark.parametrize("name", ["label.csv", "link_to_label.csv"])
def test_a_command_never_writes_over_its_inputs(tmp_path: Path, name: str) -> None:
    label = tmp_path / "label.csv"
    label.write_text("File,Start\n")
    if name != label.name:
        (tmp_path / name).symlink_to(label)
    with protected_inputs([tmp_path / name], "a label file"), \
            pytest.raises(UsageError, match="will not write over it .*is a label file"):
        write_text_atomic(label, "{}")
    assert label.read_text() == "File,Start\n"
    write_text_atomic(label, "outside the command")  # protection ends with the command
    assert label.read_text() == "outside the command"


# -- run versions -----------------------------------------------------------------------------------

def test_run_versions_are_claimed_exclusively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runs.CLAIMED_ENV, raising=False)
    # every process sees the same highest version at once (as two fits started together do)
    monkeypatch.setattr(runs, "next_version", lambda root: 0)
    claimed: list[int] = []

    def claim() -> None:
        claimed.append(runs.claim_version(tmp_path / "runs" / "name"))

    root = tmp_path / "runs" / "name"
    with runs.claiming():
        threads = [threading.Thread(target=claim) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(claimed) == list(range(8))
        assert sorted(p.name for p in root.iterdir()) == sorted(f"version_{k}" for k in range(8))
    assert runs.CLAIMED_ENV not in os.environ
    assert list(tmp_path.iterdir()) == []  # left empty: given back, with the folders claiming made


def test_a_failed_command_gives_its_claimed_version_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runs.CLAIMED_ENV, raising=False)
    (tmp_path / "run" / "version_0").mkdir(parents=True)
    with pytest.raises(ValueError), runs.claiming():
        assert runs.claim_version(tmp_path / "run") == 1
        raise ValueError("the model could not be built")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["version_0"]


# -- bounds: every numeric option is checked before anything is written ----------------------------

BAD_OPTIONS = [
    (["score", "PRED", "--labels", "LABELS", "--spatial-threshold", "-1"], "--spatial-threshold=-1.0", "(0, 1000]"),
    (["score", "PRED", "--labels", "LABELS", "--spatial-threshold", "nan"], "--spatial-threshold=nan", "(0, 1000]"),
    (["score", "PRED", "--labels", "LABELS", "--duration", "inf"], "--duration=inf", "(0, 86400]"),
    (["export", "CKPT", "--format", "torchscript", "--out", "OUT/m.pt", "--batch-size", "-1"], "--batch-size=-1",
     "[1, 4096]"),
    (["export", "CKPT", "--format", "torchscript", "--out", "OUT/m.pt", "--tolerance", "-1"], "--tolerance=-1.0",
     "[0, 1000]"),
    (["synth", "--out", "OUT", "--duration", "1e9"], "--duration=1000000000.0", "(0.5, 300]"),
    (["synth", "--out", "OUT", "--duration", "nan"], "--duration=nan", "(0.5, 300]"),
    (["synth", "--out", "OUT", "--dev-clips", "-1"], "--dev-clips=-1", "[0, 100000]"),
    (["download", "l3das21", "--out", "OUT", "--retries", "-1"], "--retries=-1", "[0, 100]"),
    (["download", "l3das21", "--out", "OUT", "--max-extract-bytes", "0"], "--max-extract-bytes=0", "[1, "),
]


@pytest.mark.parametrize(("argv", "named", "bound"), BAD_OPTIONS,
                         ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_numbers_end_in_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       argv: list[str], named: str, bound: str) -> None:
    for folder in ("PRED", "LABELS"):
        (tmp_path / folder).mkdir()
    (tmp_path / "LABELS" / "label_a.csv").write_text("File,Start,End,Class,X,Y,Z\n")
    (tmp_path / "CKPT").write_bytes(b"")
    before = sorted(tmp_path.rglob("*"))
    code = main([str(tmp_path / a) if a in ("PRED", "LABELS", "CKPT", "OUT", "OUT/m.pt") else a for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines[0].startswith(f"phnn {argv[0]}: error: {named}: expected") and bound in lines[0], lines
    assert len(lines) == 2 and "Traceback" not in lines[1]
    assert sorted(tmp_path.rglob("*")) == before


# -- silent data changes become counted warnings ----------------------------------------------------

HEADER = "File,Start,End,Class,X,Y,Z"
ROW = "split0_ov1_1,0.5,1.0,Knock,1.0,0.5,0.0"
LABEL_CHANGES = [
    ([ROW, ROW], {"duplicate_label_rows": 1}, 6),  # frames 5-10 once, not twice
    ([ROW, ROW, ROW], {"duplicate_label_rows": 2}, 6),
    ([ROW, "split0_ov1_1,1.5,3.5,Knock,1.0,0.5,0.0"], {"clipped_events": 1}, 6 + 5),  # frames 15-19 of 20
    (["split0_ov1_1,1.0,1.0,Knock,1.0,0.5,0.0"], {"zero_length_events": 1}, 1),
    (["split9_ov3_7,0.5,1.0,Knock,1.0,0.5,0.0", "split9_ov3_7,1.5,1.7,Knock,1.0,0.5,0.0"],
     {"label_file_names_other_clip": 1}, 6 + 3),
    ([ROW], {}, 6),
]


@pytest.mark.parametrize(("rows", "counted", "active"), LABEL_CHANGES)
def test_label_changes_are_counted(tmp_path: Path, rows: list[str], counted: dict[str, int], active: int) -> None:
    from phnn.data.l3das21.labels import load_targets

    path = tmp_path / "label_split0_ov1_1.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    with notices.collecting():
        sed, _ = load_targets(path, 20, "nearest", 2.0)
        assert notices.counts() == counted
        assert notices.metrics()["data/warnings"] == sum(counted.values())
    assert int(sed.sum()) == active


@pytest.mark.parametrize("field", ["X", "Y", "Z"])
@pytest.mark.parametrize("value", ["1e9", "-100.5", "inf"])
def test_label_coordinates_are_bounded(tmp_path: Path, field: str, value: str) -> None:
    from phnn.data.l3das21.labels import read_events

    values = {"X": "1", "Y": "0", "Z": "0", field: value}
    path = tmp_path / "label_a.csv"
    path.write_text(f"{HEADER}\na,0.5,1.0,Knock,{values['X']},{values['Y']},{values['Z']}\n")
    with pytest.raises(ValueError, match=rf"label_a\.csv, row 1 \(line 2\): field {field}="):
        read_events(path)


def test_warnings_of_a_cached_clip_are_counted_in_every_run(l3das21_root: Path, tmp_path: Path) -> None:
    import shutil

    from phnn.data.l3das21.features import FeatureCache
    from phnn.data.l3das21.layout import find_clips

    root = tmp_path / "root"
    shutil.copytree(l3das21_root / "L3DAS_Task2_dev", root / "L3DAS_Task2_dev")
    clip = find_clips(root, "dev", "A")[0]
    with open(clip.labels, "a") as file:  # the last row again
        file.write(clip.labels.read_text().splitlines()[-1] + "\n")
    cache = FeatureCache(tmp_path / "cache")
    for _ in range(2):  # built, then read from the cache
        with notices.collecting():
            cache.build("dev", [clip], progress=False)
            assert notices.counts() == {"duplicate_label_rows": 1}


def test_a_wav_rewritten_with_the_same_size_and_time_is_recomputed(l3das21_root: Path, tmp_path: Path) -> None:
    import shutil

    import soundfile

    from phnn.data.l3das21.features import FeatureCache
    from phnn.data.l3das21.layout import find_clips

    root = tmp_path / "root"
    shutil.copytree(l3das21_root / "L3DAS_Task2_dev", root / "L3DAS_Task2_dev")
    clip = find_clips(root, "dev", "A")[0]
    cache = FeatureCache(tmp_path / "cache")
    cache.build("dev", [clip], progress=False)
    before = np.load(cache.feature_path("dev", clip.stem, "A"))
    wav = clip.audio["A"]
    info = os.stat(wav)
    audio, _ = soundfile.read(wav, dtype="int16")
    with open(wav, "r+b") as file:  # the same size, other samples, then the old modification time
        file.seek(-len(audio.tobytes()), os.SEEK_END)
        file.write((audio // 2).tobytes())
    os.utime(wav, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert os.stat(wav).st_size == info.st_size
    report = cache.build("dev", [clip], progress=False)
    assert "rewritten" in report.rebuilt[clip.stem]
    assert not np.array_equal(np.load(cache.feature_path("dev", clip.stem, "A")), before)


# -- predict folders: what is not a regular file is skipped with a word -----------------------------

ENTRIES: dict[str, Callable[[Path], None]] = {
    "dangling symlink": lambda path: path.symlink_to(path.parent / "gone"),
    "symlink loop": lambda path: path.symlink_to(path),
    "fifo": lambda path: os.mkfifo(path),
    "device link": lambda path: path.symlink_to("/dev/null"),
}


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("suffix", [".wav", ".png"])
def test_predict_folders_skip_odd_entries_with_a_counted_warning(tmp_path: Path, entry: str, suffix: str) -> None:
    from phnn.data.image import find_images
    from phnn.data.l3das21.datamodule import find_predict_groups

    good = tmp_path / f"good{suffix}"
    good.write_bytes(b"x")
    ENTRIES[entry](tmp_path / f"odd{suffix}")
    with notices.collecting():
        if suffix == ".wav":
            assert [files for _, files, _ in find_predict_groups(tmp_path, "A")] == [[good]]
        else:
            assert find_images(tmp_path) == [good]
        assert notices.counts() == {"skipped_inputs": 1}


# -- full disks: the one-line error names the file --------------------------------------------------

FULL_DISK_FAULTS = {
    "torch zip writer": RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 1024 vs 980"),
    "numpy tofile": OSError("983040 requested and 151488 written"),
    "ENOSPC without a name": OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
}


@pytest.mark.parametrize("fault", FULL_DISK_FAULTS)
def test_a_full_disk_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    import phnn.io

    monkeypatch.setattr(phnn.io, "_NEARLY_FULL_BYTES", 1 << 62)  # whatever this disk has: "nearly full"
    target = tmp_path / "checkpoints" / "last.ckpt"

    def write(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise FULL_DISK_FAULTS[fault]

    from phnn.checkpoint import save_durably

    with pytest.raises(OSError) as raised:
        save_durably(target, write)
    message = describe(raised.value)
    assert message is not None and message.startswith(f"{target}: ") and "disk is full" in message
    assert not list(target.parent.glob(TEMPORARY_GLOB)) and not target.exists()


def test_a_full_disk_while_a_checkpoint_is_written_ends_in_one_line(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import phnn.io
    from phnn.checkpoint import SafeCheckpointIO

    monkeypatch.setattr(phnn.io, "_NEARLY_FULL_BYTES", 1 << 62)
    real_save = torch.save

    def save_on_a_full_disk(obj: object, file: object, *a: object, **k: object) -> None:
        real_save(obj, file, *a, **k)
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 1024 vs 980")

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    target = tmp_path / "last.ckpt"
    with pytest.raises(OSError, match="unexpected pos") as raised:
        SafeCheckpointIO().save_checkpoint({"w": torch.ones(2)}, target)
    assert raised.value.filename == str(target) and raised.value.errno == errno.ENOSPC


# -- downloads --------------------------------------------------------------------------------------

def _many_small_members(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("L3DAS_Task2_dev/data/a.wav", b"RIFF")
        for index in range(count):
            zf.writestr(f"L3DAS_Task2_dev/data/{index}.wav", bytes(1 << 20))  # 1 MiB each: under the per-member check
    return buffer.getvalue()


@pytest.mark.parametrize("count", [8, 40])
def test_many_small_members_are_limited_by_the_total(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     count: int) -> None:
    from phnn import download

    monkeypatch.setattr(download, "RATIO_FLOOR_BYTES", 4 << 20)
    archive = tmp_path / "L3DAS_Task2_dev.zip"
    archive.write_bytes(_many_small_members(count))
    with pytest.raises(ValueError, match=r"more than 100× its \d+ bytes on disk: a zip bomb\? not extracted"):
        download.extract(archive, tmp_path / "out", "L3DAS_Task2_dev")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # declared sizes that lie are caught on the bytes written, against the same total
    monkeypatch.setattr(download, "_check_members", lambda archive, zf, max_bytes: None)
    with pytest.raises(ValueError, match="expands past its declared size or the extraction limit"):
        download.extract(archive, tmp_path / "out", "L3DAS_Task2_dev")


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from phnn import download

    waits: list[float] = []
    monkeypatch.setattr(download.time, "sleep", waits.append)
    url = f"http://127.0.0.1:{_unused_port()}"
    code = main(["download", "l3das21", "--set", "dev", "--out", str(tmp_path / "out"), "--url-base", url,
                 "--md5", hashlib.md5(b"").hexdigest()])
    err = capsys.readouterr().err
    assert code == 2 and "connection refused" in err and "Traceback" not in err
    assert waits == []  # no retry, no backoff
    assert not list((tmp_path / "out").glob("*.part"))


def test_building_the_classes_only_leaves_no_run_folder(tmp_path: Path, image_folder: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "model.yaml"
    config.write_text("model:\n  class_path: ImageClassifier\n  init_args:\n    backbone: resnet18\n"
                      "    family: quaternion\ndata:\n  class_path: ImageFolderDataModule\n  init_args:\n"
                      f"    root: {image_folder}\n    extra_channel: zeros\n")
    assert main(["inspect", "--config", str(config), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "model.yaml", "out"]
