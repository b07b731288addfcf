"""Make `--config` composition independent of the order the files are given in.

jsonargparse applies config files in order, and options of a class-typed group (`data`, `model`)
are only accepted once some earlier file has named the class (`data.class_path`). A family config
sets `data.init_args.extra_channel`, so `--config family.yaml --config data.yaml` used to fail.
`order_configs` moves such a file to just after the first file that names the class; files that
already worked keep their order (and so their precedence). When no file names the class and the
command line does not either (`--data CLASS`), `ConfigOrderError` says which file needs which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIG_FLAGS = ("--config", "-c")


class ConfigOrderError(ValueError):
    """A config file sets options of a class group that no config or flag names."""


def _config_slots(argv: list[str]) -> list[tuple[int, str]]:
    """(index in argv of the value, path) of every `--config PATH` / `--config=PATH` / `-c PATH`."""
    slots = []
    for index, arg in enumerate(argv):
        if arg in CONFIG_FLAGS and index + 1 < len(argv):
            slots.append((index + 1, argv[index + 1]))
        elif arg.startswith("--config="):
            slots.append((index, arg.split("=", 1)[1]))
    return slots


def _groups(path: str) -> tuple[set[str], set[str]]:
    """(groups whose class the file names, groups it sets init_args of) for a YAML config file."""
    try:
        content: Any = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return set(), set()  # not a readable file: jsonargparse reports it
    if not isinstance(content, dict):
        return set(), set()
    named = {key for key, value in content.items() if isinstance(value, dict) and "class_path" in value}
    configured = {key for key, value in content.items() if isinstance(value, dict) and "init_args" in value}
    return named, configured


def _flagged(argv: list[str], group: str) -> bool:
    return any(arg == f"--{group}" or arg.startswith(f"--{group}=") for arg in argv)


def order_configs(argv: list[str]) -> list[str]:
    """`argv` with its config files reordered so that each comes after the file naming its classes."""
    slots = _config_slots(argv)
    if len(slots) < 2:
        return list(argv)
    info = {path: _groups(path) for _, path in slots}
    named: set[str] = set()
    ordered: list[str] = []
    waiting: list[str] = []

    def place(path: str) -> None:
        ordered.append(path)
        named.update(info[path][0])

    for _, path in slots:
        class_groups, init_groups = info[path]
        if init_groups - class_groups - named:
            waiting.append(path)
            continue
        place(path)
        for pending in list(waiting):  # files that waited for a class this one named
            if not info[pending][1] - info[pending][0] - named:
                waiting.remove(pending)
                place(pending)
    for pending in waiting:
        missing = sorted(group for group in info[pending][1] - info[pending][0] - named if not _flagged(argv, group))
        if missing:
            group = missing[0]
            raise ConfigOrderError(
                f"{pending} sets {group} options ({group}.init_args) but no config names the {group} class "
                f"({group}.class_path). Add a {group} config (e.g. --config {group}/<name>.yaml) or "
                f"--{group} CLASS before it.")
        ordered.append(pending)
    result = list(argv)
    for (index, _), path in zip(slots, ordered):
        result[index] = f"--config={path}" if result[index].startswith("--config=") else path
    return result
