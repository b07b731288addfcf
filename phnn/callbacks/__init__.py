"""Lightning callbacks: prediction writers, timing, and the last checkpoint."""

from phnn.callbacks.last_checkpoint import LastCheckpoint
from phnn.callbacks.sed_writer import SEDPredictionWriter
from phnn.callbacks.timing import Timing

__all__ = ["LastCheckpoint", "SEDPredictionWriter", "Timing"]
