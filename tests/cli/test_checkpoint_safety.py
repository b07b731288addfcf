"""Untrusted files never run code, and every user-facing failure is one message with exit code 2:
crafted checkpoints (pickle payloads, foreign class paths), empty / truncated / wrong-task
checkpoints, hyperparameters as plain data, command-line values over the checkpoint's, and the
one-line errors of the CLI (missing dataset, unwritable disk, corrupt image, `--out` a folder)."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path

import cli_helpers  # noqa: F401  registers the tiny_cnn backbone
import pytest
import torch
from lightning.pytorch import Trainer
from test_image_cli import RUN, tiny

from phnn.checkpoint import SafeCheckpointIO, load_task, read_checkpoint
from phnn.cli import main, run_cli
from phnn.errors import CheckpointError
from phnn.tasks import ImageClassifier


class Payload:
    """Unpickling this creates `marker`: the proof that a load ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, image_folder_module: Path) -> Path:
    """The folder of a 1-epoch fit (config.yaml, checkpoints/last.ckpt) of the tiny image model."""
    root = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(["fit", *tiny(image_folder_module, "--trainer.max_epochs=1")]) == 0
    return root / RUN / "version_0"


def fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `phnn args`, check it ends in exit 2 with one error message and no traceback; return it."""
    capsys.readouterr()
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "error:" in error and "Traceback" not in error
    return error


def uses(run: Path, checkpoint: Path) -> list[list[str]]:
    """Every command that loads a checkpoint: validate/test (via LightningCLI), inspect, export."""
    config = str(run / "config.yaml")
    return [["validate", "--config", config, "--ckpt_path", str(checkpoint)],
            ["inspect", str(checkpoint), "--out", str(checkpoint.parent / "inspect")],
            ["export", str(checkpoint), "--format", "torchscript", "--out", str(checkpoint.parent / "m.pt")]]


def test_a_pickle_payload_never_runs(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "payload_ran"
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    state["phnn"]["input"] = Payload(marker)
    crafted = tmp_path / "crafted.ckpt"
    torch.save(state, crafted)
    asked_unsafe = uses(run, crafted)[0] + ["--weights_only", "false"]  # Lightning's option cannot unlock it
    for args in [*uses(run, crafted), asked_unsafe]:
        error = fails(args, capsys)
        assert "refused to load" in error and str(crafted) in error, error
        assert not marker.exists(), f"phnn {args[0]} ran the payload"
    with pytest.raises(CheckpointError):  # the Trainer's checkpoint IO, asked by Lightning for an unsafe load
        SafeCheckpointIO().load_checkpoint(crafted, weights_only=False)
    assert not marker.exists()


def test_a_checkpoint_cannot_name_modules_to_import(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A module importable from the Python path, that acts when imported, named as task or optimizer."""
    (tmp_path / "evil_module.py").write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\nclass Task: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for field, edit in (("task", lambda s: s["phnn"].update(task="evil_module.Task")),
                        ("_class_path", lambda s: s["hyper_parameters"].update(_class_path="evil_module.Task")),
                        ("optimizer",
                         lambda s: s["hyper_parameters"]["optimizer"].update(class_path="evil_module.Task"))):
        crafted = tmp_path / f"{field}.ckpt"
        copy = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        edit(copy)
        torch.save(copy, crafted)
        for args in uses(run, crafted):
            assert "evil_module.Task" in fails(args, capsys)
    assert "evil_module" not in sys.modules and not (tmp_path / "imported").exists()
    assert state["hyper_parameters"]["optimizer"]["class_path"] == "phnn.tasks.SGD"


@pytest.mark.parametrize(("damage", "words"), [
    (lambda data: b"", "empty (0 bytes"),
    (lambda data: data[: len(data) // 2], "truncated or not a checkpoint"),
    (lambda data: b"not a checkpoint at all", "truncated or not a checkpoint"),
])
def test_empty_and_truncated_checkpoints(run: Path, tmp_path: Path, damage, words: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(damage((run / "checkpoints" / "last.ckpt").read_bytes()))
    for args in uses(run, broken):
        error = fails(args, capsys)
        assert words in error and str(broken) in error, error
    monkeypatch_debug = pytest.MonkeyPatch()
    monkeypatch_debug.setenv("PHNN_DEBUG", "1")
    with pytest.raises(CheckpointError):  # PHNN_DEBUG=1: the exception, traceback and all
        main(uses(run, broken)[1])
    monkeypatch_debug.undo()


def test_wrong_task_checkpoints_say_so(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image_checkpoint = run / "checkpoints" / "last.ckpt"
    error = fails(["test", "--model", "SoundEventDetector", "--data", "L3DAS21DataModule",
                   f"--data.root={tmp_path}", "--ckpt_path", str(image_checkpoint)], capsys)
    assert "an image classification (ImageClassifier) checkpoint given to the sound event detection " \
           "(SoundEventDetector) task" in error
    # the reverse: a checkpoint that records the SED task, given to the image model's config
    state = torch.load(image_checkpoint, weights_only=True)
    state["phnn"]["task"] = "phnn.tasks.sed.SoundEventDetector"
    torch.save(state, tmp_path / "sed.ckpt")
    error = fails(["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(tmp_path / "sed.ckpt")], capsys)
    assert "a sound event detection (SoundEventDetector) checkpoint given to the image classification " \
           "(ImageClassifier) task" in error


def test_a_task_built_in_python_saves_plain_data(tmp_path: Path, image_folder_module: Path) -> None:
    from phnn.data import ImageFolderDataModule

    data = ImageFolderDataModule(image_folder_module, image_size=8, batch_size=8, num_workers=0, extra_channel="zeros")
    task = ImageClassifier("tiny_cnn", "phc", n=2, num_classes=data.num_classes, in_channels=4)
    trainer = Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(task, datamodule=data)
    path = tmp_path / "python.ckpt"
    trainer.save_checkpoint(path)
    hparams = read_checkpoint(path)["hyper_parameters"]  # weights_only=True: only plain data inside
    assert hparams["optimizer"] == {"class_path": "phnn.tasks.base.SGD", "init_args": {}}
    assert hparams["lr_scheduler"]["class_path"] == "phnn.tasks.base.CosineAnnealingLR"
    loaded, _ = load_task(path)
    loaded.trainer = trainer
    optimizer = loaded.configure_optimizers()["optimizer"]
    assert type(optimizer).__name__ == "SGD" and optimizer.defaults["lr"] == 0.1
    for key, value in task.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)

    # a lambda cannot be written down: recorded as such, and the rebuilt task says so when asked to train
    own = ImageClassifier("tiny_cnn", "phc", n=2, num_classes=3, in_channels=4, lr_scheduler=None,
                          optimizer=lambda params: torch.optim.Adam(params, lr=1e-3))
    assert own.hparams["optimizer"]["class_path"] is None
    torch.save({"phnn": {"task": "phnn.tasks.image.ImageClassifier"}, "hyper_parameters": dict(own.hparams)},
               tmp_path / "lambda.ckpt")
    optimizer = read_checkpoint(tmp_path / "lambda.ckpt")["hyper_parameters"]["optimizer"]
    assert optimizer["unrecorded"].startswith("<function")
    rebuilt = ImageClassifier(**{k: v for k, v in own.hparams.items()})
    with pytest.raises(ValueError) as error:
        rebuilt.configure_optimizers()
    assert "was not recorded in its checkpoint" in str(error.value)


def test_command_line_values_win_over_the_checkpoint(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["test", "--config", str(run / "config.yaml"), "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]
    capsys.readouterr()
    plain = run_cli(args)
    assert plain.model.loss_fn.label_smoothing == 0.0 and "as given" not in capsys.readouterr().err
    given = run_cli([*args, "--model.label_smoothing", "0.25", "--model.optimizer.init_args.lr", "0.01"])
    assert given.model.loss_fn.label_smoothing == 0.25
    assert given.model.hparams["optimizer"]["init_args"] | {"lr": 0.1} == plain.model.hparams["optimizer"]["init_args"]
    assert given.model.hparams["optimizer"]["init_args"]["lr"] == 0.01
    assert "model.label_smoothing: 0.25 as given (the checkpoint has 0.0)" in capsys.readouterr().err
    # a given value that reshapes the network cannot win: refused, saying which weights and why
    error = fails([*args, "--model.model_kwargs", "{width: 16}"], capsys)
    assert "model.model_kwargs: {'width': 16} as given (the checkpoint has None)" in error
    assert "weights do not fit this ImageClassifier" in error
    assert "model.0.bias: (8,) in the checkpoint, (16,) here" in error


def test_missing_dataset_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = fails(["fit", "--model", "SoundEventDetector", "--data", "L3DAS21DataModule",
                   f"--data.root={tmp_path / 'nowhere'}", "--trainer.max_epochs=1"], capsys)
    assert "L3DAS21 folder" in error and "nowhere" in error and "phnn synth" in error


@pytest.mark.parametrize(("code", "hint"), [(errno.EROFS, "Read-only file system (write somewhere else)"),
                                           (errno.EACCES, "Permission denied (check the owner and mode")])
def test_unwritable_disk(tmp_path: Path, image_folder_module: Path, monkeypatch: pytest.MonkeyPatch, code: int,
                         hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)

    def refuse(obj: object, file: object, *args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code), str(file))

    monkeypatch.setattr(torch, "save", refuse)
    error = fails(["fit", *tiny(image_folder_module, "--trainer.max_epochs=1")], capsys)
    assert hint in error and ".ckpt" in error


def test_corrupt_image_is_named(tmp_path: Path, image_folder_module: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    images = tmp_path / "images"
    shutil.copytree(image_folder_module, images)
    bad = images / "dog" / "3.png"
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated PNG
    monkeypatch.chdir(tmp_path)
    error = fails(["fit", *tiny(images, "--trainer.max_epochs=1", "--data.num_workers=1")], capsys)
    assert f"cannot read image {bad}" in error and "DataLoader worker" not in error


def test_export_out_that_is_a_folder(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = fails(["export", str(run / "checkpoints" / "last.ckpt"), "--format", "onnx", "--out", str(tmp_path)],
                  capsys)
    assert f"--out {tmp_path} is a folder" in error and "model.onnx" in error


def test_given_values_are_laid_over_the_checkpoint_dict_by_dict() -> None:
    from phnn.checkpoint import merge_hyperparameters

    saved = {"threshold": 0.5,
             "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1, "momentum": 0.9}}}
    merged, notes = merge_hyperparameters(saved, {"optimizer": {"init_args": {"lr": 0.01}}, "threshold": 0.5})
    assert merged == {"threshold": 0.5, "optimizer": {"class_path": "torch.optim.SGD",
                                                      "init_args": {"lr": 0.01, "momentum": 0.9}}}
    assert notes == ["model.optimizer: {'class_path': 'torch.optim.SGD', 'init_args': {'lr': 0.01, 'momentum': 0.9}} "
                     "as given (the checkpoint has {'class_path': 'torch.optim.SGD', 'init_args': {'lr': 0.1, "
                     "'momentum': 0.9}})"]
    other = {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.001}}
    assert merge_hyperparameters(saved, {"optimizer": other})[0]["optimizer"] == other  # another class: replaced


def _edit(key: str, value: object) -> Callable[[dict], None]:
    def edit(state: dict) -> None:
        state["hyper_parameters"][key] = value
    return edit


# Hyperparameters that name code phnn does not know, as an attacker would write them: the key the
# error must name, and the edit. `evil_module` (written by the test) acts when imported.
NAMED_CODE: dict[str, tuple[str, Callable[[dict], None]]] = {
    "a plain string where a scheduler is expected": ("hyper_parameters.lr_scheduler",
                                                     _edit("lr_scheduler", "evil_module.Foo")),
    "a string naming a module of the standard library": ("hyper_parameters.lr_scheduler",
                                                         _edit("lr_scheduler", "this.Foo")),
    "a class path inside phnn that re-runs the CLI": ("hyper_parameters.optimizer.class_path",
                                                      _edit("optimizer", {"class_path": "phnn.__main__.X"})),
    "a function that runs commands": ("hyper_parameters.optimizer.class_path",
                                      _edit("optimizer", {"class_path": "os.system", "init_args": {}})),
    "a callable inside a known scheduler's arguments": (
        "hyper_parameters.lr_scheduler.init_args.lr_lambda",
        _edit("lr_scheduler", {"class_path": "torch.optim.lr_scheduler.LambdaLR",
                               "init_args": {"lr_lambda": "evil_module.Foo"}})),
    "a class path inside a plain mapping": ("hyper_parameters.model_kwargs.block.class_path",
                                            _edit("model_kwargs", {"block": {"class_path": "evil_module.Foo"}})),
    "an instantiator": ("hyper_parameters._instantiator", _edit("_instantiator", "evil_module.make")),
}


@pytest.mark.parametrize("case", list(NAMED_CODE))
def test_hyperparameters_that_name_unknown_code_are_refused_before_any_import(
        case: str, run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image_folder_module: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`phnn inspect`, `phnn test` and `phnn predict` given such a checkpoint import nothing it names:
    one line naming the key, exit 2, no module loaded and no side effect."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Foo: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    key, edit = NAMED_CODE[case]
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    edit(state)
    crafted = tmp_path / "crafted.ckpt"
    torch.save(state, crafted)
    config = str(run / "config.yaml")
    before = set(sys.modules)
    for args in (["inspect", str(crafted)],
                 ["test", "--config", config, "--ckpt_path", str(crafted), "--out", str(tmp_path / "out")],
                 ["predict", "--config", config, "--ckpt_path", str(crafted),
                  f"--data.predict_path={image_folder_module}", "--out", str(tmp_path / "out")]):
        error = fails(args, capsys)
        lines = error.strip().splitlines()
        assert len(lines) == 2 and lines[1] == "(set PHNN_DEBUG=1 for the traceback)", error
        assert lines[0].startswith(f"phnn {args[0]}: error: {crafted}: refused: {key}:"), error
    assert not marker.exists() and not (set(sys.modules) - before) & {"evil_module", "this", "phnn.__main__"}
    assert not (tmp_path / "out").exists()
