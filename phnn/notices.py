"""Counted warnings: every change phnn makes to data without stopping (an event clipped at the clip's
end, a duplicated label row dropped, an entry of a predict folder skipped) is said and counted.

`warn(kind, message)` logs the message (logger ``phnn``, level WARNING) and counts it under
``kind``. The counts of the running command (`counts`) go into the run's metrics: the fit's loggers
get ``data/warnings/<kind>`` and ``data/warnings`` (`phnn.callbacks.DataWarnings`), and
``test|validate/metrics.json`` a ``warnings`` section (`phnn.runs.write_results`); at the end of a
command with warnings, one summary line goes to stderr. Work done in another thread can `capture`
what it warned, so that a cache can store it with its result and `replay` it whenever the result is
used again: a cached clip is counted in every run that uses it, not only in the run that built it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

LOGGER = logging.getLogger("phnn")
#: the metric name prefix of the counts in a run's loggers
METRIC_PREFIX = "data/warnings"

_counts: Counter[str] = Counter()
_said: set[tuple[str, str]] = set()  # one fact (its message names file and row) is counted once per command
_lock = threading.Lock()
_local = threading.local()


def warn(kind: str, message: str) -> None:
    """Log ``message`` and count it under ``kind`` (a short snake_case name, e.g. ``clipped_events``);
    the same message again in the same command (a clip's labels read twice) is neither logged nor counted again."""
    with _lock:
        new = (kind, message) not in _said
        _said.add((kind, message))
        _counts[kind] += new
    if new:
        LOGGER.warning("phnn: warning: %s", message)
    for captured in getattr(_local, "captures", []):
        captured.append((kind, message))


def counts() -> dict[str, int]:
    """Warnings counted so far by the running command, by kind."""
    with _lock:
        return dict(sorted(_counts.items()))


def metrics() -> dict[str, float]:
    """The counts as logger metrics: ``data/warnings`` (the total) and ``data/warnings/<kind>``."""
    current = counts()
    return {METRIC_PREFIX: float(sum(current.values())),
            **{f"{METRIC_PREFIX}/{k}": float(v) for k, v in current.items()}}


@contextmanager
def capture() -> Iterator[list[tuple[str, str]]]:
    """The ``(kind, message)`` of every warning this thread gives inside the block (they are counted too)."""
    captured: list[tuple[str, str]] = []
    stack = getattr(_local, "captures", [])
    _local.captures = [*stack, captured]
    try:
        yield captured
    finally:
        _local.captures = stack


def replay(warnings: Iterable[Iterable[str]]) -> None:
    """Warn again what a cached result recorded (``(kind, message)`` pairs)."""
    for kind, message in warnings:
        warn(kind, message)


@contextmanager
def collecting(command: str = "") -> Iterator[None]:
    """The span of one command: counts start at zero; at the end a summary line goes to stderr."""
    with _lock:
        _counts.clear()
        _said.clear()
    try:
        yield
    finally:
        current = counts()
        if current:
            summary = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in current.items())
            print(f"phnn{' ' + command if command else ''}: {sum(current.values())} warning(s): {summary} "
                  "(each named above)", file=sys.stderr)
        with _lock:
            _counts.clear()
            _said.clear()
