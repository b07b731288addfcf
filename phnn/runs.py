"""Run folders: one per `phnn fit`, named after what it trains; later commands on it write inside it.

    runs/<data>_<model>/version_<k>/      e.g. runs/cifar10_resnet18_large_phc4/version_0/
        config.yaml  metrics.csv  events.out.tfevents.*  checkpoints/{best,last}.ckpt   (fit)
        test/metrics.json  validate/metrics.json                                         (test, validate)
        predictions/                                                                     (predict)

Only `fit` makes a run (loggers, checkpoints, config.yaml). `test`, `validate` and `predict` given
a checkpoint from `<run>/checkpoints/` write their results into that run, or into `--out`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from phnn import notices
from phnn.io import write_text_atomic

CHECKPOINTS = "checkpoints"
CONFIG = "config.yaml"


#: the environment variable through which a fit's first process hands its claimed versions to the
#: processes it launches (DDP ranks re-run the command and must log into the same folder)
CLAIMED_ENV = "PHNN_CLAIMED_VERSIONS"
_claimed: set[Path] = set()
_made: set[Path] = set()  # folders above the claimed ones that claiming created (removed again when left empty)
_lock = threading.Lock()


def next_version(root: Path) -> int:
    """One more than the highest `version_<k>` folder under `root` (0 when there is none)."""
    versions = [int(p.name[8:]) for p in root.glob("version_*") if p.is_dir() and p.name[8:].isdigit()]
    return max(versions, default=-1) + 1


def claim_version(root: Path) -> int:
    """A new `version_<k>` under `root`, created here (exclusively): two fits started together get
    different folders. A process launched by the fit (a DDP rank) takes the version its launcher claimed."""
    key = str(root.resolve())
    handed = json.loads(os.environ.get(CLAIMED_ENV) or "{}")
    if handed.get("pid") != os.getpid() and key in handed.get("versions", {}):
        return int(handed["versions"][key])
    missing = [folder for folder in (root, *root.parents) if not folder.exists()]
    root.mkdir(parents=True, exist_ok=True)
    _made.update(folder.resolve() for folder in missing)
    version = next_version(root)
    while True:
        try:
            (root / f"version_{version}").mkdir()
        except FileExistsError:
            version += 1
            continue
        break
    _claimed.add((root / f"version_{version}").resolve())
    with _lock:
        current = json.loads(os.environ.get(CLAIMED_ENV) or "{}")
        versions = current.get("versions", {}) if current.get("pid") == os.getpid() else {}
        os.environ[CLAIMED_ENV] = json.dumps({"pid": os.getpid(), "versions": {**versions, key: version}})
    return version


@contextmanager
def claiming() -> Iterator[None]:
    """The span of one command: a run folder it claimed and left without a checkpoint (the command
    failed before it saved anything) or empty (the classes were only built, e.g. `phnn inspect
    --config`) is removed at the end, and its claims are forgotten."""
    try:
        yield
    except BaseException:
        for run in sorted(_claimed):
            discard_unstarted(run, existed=True)
        raise
    else:
        for run in sorted(_claimed):
            if run.is_dir() and not any(run.iterdir()):
                discard_unstarted(run, existed=True)
    finally:
        for folder in sorted(_made, key=lambda path: -len(path.parts)):  # deepest first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        _claimed.clear()
        _made.clear()
        os.environ.pop(CLAIMED_ENV, None)


def claimed(run: Path) -> bool:
    """Whether this process created `run` with `claim_version` (so it did not exist before the fit)."""
    return run.resolve() in _claimed


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def data_tag(data_class: type | None) -> str:
    """`CIFAR10DataModule` → `cifar10`, `ImageFolderDataModule` → `imagefolder` (empty without data)."""
    if data_class is None:
        return ""
    return data_class.__name__.removesuffix("DataModule").lower() or _snake(data_class.__name__)


def run_name(task_class: type, task_args: Mapping[str, Any], data_class: type | None) -> str:
    """The default name of a run: `<data>_<model>`, the same scheme as configs/experiment/*.yaml."""
    tag = getattr(task_class, "run_tag", None)
    model = tag(task_args) if callable(tag) else _snake(task_class.__name__)
    return "_".join(part for part in (data_tag(data_class), model) if part)


def run_of_checkpoint(checkpoint: str | Path | None) -> Path | None:
    """The run folder that holds `checkpoint` (`<run>/checkpoints/<file>` next to `<run>/config.yaml`)."""
    if not checkpoint:
        return None
    path = Path(checkpoint)
    run = path.parent.parent
    if path.parent.name == CHECKPOINTS and (run / CONFIG).is_file():
        return run
    return None


def discard_unstarted(run: Path, existed: bool) -> bool:
    """Remove the folder of a fit that failed before it saved anything (so it uses no version)."""
    if (existed and not claimed(run)) or not run.is_dir() or any((run / CHECKPOINTS).glob("*.ckpt")):
        return False
    shutil.rmtree(run, ignore_errors=True)
    if run.parent.is_dir() and not any(run.parent.iterdir()):
        run.parent.rmdir()
    return True


def write_results(folder: Path, stage: str, results: list[dict[str, float]], checkpoint: str | None) -> Path:
    """`<folder>/<stage>/metrics.json`: the metrics of each dataloader, the checkpoint they come from, and
    the counted warnings of the command (`phnn.notices`, by kind; empty without any)."""
    path = folder / stage / "metrics.json"
    content = {"checkpoint": checkpoint, "metrics": results[0] if len(results) == 1 else results,
               "warnings": notices.counts()}
    write_text_atomic(path, json.dumps(content, indent=2, default=float) + "\n")
    return path


def next_steps(run: Path, checkpoint: Path, predict_hint: str) -> str:
    """What to run after a fit: its run folder and the test / predict commands on its checkpoint."""
    config = run / CONFIG
    return "\n".join([
        f"Run folder: {run}",
        "Next:",
        f"  phnn test --config {config} --ckpt_path {checkpoint}",
        f"  phnn predict --config {config} --ckpt_path {checkpoint} {predict_hint}".rstrip(),
    ])
