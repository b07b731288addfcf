"""Optimizer and scheduler settings as plain data, so that a checkpoint holds no Python objects.

A task's hyperparameters record them as `{"class_path": "torch.optim.Adam", "init_args": {...}}`
(the form of the YAML configs), and a checkpoint may only name classes in `SAFE_CLASS_MODULES`:
rebuilding a task from a checkpoint imports nothing else.

    to_spec(functools.partial(torch.optim.Adam, lr=1e-3))
    # {'class_path': 'torch.optim.adam.Adam', 'init_args': {'lr': 0.001}}
    from_spec({"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3}}, torch.optim.Optimizer)
    # functools.partial(<class 'torch.optim.adam.Adam'>, lr=0.001)
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import Any

import torch

#: the only modules whose classes a checkpoint may name (optimizer, scheduler, task)
SAFE_CLASS_MODULES = ("phnn", "torch.optim")


def is_safe_class_path(path: Any) -> bool:
    return isinstance(path, str) and any(path == m or path.startswith(m + ".") for m in SAFE_CLASS_MODULES)


def to_spec(value: Any) -> Any:
    """`value` (None, a class, `functools.partial(class, **kwargs)`, or already a spec) as plain data.

    Any other callable (e.g. a lambda) cannot be written down: it is recorded as
    `{"class_path": None, "unrecorded": "<its repr>"}`, and a task rebuilt from it says so when asked
    to train (pass the callable again to `load_from_checkpoint`)."""
    if value is None or isinstance(value, dict):
        return value
    keywords: dict[str, Any] = {}
    if isinstance(value, functools.partial) and not value.args:
        value, keywords = value.func, dict(value.keywords)
    if isinstance(value, type):
        return {"class_path": f"{value.__module__}.{value.__qualname__}", "init_args": keywords}
    return {"class_path": None, "unrecorded": repr(value)}


def from_spec(spec: Any, base: type, what: str) -> Callable[..., Any] | None:
    """The factory a spec (see `to_spec`) describes; `spec` may also be a callable already.

    Only classes under `SAFE_CLASS_MODULES` that subclass `base` are accepted (a ValueError otherwise)."""
    if spec is None or not isinstance(spec, dict):
        return spec
    path = spec.get("class_path")
    if path is None:
        def unrecorded(*args: Any, **kwargs: Any) -> Any:
            raise ValueError(f"the {what} of this task was not recorded in its checkpoint ({spec.get('unrecorded')}); "
                             f"pass {what}=... to load_from_checkpoint to train it")
        return unrecorded
    if not is_safe_class_path(path):
        raise ValueError(f"{what} class_path {path!r} is outside {list(SAFE_CLASS_MODULES)}; "
                         "a task rebuilt from plain data imports nothing else")
    module_name, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"{what} class_path {path!r} is not a {base.__qualname__}")
    return functools.partial(cls, **(spec.get("init_args") or {}))


def to_plain(value: Any) -> Any:
    """`value` with every part a checkpoint can hold under `torch.load(weights_only=True)`: paths
    become strings, classes their class path, other objects their repr (recorded, never rebuilt)."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(item) for item in value)
    if value is None or isinstance(value, (str, int, float, bool, torch.Tensor)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)
