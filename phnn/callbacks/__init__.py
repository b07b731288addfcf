"""Lightning callbacks: prediction writers and timing."""

from phnn.callbacks.image_writer import ImagePredictionWriter
from phnn.callbacks.sed_writer import SEDPredictionWriter
from phnn.callbacks.timing import Timing

__all__ = ["ImagePredictionWriter", "SEDPredictionWriter", "Timing"]
