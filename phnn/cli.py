"""The `phnn` command: LightningCLI subcommands (fit, validate, test, predict) plus phnn's own tools.

`main(args)` is what the console script and the tests call, in-process.
"""

from __future__ import annotations

import importlib
import sys

# Extra subcommands: name -> "module:function"; each function takes the remaining argv and returns
# an exit code. Imported lazily so that `phnn --help` stays fast.
EXTRA_COMMANDS: dict[str, str] = {}


def main(args: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in EXTRA_COMMANDS:
        module_name, function_name = EXTRA_COMMANDS[argv[0]].split(":")
        return int(getattr(importlib.import_module(module_name), function_name)(argv[1:]) or 0)
    raise NotImplementedError("LightningCLI subcommands are built in the image-classification issue")


if __name__ == "__main__":
    sys.exit(main())
