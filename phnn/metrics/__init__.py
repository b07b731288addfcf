"""Metrics for sound event detection (L3DAS21 frame F-score in two countings, DCASE segment error rate and F1)."""

from phnn.metrics.events import DCASECounts, dcase_scores, event_counts, segment_counts
from phnn.metrics.frames import FrameMatch, match_frames, official_prf, one_to_one_prf
from phnn.metrics.sed import DCASEScore, L3DAS21FrameScore, to_slots

__all__ = ["DCASECounts", "DCASEScore", "FrameMatch", "L3DAS21FrameScore", "dcase_scores", "event_counts",
           "match_frames",           "official_prf", "one_to_one_prf", "segment_counts", "to_slots"]
