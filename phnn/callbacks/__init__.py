"""Lightning callbacks: prediction writers and timing."""

from phnn.callbacks.sed_writer import SEDPredictionWriter
from phnn.callbacks.timing import Timing

__all__ = ["SEDPredictionWriter", "Timing"]
