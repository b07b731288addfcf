"""Lightning callbacks: prediction writers and timing."""

from phnn.callbacks.sed_writer import SEDPredictionWriter

__all__ = ["SEDPredictionWriter"]
