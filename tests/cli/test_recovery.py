"""No work lost: `last.ckpt` after every epoch, SIGKILL and SIGTERM during `phnn fit` (real
subprocesses) followed by a resume, and a disk that fills up while a checkpoint is written."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cli_helpers  # noqa: F401  registers the tiny_cnn backbone
from phnn.cli import main
from phnn.io import TEMPORARY_GLOB
from test_image_cli import tiny

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def fit_in_subprocess(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "phnn", "fit", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def last_of(root: Path, version: int) -> Path:
    return root / "runs" / "phnn" / f"version_{version}" / "checkpoints" / "last.ckpt"


def test_last_checkpoint_is_the_last_epoch_even_when_the_metric_never_improves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_folder_splits: Path) -> None:
    monkeypatch.chdir(tmp_path)
    # lr 0: val/acc is the same every epoch, so only epoch 0 is ever "best"
    assert main(["fit", *tiny(image_folder_splits, "--trainer.max_epochs=3", "--model.optimizer.lr=0.0")]) == 0
    folder = last_of(tmp_path, 0).parent
    assert checkpoint(folder / "best.ckpt")["epoch"] == 0
    assert checkpoint(folder / "last.ckpt")["epoch"] == 2
    assert not list(folder.glob(TEMPORARY_GLOB))


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path, image_folder_splits: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    args = tiny(image_folder_splits, "--trainer.max_epochs=3")
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir(), killed.mkdir()
    done = fit_in_subprocess(killed, *args, "--trainer.callbacks+=cli_helpers.SignalAt",
                             "--trainer.callbacks.signal_name=SIGKILL", "--trainer.callbacks.epoch=2")
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    saved = checkpoint(last_of(killed, 0))
    assert saved["epoch"] == 1 and saved["global_step"] == 6  # two whole epochs of 3 batches

    monkeypatch.chdir(killed)
    assert main(["fit", *args, "--ckpt_path", "last"]) == 0
    monkeypatch.chdir(reference)
    assert main(["fit", *args]) == 0
    resumed, uninterrupted = checkpoint(last_of(killed, 1)), checkpoint(last_of(reference, 0))
    assert resumed["epoch"] == uninterrupted["epoch"] == 2
    assert resumed["global_step"] == uninterrupted["global_step"] == 9
    # optimizer, scheduler and random streams continued: the same weights as without the kill
    for key, value in uninterrupted["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, msg=key)
    assert resumed["lr_schedulers"] == uninterrupted["lr_schedulers"]


def test_sigterm_saves_exits_non_zero_and_resumes(tmp_path: Path, image_folder_splits: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    args = tiny(image_folder_splits, "--trainer.max_epochs=3")
    done = fit_in_subprocess(tmp_path, *args, "--trainer.callbacks+=cli_helpers.SignalAt",
                             "--trainer.callbacks.signal_name=SIGTERM", "--trainer.callbacks.epoch=1",
                             "--trainer.callbacks.batch=1")
    assert done.returncode == 143, done.stderr[-2000:]
    assert "stopped by SIGTERM" in done.stderr
    saved = checkpoint(last_of(tmp_path, 0))
    assert saved["global_step"] == 5  # epoch 0 (3 batches) + the 2 batches of epoch 1 that ran: nothing lost
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *args, "--ckpt_path", str(last_of(tmp_path, 0))]) == 0
    resumed = checkpoint(last_of(tmp_path, 1))
    assert resumed["epoch"] == 2 and resumed["global_step"] == 9


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
