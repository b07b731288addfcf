"""phnn's own commands besides LightningCLI's fit/validate/test/predict: one registry, one entry each.

A command is a function `main(argv: list[str]) -> int` in a module of its own: it parses `argv` (the
arguments after its name; argparse, with an "Examples:" block of `phnn ...` lines at the end of its
help, which the docs test runs), returns 0 (or 1 when it skipped bad inputs it names), and raises
`phnn.errors` types for the user's mistakes (one line, exit 2). The first line of its docstring is
its summary in `phnn --help`. To add one, import its module here and add one line to `EXTRA_COMMANDS`.
"""

from __future__ import annotations

from collections.abc import Callable

from phnn import download
from phnn.cli import model_commands
from phnn.cli.help import first_line
from phnn.data.l3das21 import synth
from phnn.tools import compress, score

CommandMain = Callable[[list[str]], int]

#: name → the function `phnn <name> ARGS` calls with ARGS
EXTRA_COMMANDS: dict[str, CommandMain] = {
    "synth": synth.main,
    "download": download.main,
    "inspect": model_commands.inspect_main,
    "export": model_commands.export_main,
    "score": score.main,
    "compress": compress.main,
}


def summary(command: CommandMain) -> str:
    """The one line `phnn --help` shows for a command: its docstring's first line."""
    return first_line(command.__doc__) or f"(no summary: give {command.__qualname__} a docstring)"


def command_summaries() -> dict[str, str]:
    """Every extra command with its one-line summary, in registration order."""
    return {name: summary(command) for name, command in EXTRA_COMMANDS.items()}
