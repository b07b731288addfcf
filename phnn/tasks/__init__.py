"""LightningModules of phnn; importing this package makes them known to the CLI by short name and to
checkpoints by name (`phnn.tasks.registry`)."""

from phnn.tasks.base import SGD, CosineAnnealingLR, PHTask
from phnn.tasks.doa import DOAHead
from phnn.tasks.image import ImageClassifier
from phnn.tasks.registry import register_class, register_task
from phnn.tasks.sed import SoundEventDetector

register_class(SGD, "phnn.tasks")
register_class(CosineAnnealingLR, "phnn.tasks")
register_task(ImageClassifier)
register_task(SoundEventDetector)

__all__ = ["SGD", "CosineAnnealingLR", "DOAHead", "ImageClassifier", "PHTask", "SoundEventDetector"]
