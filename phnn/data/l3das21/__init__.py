"""L3DAS21 Task 2 data: layout, labels, STFT features and cache, synthetic scenes, DataModule."""

from phnn.data.l3das21.datamodule import L3DAS21DataModule, find_predict_groups, predict_collate
from phnn.data.l3das21.features import FeatureCache, FeatureSettings, Normalizer, load_clip, stft_features
from phnn.data.l3das21.labels import events_to_targets, load_targets, num_label_frames, read_events
from phnn.data.l3das21.layout import CLASSES, NUM_CLASSES, Clip, find_clips
from phnn.data.l3das21.synth import synthesize

__all__ = [
    "CLASSES",
    "NUM_CLASSES",
    "Clip",
    "FeatureCache",
    "FeatureSettings",
    "L3DAS21DataModule",
    "Normalizer",
    "events_to_targets",
    "find_clips",
    "find_predict_groups",
    "load_clip",
    "load_targets",
    "num_label_frames",
    "predict_collate",
    "read_events",
    "stft_features",
    "synthesize",
]
