"""DCASE segment- and event-based metrics on event lists against sed_eval (the reference implementation),
on random event lists with millisecond times, and the corner cases where the two differ on purpose."""

from __future__ import annotations

import math
import random

import pytest

from phnn.data.l3das21.layout import CLASSES
from phnn.metrics.events import DCASECounts, dcase_scores, event_counts, segment_counts

sed_eval = pytest.importorskip("sed_eval")


def random_events(rng: random.Random, classes: int) -> list[tuple[float, float, int]]:
    events = []
    for _ in range(rng.randint(0, 8)):
        onset = rng.randint(0, 20000) / 1000
        events.append((onset, onset + rng.randint(0, 4000) / 1000, rng.randrange(classes)))
    return events


def jittered(rng: random.Random, events: list[tuple[float, float, int]],
             classes: int) -> list[tuple[float, float, int]]:
    """Estimates near the references (some with another class), plus a few random ones."""
    out = []
    for onset, offset, cls in events:
        if rng.random() < 0.8:
            new_onset = max(0.0, onset + rng.randint(-400, 400) / 1000)
            out.append((new_onset, max(new_onset, offset + rng.randint(-800, 800) / 1000),
                        cls if rng.random() < 0.8 else rng.randrange(classes)))
    return out + random_events(rng, classes)[: rng.randint(0, 2)]


def as_dicts(events: list[tuple[float, float, int]]) -> list[dict]:
    return [{"filename": "clip.wav", "event_onset": on, "event_offset": off, "event_label": CLASSES[c]}
            for on, off, c in events]


def close(ours: float, theirs: float) -> bool:
    return math.isclose(ours, theirs, rel_tol=0, abs_tol=1e-6)


def test_segment_and_event_metrics_equal_sed_eval_on_random_lists() -> None:
    rng = random.Random(0)
    classes = 4  # few classes: many same-class overlaps and substitutions
    for _group in range(60):  # 60 runs × 5 clips = 300 pairs of event lists
        segment_ref = sed_eval.sound_event.SegmentBasedMetrics(list(CLASSES), time_resolution=1.0)
        event_ref = sed_eval.sound_event.EventBasedMetrics(list(CLASSES), t_collar=0.2, percentage_of_length=0.5)
        segments, events = DCASECounts(14), DCASECounts(14)
        for _clip in range(5):
            reference = random_events(rng, classes)
            estimated = jittered(rng, reference, classes)
            segment_ref.evaluate(as_dicts(reference), as_dicts(estimated))
            event_ref.evaluate(as_dicts(reference), as_dicts(estimated))
            segments += segment_counts(reference, estimated, 14)
            events += event_counts(reference, estimated, 14)
        for ours, theirs in ((segments, segment_ref), (events, event_ref)):
            scores = dcase_scores(ours, CLASSES)
            overall = scores["overall"]
            if theirs.overall["Nref"] > 0:
                assert close(overall["error_rate"], theirs.overall_error_rate()["error_rate"])
                assert close(overall["substitution_rate"], theirs.overall_error_rate()["substitution_rate"])
                if theirs.overall["Nsys"] > 0 and theirs.overall["Ntp"] > 0:
                    assert close(overall["f1"], theirs.overall_f_measure()["f_measure"])
            for name in CLASSES[:classes]:
                count = theirs.class_wise_count(name)
                if count["Nref"] > 0:
                    assert close(scores["per_class"][name]["error_rate"],
                                 theirs.class_wise_error_rate(name)["error_rate"])
                if count["Nref"] > 0 and count["Nsys"] > 0:
                    expected = theirs.class_wise_f_measure(name)["f_measure"]
                    assert close(scores["per_class"][name]["f1"], expected)


def test_corner_cases_are_numbers_where_sed_eval_gives_nan_or_huge_values() -> None:
    # no reference events, two insertions: sed_eval ER = 2 / (0 + eps) ≈ 9e15; phnn ER = 2 / max(0, 1) = 2
    metric = sed_eval.sound_event.SegmentBasedMetrics(list(CLASSES), time_resolution=1.0)
    metric.evaluate([], as_dicts([(0.0, 0.5, 0), (0.2, 0.4, 1)]))
    assert metric.overall_error_rate()["error_rate"] > 1e15
    assert math.isnan(metric.overall_f_measure()["recall"]) and math.isnan(metric.overall_f_measure()["f_measure"])
    scores = dcase_scores(segment_counts([], [(0.0, 0.5, 0), (0.2, 0.4, 1)], 14))["overall"]
    assert scores["error_rate"] == 2.0 and scores["recall"] == 0.0 and scores["f1"] == 0.0
    # a silent system: sed_eval's precision (so F) is NaN; phnn's are 0
    metric = sed_eval.sound_event.EventBasedMetrics(list(CLASSES))
    metric.evaluate(as_dicts([(1.0, 2.0, 3)]), [])
    assert math.isnan(metric.overall_f_measure()["f_measure"])
    scores = dcase_scores(event_counts([(1.0, 2.0, 3)], [], 14))["overall"]
    assert (scores["f1"], scores["precision"], scores["error_rate"]) == (0.0, 0.0, 1.0)


def test_event_collars_hand_worked() -> None:
    reference = [(1.0, 3.0, 0)]  # 2 s long: offset collar max(0.2, 50 % · 2 s) = 1 s
    assert event_counts(reference, [(1.2, 3.9, 0)], 14).tp[0] == 1
    assert event_counts(reference, [(1.201, 3.0, 0)], 14).tp[0] == 0  # onset 201 ms late
    assert event_counts(reference, [(1.0, 4.1, 0)], 14).tp[0] == 0  # offset 1.1 s late
    wrong_class = event_counts(reference, [(1.0, 3.0, 5)], 14)
    assert (wrong_class.substitutions, wrong_class.deletions, wrong_class.insertions) == (1, 0, 0)
