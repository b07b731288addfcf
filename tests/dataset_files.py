"""Tiny files in each torchvision dataset's own on-disk format (CIFAR10/100, SVHN, STL10, ImageFolder), for tests
that read them the way a user's real files are read (the data tests, the documented-commands test)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from torchvision.datasets import cifar, stl10, svhn

N_TRAIN, N_TEST = 20, 6
IMAGE_CLASSES = ("cat", "dog", "frog")


def write_image_folder(root: Path, classes: tuple[str, ...] = IMAGE_CLASSES, per_class: int = 8, size: int = 16,
                       seed: int = 0) -> Path:
    """Write `root/<class>/<i>.png`: noisy RGB images whose dominant colour channel is the class index."""
    rng = np.random.default_rng(seed)
    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 96, size=(size, size, 3))
            pixels[..., index % 3] += 150
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


def skip_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision compares the files' MD5 with the real datasets'; only that check is replaced."""
    for module in (cifar, svhn, stl10):
        monkeypatch.setattr(module, "check_integrity", lambda *args, **kwargs: True)


def _images(labels: np.ndarray, size: int) -> np.ndarray:
    """Constant images [N, size, size, 3] whose red level encodes the label and green the position."""
    images = np.zeros((len(labels), size, size, 3), dtype=np.uint8)
    images[..., 0] = (20 * labels)[:, None, None]
    images[..., 1] = np.arange(len(labels))[:, None, None] % 256
    images[..., 2] = 200
    return images


def _labels(count: int, classes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, count)


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def _cifar_entry(labels: np.ndarray, key: str) -> dict:
    data = _images(labels, 32).transpose(0, 3, 1, 2).reshape(len(labels), -1)  # rows of R.., G.., B..
    return {"data": data, key: labels.tolist()}


def write_cifar10(root: Path) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    train = _labels(N_TRAIN, 10, 0)
    for i, part in enumerate(np.array_split(train, 5), start=1):
        _pickle(folder / f"data_batch_{i}", _cifar_entry(part, "labels"))
    test = _labels(N_TEST, 10, 1)
    _pickle(folder / "test_batch", _cifar_entry(test, "labels"))
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    return test


def write_cifar100(root: Path) -> np.ndarray:
    folder = root / "cifar-100-python"
    test = _labels(N_TEST, 12, 1)  # labels < 12 so that the red level 20·label fits a byte
    _pickle(folder / "train", _cifar_entry(_labels(N_TRAIN, 12, 0), "fine_labels"))
    _pickle(folder / "test", _cifar_entry(test, "fine_labels"))
    _pickle(folder / "meta", {"fine_label_names": [f"class{i}" for i in range(100)]})
    return test


def write_svhn(root: Path) -> np.ndarray:
    root.mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", N_TRAIN, 0), ("test", N_TEST, 1)):
        labels = _labels(count, 10, seed)
        on_disk = np.where(labels == 0, 10, labels)  # SVHN stores digit 0 as label 10
        scipy.io.savemat(root / f"{split}_32x32.mat",
                         {"X": _images(labels, 32).transpose(1, 2, 3, 0), "y": on_disk[:, None].astype(np.uint8)})
    return labels


def write_stl10(root: Path) -> np.ndarray:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", N_TRAIN, 0), ("test", N_TEST, 1)):
        labels = _labels(count, 10, seed)
        # column-major 3×96×96 per image, labels 1..10
        (folder / f"{split}_X.bin").write_bytes(_images(labels, 96).transpose(0, 3, 2, 1).tobytes())
        (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
    (folder / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return labels
