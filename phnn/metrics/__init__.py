"""Metrics for sound event detection (L3DAS21 frame F-score in two countings, DCASE segment error rate and F1)."""

from phnn.metrics.frames import FrameMatch, match_frames, official_prf, one_to_one_prf
from phnn.metrics.sed import DCASESegmentScore, L3DAS21FrameScore, to_slots

__all__ = ["DCASESegmentScore", "FrameMatch", "L3DAS21FrameScore", "match_frames", "official_prf", "one_to_one_prf",
           "to_slots"]
