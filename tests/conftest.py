"""Shared fixtures: tiny generated data that the tests of several parts use."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch  # noqa: F401  (see below)
import pytest
from dataset_files import write_image_folder

# Lightning gives its loggers a handler bound to the sys.stderr of the moment it is first imported. Imported
# here, that is pytest's session-long stream; imported first inside a test, it would be that test's capsys
# stream, closed afterwards, and every later Lightning log line would print a "Logging error" traceback.

@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A flat ImageFolder root: 3 classes (cat, dog, frog) × 8 PNGs of 16×16, for `ImageFolderDataModule`."""
    return write_image_folder(tmp_path / "images")


@pytest.fixture
def image_folder_splits(tmp_path: Path) -> Path:
    """An ImageFolder root with train/ (3 × 8), val/ (3 × 4) and test/ (3 × 4) PNGs of 16×16."""
    root = tmp_path / "images"
    for split, per_class, seed in (("train", 8, 0), ("val", 4, 1), ("test", 4, 2)):
        write_image_folder(root / split, per_class=per_class, seed=seed)
    return root


@pytest.fixture(scope="session")
def l3das21_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic L3DAS21 Task 2 dataset: 4 train + 2 dev clips of 4 s, mics A and B, ov1–ov3.

    Shared by the session: pass your own ``cache_dir`` (e.g. under ``tmp_path``) to write features.
    """
    from phnn.data.l3das21.synth import synthesize

    root = tmp_path_factory.mktemp("l3das21")
    synthesize(root, train_clips=4, dev_clips=2, duration=4.0, max_overlap=3, mic_b=True, seed=0)
    return root


@pytest.fixture(scope="module")
def image_folder_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flat ImageFolder root of 8×8 PNGs shared by the tests of one module (e.g. one trained checkpoint)."""
    return write_image_folder(tmp_path_factory.mktemp("images") / "images", size=8)
