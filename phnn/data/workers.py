"""How many DataLoader worker processes to use when a config does not say (`num_workers: null`)."""

from __future__ import annotations

import os

#: more workers than this rarely help small images or cached features, and each costs memory
MAX_AUTO_WORKERS = 4


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity where the OS has one, as torch's check uses)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_num_workers(num_workers: int | None, owner: str) -> int:
    """`None` → one worker per core, at most `MAX_AUTO_WORKERS` (never more than the machine has, which
    makes torch warn); an explicit number is kept, after checking it."""
    if num_workers is None:
        return min(MAX_AUTO_WORKERS, available_cpus())
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
        raise ValueError(f"{owner}: num_workers must be an integer >= 0 or null (one per CPU core, at most "
                         f"{MAX_AUTO_WORKERS}); got {num_workers!r}")
    return num_workers
