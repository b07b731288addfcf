"""Lightning callbacks: prediction writers, timing, the last checkpoint, and the data warnings count."""

from phnn.callbacks.data_warnings import DataWarnings
from phnn.callbacks.image_writer import ImagePredictionWriter
from phnn.callbacks.last_checkpoint import LastCheckpoint
from phnn.callbacks.sed_writer import SEDPredictionWriter
from phnn.callbacks.timing import Timing

__all__ = ["DataWarnings", "ImagePredictionWriter", "LastCheckpoint", "SEDPredictionWriter", "Timing"]
