"""Checkpoints that are safe to load and are never left half-written.

Loading: a checkpoint is untrusted input. `read_checkpoint` loads it with `torch.load(weights_only=True)`
(tensors and plain data only: a pickled object that would run code is refused, not run) and checks
it before anything is built from it: it must be a phnn checkpoint, name one of phnn's own tasks,
and whatever its hyperparameters name as code must be a class of `phnn.tasks.registry` (looked up
by name; nothing a checkpoint names is imported). An empty, truncated, foreign or unsafe file is a
`CheckpointError` naming the file and the key.

Writing: `SafeCheckpointIO` (the CLI gives it to every Trainer) writes each checkpoint to a
temporary file in its own folder, flushes it to the disk (fsync) and renames it into place, and
loads through `read_checkpoint`, whatever `weights_only` Lightning asks for.

    task, checkpoint = load_task(Path("runs/x/version_0/checkpoints/best.ckpt"))
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from phnn.errors import CheckpointError
from phnn.io import atomic_path
from phnn.tasks.registry import check_hyperparameters, check_task


def _torch_load(path: Path, map_location: Any) -> Any:
    """`torch.load(weights_only=True)`, its failures turned into `CheckpointError`s that say what is wrong."""
    if path.is_dir():
        inside = sorted(path.rglob("*.ckpt"))
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file; give a .ckpt file"
                              + (f" (e.g. {inside[-1]})" if inside else ""))
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint is empty (0 bytes; an interrupted copy?); "
                              "use another one, e.g. the run's last.ckpt or best.ckpt")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch reports a damaged file as UnpicklingError, RuntimeError, KeyError, ...
        text = str(error)
        unsafe = next((line.strip() for line in text.splitlines() if "Unsupported global" in line
                       or "unrecognized function" in line), None)
        if isinstance(error, pickle.UnpicklingError) and unsafe:
            raise CheckpointError(
                f"{path}: refused to load: the checkpoint holds Python objects besides tensors and plain data "
                f"({unsafe}); loading them could run code. phnn checkpoints never need that: use a checkpoint "
                "written by `phnn fit`") from None
        reason = next((line.strip() for line in text.splitlines() if "Unsupported operand" in line),
                      text.split(". ")[0] or type(error).__name__)
        raise CheckpointError(f"{path}: truncated or not a checkpoint ({reason}); use another checkpoint, e.g. "
                              "the run's last.ckpt or best.ckpt") from None


def read_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu",
                    expected_task: type | None = None) -> dict[str, Any]:
    """The checkpoint at `path`, loaded safely and checked (see the module doc); with `expected_task`,
    also that it was written by that task (or a subclass)."""
    path = Path(path)
    checkpoint = _torch_load(path, map_location)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a phnn checkpoint (a {type(checkpoint).__name__}, not a mapping); "
                              "use a checkpoint written by `phnn fit`")
    task = check_task(path, checkpoint, expected_task)
    check_hyperparameters(path, checkpoint, task)
    if checkpoint.get("hyper_parameters"):  # written by an older signature of the task: today's shape
        checkpoint["hyper_parameters"] = task.upgrade_hparams(checkpoint["hyper_parameters"])
    return checkpoint


def load_task(path: Path) -> tuple[Any, dict[str, Any]]:
    """The task stored in the checkpoint at `path` (on the CPU, in eval mode) and the checkpoint."""
    checkpoint = read_checkpoint(path)
    task_class = check_task(path, checkpoint)
    # the upgraded hyperparameters, given as arguments, win over the file's (whose old keys Lightning drops)
    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    task = task_class.load_from_checkpoint(path, map_location="cpu", weights_only=True, **hparams)
    return task.eval(), checkpoint


def save_durably(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """`write(tmp)` a temporary file next to `path`, fsync it, rename it over `path`, fsync the folder:
    after a crash or a full disk, `path` is the old file or the new one, never a part."""
    with atomic_path(path, sync=True) as tmp:
        write(tmp)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with durable, atomic writes and safe, checked loads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_durably(path, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self, path: Any, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """`read_checkpoint(path)`: always `weights_only=True`, whatever the caller asks for."""
        return read_checkpoint(path, map_location=map_location)


def find_last_checkpoint(run_root: Path) -> Path:
    """The newest `last.ckpt` of the runs under `run_root` (`version_*/checkpoints/`, or `checkpoints/`
    for a run without loggers): what `--ckpt_path last` resumes."""
    patterns = ("version_*/checkpoints/last.ckpt", "checkpoints/last.ckpt")
    candidates = sorted((p for pattern in patterns for p in run_root.glob(pattern)), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise CheckpointError(f"--ckpt_path last: no last.ckpt under {run_root} (version_*/checkpoints/ or "
                              "checkpoints/) to resume from; give the checkpoint's path instead")
    return candidates[-1]


def _overlay(saved: Any, given: Any) -> Any:
    """`given` over `saved`, dict by dict (so `--model.optimizer.init_args.lr` keeps the saved momentum),
    unless `given` names another class."""
    if not (isinstance(saved, dict) and isinstance(given, dict)) or given.get("class_path", saved.get("class_path")) \
            != saved.get("class_path"):
        return given
    return {**saved, **{key: _overlay(saved.get(key), value) for key, value in given.items()}}


def as_data(value: Any) -> Any:
    """`value` with tuples as lists, at any depth: a config's `[0.9, 0.999]` and a checkpoint's
    `(0.9, 0.999)` are the same setting."""
    if isinstance(value, dict):
        return {key: as_data(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_data(item) for item in value]
    return value


def merge_hyperparameters(saved: dict[str, Any], given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The checkpoint's hyperparameters with the values the user gave (config files, command line)
    in their place, and a note for each given value that differs from the checkpoint's (compared
    as data: a tuple and a list of the same numbers are the same)."""
    merged = _overlay(saved, given)
    notes = [f"model.{key}: {merged[key]!r} as given (the checkpoint has {saved[key]!r})"
             for key in given if key in saved and as_data(saved[key]) != as_data(merged[key])]
    return merged, notes


def apply_checkpoint_hyperparameters(parser: Any, config: Any, subcommand: str, argv: list[str]) -> Any:
    """LightningCLI's use of `--ckpt_path`'s hyperparameters, made safe and explicit.

    The checkpoint is read with `read_checkpoint` (checked, and refused when another task wrote it)
    before any of its class paths reach jsonargparse; its hyperparameters fill the model's settings,
    and every value the user gave wins over the checkpoint's, with a note on stderr (LightningCLI
    alone lets the checkpoint win silently). Returns the updated config."""
    from jsonargparse._util import import_object  # what jsonargparse resolves class_path with

    model = config[subcommand].get("model")
    expected = import_object(model.class_path) if model is not None and model.get("class_path") else None  # the user's
    ckpt_path = config[subcommand].ckpt_path
    checkpoint = read_checkpoint(ckpt_path, expected_task=expected)
    saved = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items()
             if k not in ("_instantiator", "_class_path")}
    if not saved:
        return config
    explicit = parser.parse_args(argv, defaults=False)[subcommand].get("model")
    given = explicit.get("init_args").as_dict() if explicit is not None and explicit.get("init_args") else {}
    hparams, notes = merge_hyperparameters(saved, given)
    for note in notes:
        print(f"phnn {subcommand}: {note}", file=sys.stderr)
    class_path = model.class_path if expected is not None else checkpoint["phnn"]["task"]
    return parser.parse_object({subcommand: {"model": {"class_path": class_path, "dict_kwargs": hparams}}}, config)
