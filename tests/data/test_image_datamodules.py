"""Image DataModules read each dataset's own on-disk format (written here, tiny), split and transform it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_files import (
    N_TEST,
    N_TRAIN,
    skip_checksums,
    write_cifar10,
    write_cifar100,
    write_stl10,
    write_svhn,
)

from phnn.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DatasetNotFoundError,
    ImageDataModule,
    ImageFolderDataModule,
    STL10DataModule,
    SVHNDataModule,
)
from phnn.data.image import GRAY_WEIGHTS


@pytest.fixture(autouse=True)
def _skip_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    skip_checksums(monkeypatch)


TORCHVISION = [
    pytest.param(CIFAR10DataModule, write_cifar10, 10, 32, id="cifar10"),
    pytest.param(CIFAR100DataModule, write_cifar100, 100, 32, id="cifar100"),
    pytest.param(SVHNDataModule, write_svhn, 10, 32, id="svhn"),
    pytest.param(STL10DataModule, write_stl10, 10, 96, id="stl10"),
]
Writer = Callable[[Path], np.ndarray]  # writes the files, returns the test labels


def _make(cls: type[ImageDataModule], root: Path, **kwargs: object) -> ImageDataModule:
    options = {"batch_size": 4, "num_workers": 0, "val_fraction": 0.25, "augment": False} | kwargs
    return cls(root=root, **options)


def _red_label(dm: ImageDataModule, images: torch.Tensor) -> torch.Tensor:
    """Undo the normalisation of the red channel and read back the label it encodes."""
    red = images[:, dm.in_channels - 3].mean(dim=(1, 2)) * dm.std[0] + dm.mean[0]
    return torch.round(red * 255 / 20).long()


@pytest.mark.parametrize(("cls", "write", "classes", "size"), TORCHVISION)
def test_reads_its_own_format(cls: type[ImageDataModule], write: Writer, classes: int, size: int,
                              tmp_path: Path) -> None:
    expected_test_labels = torch.from_numpy(write(tmp_path))
    dm = _make(cls, tmp_path)
    assert (dm.num_classes, dm.in_channels) == (classes, 3)
    dm.setup("fit")
    assert (len(dm.train_dataset), len(dm.val_dataset)) == (N_TRAIN - 5, 5)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, size, size) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.max() < classes
    assert torch.equal(_red_label(dm, images), labels)
    dm.setup("test")
    test_images, test_labels = next(iter(dm.test_dataloader()))
    assert len(dm.test_dataset) == N_TEST
    assert torch.equal(test_labels, expected_test_labels[:4])
    assert torch.equal(_red_label(dm, test_images), test_labels)
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))  # without predict_path: the test split, in order, named
    assert torch.equal(batch["images"], test_images)
    assert batch["paths"] == [f"{cls.__name__}.test[{i}]" for i in range(4)]


@pytest.mark.parametrize(("cls", "write", "classes", "size"), TORCHVISION)
def test_missing_files_name_the_folder_and_the_fix(cls: type[ImageDataModule], write: Writer, classes: int,
                                                   size: int, tmp_path: Path) -> None:
    dm = _make(cls, tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert str(tmp_path / "empty") in message and "--data.download true" in message
    assert isinstance(error.value, ValueError) and isinstance(error.value, FileNotFoundError)


def test_val_split_is_disjoint_from_train_and_reproducible_by_seed(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    first, again, other = (_make(CIFAR10DataModule, tmp_path, seed=seed) for seed in (7, 7, 8))
    for dm in (first, again, other):
        dm.setup("fit")
    train_idx, val_idx = set(first.train_dataset.indices), set(first.val_dataset.indices)
    assert not train_idx & val_idx and train_idx | val_idx == set(range(N_TRAIN))
    assert first.val_dataset.indices == again.val_dataset.indices
    assert first.val_dataset.indices != other.val_dataset.indices
    # validation comes from the training split, never from the test split
    assert first.val_dataset.dataset is first.train_dataset.dataset and first.val_dataset.dataset.train


@pytest.mark.parametrize("kind", ["zeros", "grayscale"])
def test_extra_channel_is_prepended(kind: str, tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    plain, extra = _make(CIFAR10DataModule, tmp_path), _make(CIFAR10DataModule, tmp_path, extra_channel=kind)
    assert extra.in_channels == 4
    plain.setup("test")
    extra.setup("test")
    rgb, _ = plain.test_dataset[0]
    four, _ = extra.test_dataset[0]
    assert four.shape == (4, 32, 32)
    assert torch.allclose(four[1:], rgb)
    if kind == "zeros":
        assert torch.count_nonzero(four[0]) == 0
    else:
        mean, std = torch.tensor(plain.mean).view(3, 1, 1), torch.tensor(plain.std).view(3, 1, 1)
        raw = rgb * std + mean
        gray = (raw * torch.tensor(GRAY_WEIGHTS).view(3, 1, 1)).sum(0)
        gray_mean = sum(w * m for w, m in zip(GRAY_WEIGHTS, plain.mean))
        gray_std = sum(w * s for w, s in zip(GRAY_WEIGHTS, plain.std))
        assert torch.allclose(four[0], (gray - gray_mean) / gray_std, atol=1e-5)


def _repeats(dataset: torch.utils.data.Dataset, times: int = 12) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [dataset[0][0] for _ in range(times)]


def test_augment_changes_training_images_only_when_on(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    on, off = _make(CIFAR10DataModule, tmp_path, augment=True), _make(CIFAR10DataModule, tmp_path, augment=False)
    for dm in (on, off):
        dm.setup("fit")
    augmented = _repeats(on.train_dataset)
    assert any(not torch.equal(augmented[0], image) for image in augmented[1:])
    assert all(image.shape == (3, 32, 32) for image in augmented)
    for dataset in (off.train_dataset, on.val_dataset):
        images = _repeats(dataset)
        assert all(torch.equal(images[0], image) for image in images[1:])


def test_svhn_augments_without_flipping_digits(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    steps = [type(step).__name__ for step in _make(SVHNDataModule, tmp_path, augment=True).transform(True).transforms]
    assert "RandomCrop" in steps and "RandomHorizontalFlip" not in steps
    transforms = _make(CIFAR10DataModule, tmp_path, augment=True).transform(True).transforms
    steps = [type(step).__name__ for step in transforms]
    assert "RandomCrop" in steps and "RandomHorizontalFlip" in steps


@pytest.mark.parametrize(("field", "value"), [("extra_channel", "ones"), ("val_fraction", 1.0), ("batch_size", 0),
                                              ("num_workers", -1)])
def test_bad_options_are_value_errors(field: str, value: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=field):
        CIFAR10DataModule(root=tmp_path, **{field: value})


def test_image_folder_flat_layout_is_split_by_fraction(image_folder: Path) -> None:
    dm = _make(ImageFolderDataModule, image_folder, image_size=16, extra_channel="zeros")
    assert (dm.num_classes, dm.in_channels, dm.classes) == (3, 4, ["cat", "dog", "frog"])
    dm.setup("fit")
    # no test/ folder: a seeded test split is held out apart from validation (24 · 0.25 and 24 · 0.1)
    splits = [set(dataset.indices) for dataset in (dm.train_dataset, dm.val_dataset, dm.test_dataset)]
    assert [len(indices) for indices in splits] == [16, 6, 2]
    assert set.union(*splits) == set(range(24)) and sum(map(len, splits)) == 24
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 4, 16, 16) and set(labels.tolist()) <= {0, 1, 2}
    dm.setup("test")
    assert dm.test_dataset.indices == sorted(splits[2])
    again = _make(ImageFolderDataModule, image_folder, test_fraction=0.0)
    again.setup("fit")
    assert again.val_dataset.indices == dm.val_dataset.indices  # the same validation images for a seed


def test_image_folder_without_a_test_split_refuses_to_test_on_validation(image_folder: Path) -> None:
    dm = _make(ImageFolderDataModule, image_folder, test_fraction=0.0)
    with pytest.raises(ValueError) as error:
        dm.setup("test")
    assert "test_fraction" in str(error.value) and str(image_folder) in str(error.value)


def test_image_folder_predicts_a_file_a_folder_or_a_glob(image_folder: Path, tmp_path: Path) -> None:
    from PIL import Image

    big = tmp_path / "big.jpg"
    Image.new("RGB", (40, 24), (200, 10, 10)).save(big)
    cases = {str(big): [big], str(image_folder / "dog"): sorted((image_folder / "dog").glob("*.png")),
             f"{image_folder}/*/[01].png": sorted(image_folder.glob("*/[01].png"))}
    for predict_path, expected in cases.items():
        dm = _make(ImageFolderDataModule, image_folder, image_size=16, predict_path=predict_path)
        dm.setup("predict")
        batches = list(dm.predict_dataloader())
        assert [path for batch in batches for path in batch["paths"]] == [str(p) for p in expected]
        assert batches[0]["images"].shape[1:] == (3, 16, 16)  # any size: resized and centre-cropped
    dm = _make(ImageFolderDataModule, image_folder, predict_path=str(tmp_path / "nothing*.png"))
    with pytest.raises(ValueError) as error:
        dm.setup("predict")
    assert "nothing*.png" in str(error.value) and "no image found" in str(error.value)


def test_image_folder_with_split_folders(image_folder_splits: Path) -> None:
    dm = _make(ImageFolderDataModule, image_folder_splits, image_size=8)
    dm.setup("fit")
    dm.setup("test")
    assert (len(dm.train_dataset), len(dm.val_dataset), len(dm.test_dataset)) == (24, 12, 12)
    image, label = dm.test_dataset[11]
    assert image.shape == (3, 8, 8) and label == 2
    # the dominant colour of a generated image is its class: the labels follow the folders
    for dataset in (dm.train_dataset, dm.test_dataset):
        for index in range(len(dataset)):
            image, label = dataset[index]
            assert int(image.mean(dim=(1, 2)).argmax()) == label


def test_image_folder_labels_follow_the_training_classes(image_folder_splits: Path) -> None:
    for path in (image_folder_splits / "val" / "cat").iterdir():
        path.unlink()
    (image_folder_splits / "val" / "cat").rmdir()
    dm = _make(ImageFolderDataModule, image_folder_splits, image_size=8)
    dm.setup("fit")
    assert sorted({dm.val_dataset[i][1] for i in range(len(dm.val_dataset))}) == [1, 2]


def test_image_folder_errors_name_the_folder(tmp_path: Path, image_folder_splits: Path) -> None:
    with pytest.raises(ValueError, match="is not a folder"):
        ImageFolderDataModule(root=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders") as error:
        ImageFolderDataModule(root=tmp_path / "empty")
    assert str(tmp_path / "empty") in str(error.value)
    (image_folder_splits / "val" / "horse").mkdir()
    dm = _make(ImageFolderDataModule, image_folder_splits)
    with pytest.raises(ValueError, match="horse"):
        dm.setup("fit")
