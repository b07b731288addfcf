"""LightningDataModules: each sets `num_classes` and `in_channels` in `__init__` for the CLI to link."""

from phnn.data.image import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DatasetNotFoundError,
    ImageDataModule,
    ImageFolderDataModule,
    STL10DataModule,
    SVHNDataModule,
)
from phnn.data.l3das21 import L3DAS21DataModule

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DatasetNotFoundError",
    "ImageDataModule",
    "ImageFolderDataModule",
    "L3DAS21DataModule",
    "STL10DataModule",
    "SVHNDataModule",
]
