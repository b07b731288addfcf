"""Checkpoint identity: the classes a checkpoint may name, looked up by name, never imported.

A checkpoint is data. Where its hyperparameters name code (the task, an optimizer, an LR scheduler,
any `class_path`, or a plain string where the task's signature expects a class or a callable), the
name must be one of the classes registered here: phnn's tasks (`register_task`), phnn's own
optimizer and scheduler classes (`register_class`), and torch's optimizers and LR schedulers.
Anything else is refused before anything is imported, with one line naming the key
(`check_hyperparameters`). A package or module prefix is never enough: `phnn.__main__.X` is not a
class phnn knows.

    @register_task
    class MyTask(PHTask): ...
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import os
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import torch

from phnn.errors import CheckpointError

_TASKS: dict[str, type] = {}
_CLASSES: dict[str, type] = {}
#: the modules whose optimizer and scheduler classes are known (the classes themselves, by name)
_TORCH_MODULES = (torch.optim, torch.optim.lr_scheduler)
_TORCH_BASES = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


def class_names(cls: type, package: str | None = None) -> tuple[str, ...]:
    """The names a checkpoint may use for `cls`: its module path, and its path in `package`."""
    names = (f"{cls.__module__}.{cls.__qualname__}",)
    return names + ((f"{package}.{cls.__qualname__}",) if package else ())


def register_class(cls: type, package: str | None = None) -> type:
    """Make `cls` a class a checkpoint may name (an optimizer, a scheduler, ...)."""
    for name in class_names(cls, package):
        if _CLASSES.get(name, cls) is not cls:
            raise ValueError(f"{name} is already registered (by {_CLASSES[name]!r})")
        _CLASSES[name] = cls
    return cls


def register_task(cls: type) -> type:
    """Make `cls` a task a checkpoint may name (as `phnn.tasks.<Name>` or by its module path)."""
    register_class(cls, "phnn.tasks")
    _TASKS.update(dict.fromkeys(class_names(cls, "phnn.tasks"), cls))
    return cls


def _register_torch() -> None:
    for module in _TORCH_MODULES:
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, _TORCH_BASES) and not name.startswith("_"):
                register_class(value, module.__name__)


_register_torch()


def task_classes() -> dict[str, type]:
    """phnn's tasks by every name a checkpoint may use for them."""
    return dict(_TASKS)


def known_classes() -> dict[str, type]:
    """Every class a checkpoint may name, by name."""
    return dict(_CLASSES)


def lookup_class(name: Any, base: type, key: str) -> type:
    """The known class `name` names, if it is a `base`; otherwise a `CheckpointError` naming `key`."""
    cls = _CLASSES.get(name) if isinstance(name, str) else None
    if cls is None or not issubclass(cls, base):
        kind = "" if base is object else f" {base.__qualname__}"
        raise CheckpointError(f"{key}: {name!r} is not a{kind} class phnn knows (phnn's tasks and optimizer classes, "
                              "torch.optim optimizers and LR schedulers); phnn imports nothing else a checkpoint names")
    return cls


def describe_task(cls: type) -> str:
    """'image classification (ImageClassifier)': how messages name a task."""
    return f"{getattr(cls, 'kind', 'phnn task')} ({cls.__qualname__})"


def check_task(path: str | os.PathLike[str], checkpoint: dict[str, Any], expected_task: type | None = None) -> type:
    """The task class that wrote `checkpoint` (its 'phnn' record); a `CheckpointError` when it is not
    one of phnn's tasks, or not `expected_task` (e.g. an image checkpoint given to the SED task)."""
    record = checkpoint.get("phnn") if isinstance(checkpoint, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("task"), str):
        raise CheckpointError(f"{path}: not a phnn checkpoint (no 'phnn' record of its task); "
                              "use a checkpoint written by `phnn fit`")
    written_by = _TASKS.get(record["task"])
    if written_by is None:
        known = ", ".join(sorted({cls.__qualname__ for cls in _TASKS.values()}))
        raise CheckpointError(f"{path}: names the task {record['task']!r}, which is not one of phnn's tasks "
                              f"({known}); phnn does not import classes a checkpoint names")
    if expected_task is not None and not issubclass(written_by, expected_task):
        what = describe_task(written_by)
        article = "an" if what[0] in "aeiou" else "a"
        raise CheckpointError(
            f"{path}: {article} {what} checkpoint given to the {describe_task(expected_task)} task; use a "
            f"checkpoint trained for {getattr(expected_task, 'kind', 'this task')}, or the config of the run that "
            "wrote this one")
    return written_by


# --- hyperparameters are data: which values name code -------------------------------------------

_DATA_TYPES = (str, int, float, bool, bytes, type(None), os.PathLike)


def names_code(annotation: Any) -> bool:
    """Whether a parameter annotated `annotation` takes a class or a callable, so that jsonargparse
    would import a class named by a string or a `class_path` given for it."""
    if annotation in (None, Any, inspect.Parameter.empty) or isinstance(annotation, typing.TypeVar):
        return False
    if isinstance(annotation, str):  # an annotation that could not be resolved
        return "Callable" in annotation or "type[" in annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return False
    if origin in (Callable, type) or annotation in (Callable, type):
        return True
    if origin is not None:  # Union, Optional, X | Y, list[...], dict[...], Sequence[...], ...
        return any(names_code(arg) for arg in typing.get_args(annotation) if arg is not Ellipsis)
    if isinstance(annotation, type):
        plain = issubclass(annotation, _DATA_TYPES + (enum.Enum, list, tuple, dict, set, frozenset)) \
            or dataclasses.is_dataclass(annotation) or annotation.__module__ in ("collections.abc", "typing")
        return not plain
    return isinstance(annotation, types.GenericAlias)


def _annotations(cls: type) -> dict[str, Any]:
    """The annotations of `cls.__init__`'s parameters (strings where they cannot be resolved)."""
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # a name only imported for type checkers: keep the text
        parameters = inspect.signature(cls.__init__).parameters
        return {name: p.annotation for name, p in parameters.items()}


def _problems(value: Any, annotation: Any, key: str) -> Iterator[str]:
    """Keys under `value` (a hyperparameter at `key`) that name code phnn does not know."""
    if isinstance(value, dict) and ("class_path" in value or "_class_path" in value):
        name = value.get("class_path", value.get("_class_path"))
        if name is None and "unrecorded" in value:  # a callable that could not be written down (phnn.tasks.spec)
            return
        try:
            cls = lookup_class(name, object, f"{key}.class_path")
        except CheckpointError as error:
            yield str(error)
            return
        yield from _argument_problems(value.get("init_args") or {}, cls, f"{key}.init_args")
        yield from _argument_problems(value.get("dict_kwargs") or {}, cls, f"{key}.dict_kwargs")
    elif isinstance(value, str) and names_code(annotation):
        try:
            lookup_class(value, object, key)
        except CheckpointError as error:
            yield str(error)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _problems(item, annotation if names_code(annotation) else None, f"{key}.{name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _problems(item, annotation, f"{key}[{index}]")


def _argument_problems(arguments: Any, cls: type, key: str) -> Iterator[str]:
    if not isinstance(arguments, dict):
        yield f"{key}: {type(arguments).__name__} instead of a mapping of {cls.__qualname__}'s arguments"
        return
    annotations = _annotations(cls)
    for name, value in arguments.items():
        yield from _problems(value, annotations.get(name), f"{key}.{name}")


#: what LightningCLI records as `_instantiator` in the hyperparameters of the tasks it builds
CLI_INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"


def check_hyperparameters(path: str | os.PathLike[str], checkpoint: dict[str, Any], task: type) -> None:
    """Refuse a checkpoint whose hyperparameters name code that is not a known class (see the module
    doc), before anything is imported; the error names the first such key."""
    problems: list[str] = []
    for section in ("hyper_parameters", "datamodule_hyper_parameters"):
        hparams = checkpoint.get(section)
        if hparams is None:
            continue
        if not isinstance(hparams, dict):
            problems.append(f"{section}: {type(hparams).__name__} instead of a mapping")
            continue
        if hparams.get("_instantiator") not in (None, CLI_INSTANTIATOR):
            problems.append(f"{section}._instantiator: {hparams['_instantiator']!r} is not {CLI_INSTANTIATOR}, "
                            "the only instantiator phnn allows")
        if section == "hyper_parameters" and hparams.get("_class_path") not in (None, *_TASKS):
            problems.append(f"{section}._class_path: {hparams['_class_path']!r} is not one of phnn's tasks")
        annotations = _annotations(task) if section == "hyper_parameters" else {}
        for name, value in hparams.items():
            if name not in ("_instantiator", "_class_path"):
                problems += _problems(value, annotations.get(name), f"{section}.{name}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{path}: refused: {problems[0]}{more}")
