"""No work lost: `last.ckpt` after every epoch, SIGKILL and SIGTERM during `phnn fit` (real
subprocesses) followed by a resume, and a disk that fills up while a checkpoint is written."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import cli_helpers  # noqa: F401  registers the tiny_cnn backbone
import pytest
import torch
from test_image_cli import RUN, tiny

from phnn.cli import main
from phnn.io import TEMPORARY_GLOB

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def start_fit(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """`python -m phnn fit ARGS` in `cwd`, started (not awaited): the two signal runs share the CPU time."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
    return subprocess.Popen([sys.executable, "-m", "phnn", "fit", *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def last_of(root: Path, version: int) -> Path:
    return root / RUN / f"version_{version}" / "checkpoints" / "last.ckpt"


def test_last_checkpoint_is_the_last_epoch_even_when_the_metric_never_improves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_folder_splits: Path) -> None:
    monkeypatch.chdir(tmp_path)
    # lr 0: val/acc is the same every epoch, so only epoch 0 is ever "best"
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=3", "--model.optimizer.lr=0.0")]) == 0
    folder = last_of(tmp_path, 0).parent
    assert checkpoint(folder / "best.ckpt")["epoch"] == 0
    assert checkpoint(folder / "last.ckpt")["epoch"] == 2
    assert not list(folder.glob(TEMPORARY_GLOB))
    # resumed for longer, the run-following cosine schedule follows the new length, not the saved T_max = 3
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=4", "--model.optimizer.lr=0.0"),
                 "--ckpt_path", "last"]) == 0
    resumed = checkpoint(last_of(tmp_path, 1))
    assert resumed["epoch"] == 3 and resumed["lr_schedulers"][0]["T_max"] == 4


def test_sigkill_and_sigterm_during_fit_then_resume(tmp_path: Path, image_folder_splits: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each epoch has 3 batches. SIGKILL at the start of epoch 1 loses only that epoch; SIGTERM after
    batch 1 of epoch 0 saves where it stopped and exits 143. Both runs resume to the end, and the
    resumed SIGKILL run equals an uninterrupted one: optimizer, scheduler and random streams went on."""
    args = tiny(image_folder_splits, "--trainer.max_epochs=2")
    killed, stopped, reference = tmp_path / "killed", tmp_path / "stopped", tmp_path / "reference"
    signal_at = ["--trainer.callbacks+=cli_helpers.SignalAt", "--trainer.callbacks.epoch"]
    runs = [start_fit(killed, *args, *signal_at[:1], "--trainer.callbacks.signal_name=SIGKILL", f"{signal_at[1]}=1"),
            start_fit(stopped, *args, *signal_at[:1], "--trainer.callbacks.signal_name=SIGTERM", f"{signal_at[1]}=0",
                      "--trainer.callbacks.batch=1")]
    (_, kill_err), (_, term_err) = (run.communicate(timeout=300) for run in runs)
    assert runs[0].returncode == -signal.SIGKILL, kill_err[-2000:]
    assert runs[1].returncode == 143, term_err[-2000:]
    assert "stopped by SIGTERM" in term_err
    saved = checkpoint(last_of(killed, 0))
    assert saved["epoch"] == 0 and saved["global_step"] == 3  # the whole of epoch 0
    assert checkpoint(last_of(stopped, 0))["global_step"] == 2  # the 2 batches that ran: nothing lost

    monkeypatch.chdir(stopped)
    assert main(["fit", *args, "--ckpt_path", str(last_of(stopped, 0))]) == 0
    assert (checkpoint(last_of(stopped, 1))["epoch"], checkpoint(last_of(stopped, 1))["global_step"]) == (1, 6)
    monkeypatch.chdir(killed)
    assert main(["fit", *args, "--ckpt_path", "last"]) == 0
    reference.mkdir()
    monkeypatch.chdir(reference)
    assert main(["fit", *args]) == 0
    resumed, uninterrupted = checkpoint(last_of(killed, 1)), checkpoint(last_of(reference, 0))
    assert resumed["epoch"] == uninterrupted["epoch"] == 1
    assert resumed["global_step"] == uninterrupted["global_step"] == 6
    for key, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, msg=key)
    assert resumed["optimizer_states"][0]["state"].keys() == uninterrupted["optimizer_states"][0]["state"].keys()
    assert resumed["lr_schedulers"] == uninterrupted["lr_schedulers"]


def test_full_disk_leaves_the_previous_checkpoint_whole(tmp_path: Path, image_folder_splits: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    args = tiny(image_folder_splits, "--trainer.max_epochs=1")
    assert main(["fit", *args]) == 0
    last = last_of(tmp_path, 0)
    before = last.read_bytes()
    real_save = torch.save

    def save_until_the_disk_is_full(obj: object, file: object, *a: object, **k: object) -> None:
        real_save(obj, file, *a, **k)
        with open(file, "r+b") as handle:  # half of it reached the disk, then no space was left
            handle.truncate(os.path.getsize(file) // 2)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(file))

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    capsys.readouterr()
    code = main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=2"), "--ckpt_path", str(last)])
    error = capsys.readouterr().err
    assert code == 2
    assert "disk is full" in error and "Traceback" not in error
    assert last.read_bytes() == before  # untouched
    new_folder = last_of(tmp_path, 1).parent
    assert not new_folder.exists() or not any(new_folder.iterdir())  # no truncated file, no temporary file


def test_ckpt_path_last_is_the_newest_last_checkpoint_of_the_run_name(tmp_path: Path) -> None:
    from phnn.checkpoint import find_last_checkpoint
    from phnn.errors import CheckpointError

    with pytest.raises(CheckpointError) as error:
        find_last_checkpoint(tmp_path)
    assert "no last.ckpt under" in str(error.value) and "give the checkpoint's path" in str(error.value)
    files = [tmp_path / "version_0" / "checkpoints" / "last.ckpt", tmp_path / "version_1" / "checkpoints" / "last.ckpt",
             tmp_path / "checkpoints" / "last.ckpt"]  # the last: a run without loggers
    for age, path in zip((30, 10, 20), files):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, (1e9 - age, 1e9 - age))
    assert find_last_checkpoint(tmp_path) == files[1]


def test_checkpoints_are_flushed_before_they_are_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import phnn.io
    from phnn.checkpoint import SafeCheckpointIO

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(phnn.io.os, "fsync", lambda fd: events.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
                        or real_fsync(fd))
    monkeypatch.setattr(phnn.io.os, "replace", lambda a, b: events.append(f"replace {b}") or real_replace(a, b))
    target = tmp_path / "checkpoints" / "last.ckpt"
    SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, target)
    assert len(events) == 3
    assert events[0].startswith(f"fsync {target.parent}/.last.ckpt.tmp-")  # the data, under its temporary name
    assert events[1:] == [f"replace {target}", f"fsync {target.parent}"]  # then the rename, then the folder entry
    assert torch.equal(torch.load(target, weights_only=True)["state_dict"]["w"], torch.ones(2))
    assert not list(target.parent.glob(TEMPORARY_GLOB))
