"""Optimizer and scheduler settings as plain data, so that a checkpoint holds no Python objects.

A task's hyperparameters record them as `{"class_path": "torch.optim.Adam", "init_args": {...}}`
(the form of the YAML configs), and a spec may only name a class of `phnn.tasks.registry` (looked
up by name, never imported): rebuilding a task from a checkpoint imports nothing.

    to_spec(functools.partial(torch.optim.Adam, lr=1e-3))
    # {'class_path': 'torch.optim.adam.Adam', 'init_args': {'lr': 0.001}}
    from_spec({"class_path": "torch.optim.Adam", "init_args": {"lr": 1e-3}}, torch.optim.Optimizer)
    # functools.partial(<class 'torch.optim.adam.Adam'>, lr=0.001)
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from typing import Any

import torch

from phnn.tasks.registry import lookup_class


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


#: init_args that must not be negative (besides finite, as every number of a spec must be); lr 0 freezes
NON_NEGATIVE_ARGUMENTS = ("lr",)


def check_numbers(spec: Any, what: str) -> None:
    """Refuse a spec whose numeric init_args are NaN or infinite (or a negative `lr`): torch accepts
    some of them (SGD takes lr=nan) and the run would train on NaNs without a word."""
    arguments = spec.get("init_args") if isinstance(spec, dict) else None
    for key, value in (arguments or {}).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        non_negative = key in NON_NEGATIVE_ARGUMENTS
        if not math.isfinite(value) or (non_negative and not value >= 0):
            raise ValueError(f"{what}.init_args.{key} = {value}: expected a finite number"
                             + (" >= 0" if non_negative else ""))


def from_spec(spec: Any, base: type, what: str) -> Callable[..., Any] | None:
    """The factory a spec (see `to_spec`) describes; `spec` may also be a callable already.

    Only classes of `phnn.tasks.registry` that subclass `base` are accepted (a `CheckpointError`, a
    ValueError, otherwise)."""
    if spec is None or not isinstance(spec, dict):
        return spec
    path = spec.get("class_path")
    if path is None:
        def unrecorded(*args: Any, **kwargs: Any) -> Any:
            raise ValueError(f"the {what} of this task was not recorded in its checkpoint ({spec.get('unrecorded')}); "
                             f"pass {what}=... to load_from_checkpoint to train it")
        return unrecorded
    cls = lookup_class(path, base, f"{what}.class_path")
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
