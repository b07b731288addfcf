"""Where a CLI run writes: fit names its unnamed TensorBoard/CSV loggers after the run and gives them
one new version (one folder per run, `phnn.runs`); later commands find their run from the checkpoint.

Functions of the parsed config (a jsonargparse `Namespace`), used by `phnn.cli.app.PHNNCLI`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from jsonargparse._util import import_object  # the importer jsonargparse resolves class_path with
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from phnn import runs

#: loggers of every fit unless a config says otherwise; both unnamed (named after the run) and
#: given the same version, so each run has one folder: runs/<name>/version_<k>/
DEFAULT_LOGGERS: list[dict[str, Any]] = [
    {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs", "name": None}},
    {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "runs", "name": None}},
]
#: the loggers whose folders are `<save_dir>/<name>/version_<k>`
VERSIONED_LOGGERS = (TensorBoardLogger, CSVLogger)


def class_of(group: Any) -> type | None:
    """The class a config group names (`class_path`), or None. The config is the user's own."""
    path = group.get("class_path") if isinstance(group, Namespace) else None
    return import_object(path) if path else None


def default_run_name(config: Namespace) -> str:
    """The name of a run whose logger has none: `<data>_<model>` (see `phnn.runs.run_name`)."""
    task, data = class_of(config.get("model")), class_of(config.get("data"))
    return runs.run_name(task, config.model.get("init_args") or {}, data) if task else "phnn"


def run_root(config: Namespace) -> Path:
    """runs/<name>: the folder of the first logger's versions (trainer.default_root_dir without one)."""
    trainer = config.trainer
    loggers = trainer.get("logger")
    for logger in loggers if isinstance(loggers, list) else []:
        args = logger.get("init_args") if isinstance(logger, Namespace) else None
        if args is not None and args.get("save_dir") is not None:
            return Path(args.save_dir) / (args.get("name") or default_run_name(config))
    return Path(trainer.get("default_root_dir") or ".")


def name_and_version_loggers(config: Namespace) -> list[Namespace]:
    """Name unnamed TensorBoard/CSV loggers after the run and give loggers that share a folder and
    have no version the same new one; returns the init_args that were given a version."""
    loggers = config.trainer.get("logger")
    if not isinstance(loggers, list):
        return []
    name = default_run_name(config)
    versions: dict[Path, int] = {}
    versioned: list[Namespace] = []
    for logger in loggers:
        if not isinstance(logger, Namespace) or not issubclass(class_of(logger) or object, VERSIONED_LOGGERS):
            continue
        args = logger.get("init_args") or Namespace()
        if args.get("name") is None:
            args.name = name
        if args.get("version") is None:
            root = Path(args.get("save_dir") or ".") / args.name
            args.version = versions.setdefault(root, runs.next_version(root))
            versioned.append(args)
        logger.init_args = args
    return versioned


def make_no_run(config: Namespace) -> None:
    """validate/test/predict make no run of their own: no loggers, checkpoints or config.yaml."""
    config.trainer.logger = False
    config.trainer.enable_checkpointing = False
    callbacks = [c for c in config.trainer.get("callbacks") or []
                 if not (isinstance(c, Namespace) and issubclass(class_of(c) or object, ModelCheckpoint))]
    config.trainer.callbacks = callbacks or None
