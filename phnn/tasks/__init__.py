"""LightningModules of phnn; importing this package makes them known to the CLI by short name."""

from phnn.tasks.base import SGD, CosineAnnealingLR, PHTask
from phnn.tasks.doa import DOAHead
from phnn.tasks.image import ImageClassifier
from phnn.tasks.sed import SoundEventDetector

__all__ = ["SGD", "CosineAnnealingLR", "DOAHead", "ImageClassifier", "PHTask", "SoundEventDetector"]
