"""Metrics for sound event detection (L3DAS21 frame F-score, DCASE segment error rate and F1)."""

from phnn.metrics.sed import DCASESegmentScore, L3DAS21FrameScore, to_slots

__all__ = ["DCASESegmentScore", "L3DAS21FrameScore", "to_slots"]
