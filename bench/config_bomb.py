"""A 9-line YAML of nested aliases ("billion laughs") given to `phnn fit --config`, against `phnn --help`
(the baseline: the same imports, nothing parsed), each in its own process: wall time and peak memory.

    python bench/config_bomb.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n" for previous, name in zip("abcdefgh", "bcdefghi"))


#: runs its arguments as a child and prints the exit code and the child's peak RSS (KB), so that each
#: measured command has a peak of its own (RUSAGE_CHILDREN only grows within one process)
WRAPPER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:], capture_output=True).returncode; "
           "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def measure(args: list[str]) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak RSS in MB) of `python -m phnn args` in a process of its own."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "phnn", *args],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), time.perf_counter() - start, int(out[1]) / 1024


def main() -> None:
    """Print both runs and their ratios."""
    from phnn.config_files import check_config_file
    from phnn.errors import ConfigFileError

    with tempfile.TemporaryDirectory() as folder:
        bomb = Path(folder) / "laughs.yaml"
        bomb.write_text(BOMB)
        start = time.perf_counter()
        try:
            check_config_file(bomb)
        except ConfigFileError:
            check = time.perf_counter() - start
        base = measure(["--help"])
        refused = measure(["fit", "--config", str(bomb)])
    print(f"check_config_file refused the bomb in {check * 1000:.0f} ms")
    for name, (code, wall, peak) in (("phnn --help", base), ("phnn fit --config laughs.yaml", refused)):
        print(f"{name:32s} exit {code}  {wall:6.2f} s  peak {peak:7.0f} MB")
    print(f"ratio (bomb / help): time {refused[1] / base[1]:.2f}, peak memory {refused[2] / base[2]:.2f}")


if __name__ == "__main__":
    main()
