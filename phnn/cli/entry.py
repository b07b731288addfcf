"""`main`: what the `phnn` console script, `python -m phnn` and the tests (in-process) call."""

from __future__ import annotations

import sys
from argparse import ArgumentError

from lightning.pytorch.utilities.exceptions import SIGTERMException

from phnn import notices
from phnn.cli.app import run_cli
from phnn.cli.commands import EXTRA_COMMANDS, command_summaries
from phnn.cli.parse_errors import one_line
from phnn.errors import EXIT_SIGTERM, UsageError, report_failures


def failures_of(trainer: object) -> list[str]:
    """Failures that callbacks recorded (e.g. a prediction writer's unreadable clips), in order."""
    return [str(failure) for callback in getattr(trainer, "callbacks", [])
            for failure in getattr(callback, "failures", None) or []]


def _run(argv: list[str]) -> int:
    """Dispatch an extra command, or run LightningCLI; returns the exit code."""
    try:
        if argv and argv[0] in EXTRA_COMMANDS:
            return int(EXTRA_COMMANDS[argv[0]](argv[1:]) or 0)
        cli = run_cli(argv, extra_commands=command_summaries())
    except SIGTERMException:
        saved = "; the state was saved in the run's checkpoints/last.ckpt (resume with --ckpt_path last)"
        print(f"phnn {argv[0]}: stopped by SIGTERM{saved if argv[0] == 'fit' else ''}", file=sys.stderr)
        return EXIT_SIGTERM
    except ArgumentError as error:  # a value jsonargparse refused: the option, the value, what is expected
        raise UsageError(one_line(str(error))) from None
    except SystemExit as exit_:  # --help, --print_config and parse errors end here
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    failures = failures_of(cli.trainer)
    if failures:
        print(f"phnn {cli.subcommand}: {len(failures)} failure(s):", *failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def main(args: list[str] | None = None) -> int:
    """Run `phnn <subcommand> ...`; returns the exit code: 0, 1 when a callback reported failures,
    2 for a user-facing error (one message; see `phnn.errors`), 143 after SIGTERM."""
    argv = list(sys.argv[1:] if args is None else args)
    with notices.collecting(argv[0] if argv else ""):
        return report_failures(argv[0] if argv else "", lambda: _run(argv))
