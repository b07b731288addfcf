"""Image classification DataModules: CIFAR10/100, SVHN, STL10 (torchvision) and a user's ImageFolder.

All share `ImageDataModule`, which owns what the paper's experiments vary:

    extra_channel  none | zeros | grayscale   3 → 4 input channels for n = 4 / quaternions:
                                              zeros gives [0, R, G, B], grayscale [gray, R, G, B]
    augment        random crop with padding (size / 8) + horizontal flip (no flip for SVHN digits)
    val_fraction   validation images carved from the *training* split with a fixed `seed`
                   (the test split is never used for validation)
    predict_path   images to predict on (a file, a folder or a glob); default: the test split

A dataset is a small subclass that fills in a table of class attributes (torchvision class, the
keyword arguments of its train / test splits, the files it needs, mean/std, image size); there is
no if-chain over dataset names. Batches are `(images [B, C, H, W] float32, labels [B] int64)`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from lightning.pytorch import LightningDataModule
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import datasets
from torchvision.transforms import v2

from phnn.data.listing import regular_files
from phnn.data.workers import resolve_num_workers
from phnn.errors import DataFileError, DatasetNotFoundError

ExtraChannel = Literal["none", "zeros", "grayscale"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ITU-R 601 luma weights, as PIL's "L" conversion.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


class PrependChannel(v2.Transform):
    """Put one channel in front of an RGB image tensor: zeros ([0, R, G, B]) or its luma ([Y, R, G, B])."""

    def __init__(self, kind: Literal["zeros", "grayscale"]) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, image: Tensor) -> Tensor:
        if self.kind == "zeros":
            extra = torch.zeros_like(image[:1])
        else:
            weights = torch.tensor(GRAY_WEIGHTS, dtype=image.dtype, device=image.device).view(3, 1, 1)
            extra = (image * weights).sum(0, keepdim=True)
        return torch.cat([extra, image], dim=0)


def _extra_stats(kind: ExtraChannel, mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    """Mean/std of the prepended channel: zeros stay exactly 0 (0, 1); gray uses the luma-weighted RGB stats."""
    if kind == "zeros":
        return [0.0], [1.0]
    return ([sum(w * m for w, m in zip(GRAY_WEIGHTS, mean))],
            [sum(w * s for w, s in zip(GRAY_WEIGHTS, std))])


#: extra_channel -> channels it adds
EXTRA_CHANNELS: dict[str, int] = {"none": 0, "zeros": 1, "grayscale": 1}

#: file types `predict_path` picks up in a folder or a glob (PIL reads them)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def find_images(predict_path: str | Path) -> list[Path]:
    """The images of a file, a folder (recursively) or a glob, sorted; ValueError when there are none."""
    text = str(predict_path)
    path = Path(text).expanduser()
    context = f"predict_path={text!r}"
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = regular_files(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES), context)
    else:
        files = regular_files(sorted(Path(p) for p in glob.glob(text, recursive=True)
                                     if Path(p).suffix.lower() in IMAGE_SUFFIXES), context)
    if not files:
        raise ValueError(f"predict_path={text!r}: no image found (expected an image file, a folder or a glob of "
                         f"{', '.join(IMAGE_SUFFIXES)} files)")
    return files


class ImageFiles(Dataset):
    """Image files for prediction: items `{"images": tensor, "paths": str, "errors": str}` (batched by the
    default collate). An image that cannot be read (corrupt, truncated, a decompression bomb) does not
    stop the others: its item holds a blank image and, in ``errors``, the one-line reason naming the
    file, which the prediction writer reports instead of a prediction (``errors`` is "" for a good one)."""

    def __init__(self, files: Sequence[Path], transform: Callable[[Any], Tensor]) -> None:
        self.files = list(files)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = str(self.files[index])
        try:
            return {"images": self.transform(_rgb_loader(path)), "paths": path, "errors": ""}
        except DataFileError as error:
            return {"images": self.transform(Image.new("RGB", (1, 1))), "paths": path, "errors": str(error)}


class NamedItems(Dataset):
    """`dataset[i]` as `{"images", "paths"}`, named by the file when the dataset has one (ImageFolder),
    else by `<name>[i]`: the test split as prediction input, each image traceable."""

    def __init__(self, dataset: Dataset, name: str) -> None:
        self.dataset = dataset
        self.name = name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, _ = self.dataset[index]
        return {"images": image, "paths": self.path_of(index)}

    def path_of(self, index: int) -> str:
        dataset = self.dataset
        if isinstance(dataset, TransformedSubset):
            index, dataset = dataset.indices[index], dataset.dataset
        samples = getattr(dataset, "samples", None)
        return str(samples[index][0]) if samples is not None else f"{self.name}[{index}]"


class TransformedSubset(Dataset):
    """`dataset[indices[i]]` with `transform` applied to the image: one decoded dataset, two views."""

    def __init__(self, dataset: Dataset, indices: Sequence[int], transform: Callable[[Any], Tensor]) -> None:
        self.dataset = dataset
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.dataset[self.indices[index]]
        return self.transform(image), int(label)


class ImageDataModule(LightningDataModule):
    """Shared splits, transforms and loaders; subclasses say where the train and test images come from.

    Args:
        root: the dataset folder.
        batch_size: images per batch (per device under DDP).
        num_workers: DataLoader worker processes; null: one per CPU core, at most 4.
        val_fraction: share of the training images held out for validation, in [0, 1).
        seed: seed of the train/validation(/test) split (the same seed gives the same split).
        augment: random crop with padding + horizontal flip on the training images.
        extra_channel: none (3 channels) | zeros ([0, R, G, B]) | grayscale ([gray, R, G, B]).
        predict_path: images for `phnn predict`: a file, a folder or a glob; null: the test split.
    """

    #: Per dataset: number of classes, normalisation statistics (RGB), image side, flip allowed.
    classes_count: ClassVar[int] = 0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    image_size: int = 32
    flip: ClassVar[bool] = True

    def __init__(
        self,
        root: str | Path = "data",
        batch_size: int = 128,
        num_workers: int | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        augment: bool = True,
        extra_channel: ExtraChannel = "none",
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if extra_channel not in EXTRA_CHANNELS:
            raise ValueError(f"{name}: extra_channel must be one of {list(EXTRA_CHANNELS)}; got {extra_channel!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"{name}: val_fraction must be in [0, 1); got {val_fraction!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{name}: batch_size must be an integer >= 1; got {batch_size!r}")
        self.save_hyperparameters()  # stored in checkpoints, so a run records its data settings
        self.root = Path(root).expanduser()
        self.batch_size = batch_size
        self.num_workers = resolve_num_workers(num_workers, name)
        self.predict_path = predict_path
        self.val_fraction = val_fraction
        self.seed = seed
        self.augment = augment
        self.extra_channel = extra_channel
        self.num_classes = self.classes_count
        self.in_channels = 3 + EXTRA_CHANNELS[extra_channel]
        self.class_names: list[str] = [str(index) for index in range(self.classes_count)]
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    def describe_input(self) -> dict[str, Any]:
        """What a deployed model needs to prepare an image (stored in checkpoints/exports)."""
        first = {"none": [], "zeros": ["zeros"], "grayscale": ["grayscale"]}[self.extra_channel]
        return {
            "kind": "image",
            "layout": "N, C, H, W",
            "channels": first + ["R", "G", "B"],
            "image_size": self.image_size,
            "normalization": {"mean": list(self.mean), "std": list(self.std),
                              "formula": "(pixel in [0, 1] - mean) / std per RGB channel, before the extra channel"},
            "outputs": "logits (softmax for class probabilities)",
        }

    # -- what a dataset subclass provides -------------------------------------------------------
    def load_split(self, split: Literal["train", "val", "test"]) -> Dataset | None:
        """The raw split (items `(PIL image, label)`), or None when the dataset has no such split."""
        raise NotImplementedError

    # -- transforms ---------------------------------------------------------------------------------
    def resize_transforms(self) -> list[v2.Transform]:
        """Transforms that bring an image to `image_size` (none for fixed-size datasets)."""
        return []

    def normalization(self) -> tuple[list[float], list[float]]:
        """Per-channel mean/std of the model input, the extra channel first."""
        mean, std = list(self.mean), list(self.std)
        if self.extra_channel == "none":
            return mean, std
        extra_mean, extra_std = _extra_stats(self.extra_channel, mean, std)
        return extra_mean + mean, extra_std + std

    def transform(self, train: bool) -> v2.Compose:
        """PIL image → normalised float tensor [C, H, W]; augmentation only for training when on."""
        steps: list[v2.Transform] = [v2.ToImage(), *self.resize_transforms()]
        if train and self.augment:
            steps.append(v2.RandomCrop(self.image_size, padding=self.image_size // 8))
            if self.flip:
                steps.append(v2.RandomHorizontalFlip())
        steps.append(v2.ToDtype(torch.float32, scale=True))
        if self.extra_channel != "none":
            steps.append(PrependChannel(self.extra_channel))
        mean, std = self.normalization()
        steps.append(v2.Normalize(mean, std))
        return v2.Compose(steps)

    # -- splits ---------------------------------------------------------------------------------------
    def held_out_test_fraction(self) -> float:
        """Share of the training images held out as the test split when the dataset has none (0: none)."""
        return 0.0

    def split_indices(self, size: int, test_fraction: float = 0.0) -> tuple[list[int], list[int], list[int]]:
        """(train, val, test) indices of a `size`-image training split: one seeded permutation, val first,
        then test (so the validation images of a seed do not depend on `test_fraction`)."""
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(size, generator=generator).tolist()
        n_val, n_test = (max(int(round(size * fraction)), 1 if fraction > 0 else 0)
                         for fraction in (self.val_fraction, test_fraction))
        if n_val + n_test >= size:
            raise ValueError(f"{type(self).__name__}: val_fraction={self.val_fraction} and test_fraction="
                             f"{test_fraction} of {size} training images leave none for training")
        return sorted(order[n_val + n_test:]), sorted(order[:n_val]), sorted(order[n_val:n_val + n_test])

    def setup(self, stage: str | None = None) -> None:
        """Build the train/val (fit, validate), test (test) and predict datasets, each once."""
        if stage in (None, "fit", "validate"):
            self._setup_fit()
        if stage in (None, "test") or (stage == "predict" and self.predict_path is None):
            self._setup_test()
        if stage in (None, "predict"):
            self._setup_predict()

    def _setup_fit(self) -> None:
        if self.train_dataset is not None:
            return
        train = self.load_split("train")
        self.class_names = list(getattr(train, "classes", None) or self.class_names)
        val = self.load_split("val")
        # only a dataset that can hold test images out needs to know whether it has a test split (a full read)
        held_out = self.held_out_test_fraction()
        carved_test = held_out if held_out and self.load_split("test") is None else 0.0
        train_idx, val_idx, test_idx = self.split_indices(len(train), carved_test)
        if val is not None:  # a val/ folder: nothing of train/ goes to validation
            train_idx, val_idx = sorted(train_idx + val_idx), list(range(len(val)))
        self.train_dataset = TransformedSubset(train, train_idx, self.transform(train=True))
        self.val_dataset = TransformedSubset(val if val is not None else train, val_idx, self.transform(train=False))
        if test_idx:
            self.test_dataset = TransformedSubset(train, test_idx, self.transform(train=False))

    def _setup_test(self) -> None:
        """The test split, or the test images held out of the training split; never the validation images,
        which chose the checkpoint (their score would be optimistic)."""
        if self.test_dataset is not None:
            return
        test = self.load_split("test")
        if test is not None:
            self.test_dataset = TransformedSubset(test, range(len(test)), self.transform(train=False))
            return
        self._setup_fit()
        if self.test_dataset is None:
            raise ValueError(
                f"{type(self).__name__}: no test split in {str(self.root)!r} and none held out (test_fraction=0); "
                "testing on the validation images, which chose the checkpoint, would overstate the score. Add a "
                "test/<class>/ folder or set data.test_fraction > 0 (before fit)")

    def _setup_predict(self) -> None:
        if self.predict_dataset is not None:
            return
        if self.predict_path is None:
            self.predict_dataset = NamedItems(self.test_dataset, f"{type(self).__name__}.test")
            return
        # any file size: resize and centre-crop to the model's input, then the evaluation transform
        steps = [v2.ToImage(), v2.Resize(self.image_size, antialias=True), v2.CenterCrop(self.image_size)]
        self.predict_dataset = ImageFiles(find_images(self.predict_path),
                                          v2.Compose([*steps, *self.transform(train=False).transforms[1:]]))

    # -- loaders ----------------------------------------------------------------------------------------
    def _loader(self, dataset: Dataset | None, shuffle: bool, stage: str) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}: call setup({stage!r}) before asking for its dataloader")
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, pin_memory=torch.cuda.is_available(),
                          drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, True, "fit")

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is not None and len(self.val_dataset) == 0:
            return []
        return self._loader(self.val_dataset, False, "validate")

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, False, "test")

    def predict_dataloader(self) -> DataLoader:
        """`{"images", "paths"}` batches of `predict_path`'s images, or of the test split, in order."""
        return self._loader(self.predict_dataset, False, "predict")


class TorchvisionDataModule(ImageDataModule):
    """A torchvision dataset described by a table: its class, split kwargs and the files it reads.

    Args:
        root: the folder that holds the dataset's files.
        download: fetch the files into `root` (in `prepare_data`, rank 0 only) when they are missing.
        batch_size: images per batch (per device under DDP).
        num_workers: DataLoader worker processes; null: one per CPU core, at most 4.
        val_fraction: share of the training images held out for validation, in [0, 1).
        seed: seed of the train/validation split (the same seed gives the same split).
        augment: random crop with padding + horizontal flip on the training images.
        extra_channel: none (3 channels) | zeros ([0, R, G, B]) | grayscale ([gray, R, G, B]).
        predict_path: images for `phnn predict`: a file, a folder or a glob; null: the test split.
    """

    dataset_cls: ClassVar[type[Dataset]]
    split_kwargs: ClassVar[dict[str, dict[str, Any]]]
    #: Paths under `root` that must exist; checked with a clear message before torchvision reads.
    required_files: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        root: str | Path = "data",
        download: bool = False,
        batch_size: int = 128,
        num_workers: int | None = None,
        val_fraction: float = 0.1,
        seed: int = 0,
        augment: bool = True,
        extra_channel: ExtraChannel = "none",
        predict_path: str | None = None,
    ) -> None:
        super().__init__(root, batch_size, num_workers, val_fraction, seed, augment, extra_channel, predict_path)
        self.download = download

    def check_files(self) -> None:
        """Raise `DatasetNotFoundError` naming the folder, the missing files and the two ways to fix it."""
        missing = [path for path in self.required_files if not (self.root / path).exists()]
        if missing:
            raise DatasetNotFoundError(
                f"{type(self).__name__}: dataset files not found in {str(self.root)!r} (missing: "
                f"{', '.join(missing)}). Pass `--data.download true` to download them there, or place the original "
                f"{self.dataset_cls.__name__} files under that folder, or point `--data.root` at the folder that "
                f"holds them.")

    def prepare_data(self) -> None:
        if self.download:
            for kwargs in self.split_kwargs.values():
                self.dataset_cls(str(self.root), download=True, **kwargs)

    def load_split(self, split: Literal["train", "val", "test"]) -> Dataset | None:
        if split not in self.split_kwargs:
            return None
        self.check_files()
        return self.dataset_cls(str(self.root), download=False, **self.split_kwargs[split])


class CIFAR10DataModule(TorchvisionDataModule):
    """CIFAR-10 (`root/cifar-10-batches-py/`): 50 000 train / 10 000 test images, 32×32, 10 classes."""

    dataset_cls = datasets.CIFAR10
    split_kwargs = {"train": {"train": True}, "test": {"train": False}}
    required_files = ("cifar-10-batches-py/batches.meta", *(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)),
                      "cifar-10-batches-py/test_batch")
    classes_count = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)


class CIFAR100DataModule(TorchvisionDataModule):
    """CIFAR-100 (`root/cifar-100-python/`): 50 000 train / 10 000 test images, 32×32, 100 fine classes."""

    dataset_cls = datasets.CIFAR100
    split_kwargs = {"train": {"train": True}, "test": {"train": False}}
    required_files = ("cifar-100-python/meta", "cifar-100-python/train", "cifar-100-python/test")
    classes_count = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)


class SVHNDataModule(TorchvisionDataModule):
    """SVHN (`root/train_32x32.mat`, `root/test_32x32.mat`): digits 0–9, 32×32; no flip (digits are not symmetric)."""

    dataset_cls = datasets.SVHN
    split_kwargs = {"train": {"split": "train"}, "test": {"split": "test"}}
    required_files = ("train_32x32.mat", "test_32x32.mat")
    classes_count = 10
    mean = (0.4377, 0.4438, 0.4728)
    std = (0.1980, 0.2010, 0.1970)
    flip = False


class STL10DataModule(TorchvisionDataModule):
    """STL-10 (`root/stl10_binary/`): 5 000 labelled train / 8 000 test images, 96×96, 10 classes."""

    dataset_cls = datasets.STL10
    split_kwargs = {"train": {"split": "train"}, "test": {"split": "test"}}
    required_files = tuple(f"stl10_binary/{name}" for name in ("train_X.bin", "train_y.bin", "test_X.bin",
                                                               "test_y.bin"))
    classes_count = 10
    mean = (0.4467, 0.4398, 0.4066)
    std = (0.2603, 0.2566, 0.2713)
    image_size = 96


class _FolderWithClasses(datasets.ImageFolder):
    """An ImageFolder whose class → index map is the training folder's, so every split agrees on labels."""

    def __init__(self, root: Path, classes: list[str]) -> None:
        self._classes = classes
        super().__init__(str(root), loader=_rgb_loader, allow_empty=True)

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        present = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
        unknown = sorted(set(present) - set(self._classes))
        if unknown:
            raise ValueError(f"ImageFolderDataModule: {directory!r} has class folders {unknown} that the training "
                             f"folder does not have; expected a subset of {self._classes}")
        return self._classes, {name: index for index, name in enumerate(self._classes)}


def _rgb_loader(path: str) -> Image.Image:
    """The image at `path` as RGB; a file PIL cannot decode is a `DataFileError` that names it."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataFileError(f"ImageFolderDataModule: cannot read image {path} ({error}); "
                            "replace or remove the file") from error


class ImageFolderDataModule(ImageDataModule):
    """Your own images, one sub-folder per class. Two layouts:

        root/train/<class>/*.png  + root/val/<class>/… and/or root/test/<class>/…
        root/<class>/*.png        (no train/: everything is split by `val_fraction` / `test_fraction`)

    With val/, validation uses it; otherwise validation is carved from the training images by
    `val_fraction`. With test/, testing uses it; otherwise a seeded `test_fraction` of the training
    images is held out as the test split, apart from validation (the validation images chose the
    checkpoint, so their score would be optimistic). Class indices come from the sorted class
    folders of the training folder (`num_classes` is known at construction). Images are resized
    (shorter side) and centre-cropped to `image_size`; normalisation uses the ImageNet mean/std
    unless `mean` and `std` are given (nothing is computed from your data).

    Args:
        root: the folder with one sub-folder per class, or with train/ (+ val/, test/) folders.
        image_size: side of the square model input.
        batch_size: images per batch (per device under DDP).
        num_workers: DataLoader worker processes; null: one per CPU core, at most 4.
        val_fraction: share of the training images held out for validation when there is no val/ folder.
        test_fraction: share of the training images held out for testing when there is no test/ folder
            (0: `phnn test` refuses rather than score the validation images).
        seed: seed of the train/validation/test split (the same seed gives the same split).
        augment: random crop with padding + horizontal flip on the training images.
        extra_channel: none (3 channels) | zeros ([0, R, G, B]) | grayscale ([gray, R, G, B]).
        mean: per-channel RGB means, or null for ImageNet's.
        std: per-channel RGB standard deviations, or null for ImageNet's.
        predict_path: images for `phnn predict`: a file, a folder or a glob; null: the test split.
    """

    def __init__(
        self,
        root: str | Path = "data",
        image_size: int = 32,
        batch_size: int = 128,
        num_workers: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 0,
        augment: bool = True,
        extra_channel: ExtraChannel = "none",
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        predict_path: str | None = None,
    ) -> None:
        super().__init__(root, batch_size, num_workers, val_fraction, seed, augment, extra_channel, predict_path)
        if not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"ImageFolderDataModule: image_size must be a positive integer; got {image_size!r}")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"ImageFolderDataModule: test_fraction must be in [0, 1); got {test_fraction!r}")
        self.test_fraction = test_fraction
        for field, value in (("mean", mean), ("std", std)):
            if value is not None and len(value) != 3:
                raise ValueError(f"ImageFolderDataModule: {field} must have 3 values (R, G, B); got {value!r}")
        self.image_size = image_size
        self.mean = tuple(mean) if mean is not None else IMAGENET_MEAN
        self.std = tuple(std) if std is not None else IMAGENET_STD
        split_root = self.root / "train"
        self.has_splits = split_root.is_dir()
        self.train_root = split_root if self.has_splits else self.root
        self.classes = self._find_classes(self.train_root)
        self.class_names = list(self.classes)
        self.num_classes = len(self.classes)

    def held_out_test_fraction(self) -> float:
        return self.test_fraction

    @staticmethod
    def _find_classes(folder: Path) -> list[str]:
        if not folder.is_dir():
            raise ValueError(f"ImageFolderDataModule: root {str(folder)!r} is not a folder; expected class "
                             f"sub-folders (root/<class>/*.png) or root/train/<class>/*.png")
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        if not classes:
            raise ValueError(f"ImageFolderDataModule: {str(folder)!r} has no class sub-folders; expected "
                             f"<class>/*.png (one folder per class)")
        return classes

    def resize_transforms(self) -> list[v2.Transform]:
        return [v2.Resize(self.image_size, antialias=True), v2.CenterCrop(self.image_size)]

    def _held_out(self, name: str) -> Path | None:
        folder = self.root / name
        return folder if self.has_splits and folder.is_dir() else None

    def load_split(self, split: Literal["train", "val", "test"]) -> Dataset | None:
        if split == "train":
            return _FolderWithClasses(self.train_root, self.classes)
        folder = self._held_out(split)
        return _FolderWithClasses(folder, self.classes) if folder is not None else None
