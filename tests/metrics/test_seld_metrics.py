"""SELD metrics against hand-made frames: location-sensitive F (both countings), localisation error, DCASE joint."""

from __future__ import annotations

import math

import pytest
import torch

from phnn.metrics.seld import DCASEJointScore, LocalisationError, SELDScores, angle_degrees

C, S = 14, 3


def frames(t: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Empty (1, t, C, S) detections/targets and (1, t, C, S, 3) positions."""
    return (torch.zeros(1, t, C, S, dtype=torch.bool), torch.zeros(1, t, C, S, dtype=torch.bool),
            torch.zeros(1, t, C, S, 3), torch.zeros(1, t, C, S, 3))


def put(active: torch.Tensor, xyz: torch.Tensor, frame: int, cls: int, slot: int,
        where: tuple[float, float, float]) -> None:
    active[0, frame, cls, slot] = True
    xyz[0, frame, cls, slot] = torch.tensor(where)


def scores(p, t, pxyz, txyz) -> dict[str, float]:
    metric = SELDScores(C, spatial_threshold=2.0)
    metric.update(p, t, pxyz, txyz)
    return {k: float(v) for k, v in metric.compute().items()}


def test_inside_the_threshold_counts_outside_does_not() -> None:
    p, t, pxyz, txyz = frames(2)
    put(t, txyz, 0, 3, 0, (1.0, 0.0, 0.0))
    put(p, pxyz, 0, 3, 0, (1.0, 1.9, 0.0))  # 1.9 m away: a localised detection
    put(t, txyz, 1, 3, 0, (1.0, 0.0, 0.0))
    put(p, pxyz, 1, 3, 0, (1.0, 2.1, 0.0))  # 2.1 m away: a false positive and a miss
    out = scores(p, t, pxyz, txyz)
    assert out["seld_precision"] == out["seld_recall"] == out["seld_f_score"] == 0.5
    assert out["seld_f_score_l3das21"] == pytest.approx(0.5)
    # the localisation error is over every class match, at any distance
    assert out["doa_error_m"] == pytest.approx(2.0)
    expected_angle = (math.degrees(math.atan(1.9)) + math.degrees(math.atan(2.1))) / 2
    assert out["doa_error_deg"] == pytest.approx(expected_angle, rel=1e-5)


def test_wrong_class_never_matches_however_close() -> None:
    p, t, pxyz, txyz = frames()
    put(t, txyz, 0, 3, 0, (1.0, 0.0, 0.0))
    put(p, pxyz, 0, 4, 0, (1.0, 0.0, 0.0))
    out = scores(p, t, pxyz, txyz)
    assert out["seld_f_score"] == 0.0 and out["seld_f_score_l3das21"] == 0.0
    assert math.isnan(out["doa_error_m"]) and math.isnan(out["doa_error_deg"])


def test_same_class_overlap_one_to_one_and_official() -> None:
    """Truths [c at A, c at B], one prediction c within 2 m of both: one-to-one TP 1 FN 1; official TP 2, FP −1."""
    p, t, pxyz, txyz = frames()
    put(t, txyz, 0, 5, 0, (1.0, 0.0, 0.0))
    put(t, txyz, 0, 5, 1, (1.0, 1.0, 0.0))
    put(p, pxyz, 0, 5, 0, (1.0, 0.5, 0.0))
    out = scores(p, t, pxyz, txyz)
    assert (out["seld_precision"], out["seld_recall"]) == (1.0, 0.5)
    assert out["seld_f_score"] == pytest.approx(2 / 3)
    # official: TP 2, FP 1 - 2 = -1, FN 0 → P = 2 / (1 + eps) ≈ 2, R ≈ 1
    assert out["seld_precision_l3das21"] == pytest.approx(2.0) and out["seld_recall_l3das21"] == pytest.approx(1.0)
    # the one matched pair is 0.5 m off, whichever truth the matching chose
    assert out["doa_error_m"] == pytest.approx(0.5)


def test_same_class_overlap_only_one_truth_in_reach() -> None:
    p, t, pxyz, txyz = frames()
    put(t, txyz, 0, 5, 0, (1.0, 0.0, 0.0))
    put(t, txyz, 0, 5, 1, (-2.0, 0.0, 0.0))  # 3.2 m from the prediction
    put(p, pxyz, 0, 5, 0, (1.2, 0.0, 0.0))
    out = scores(p, t, pxyz, txyz)
    assert (out["seld_precision"], out["seld_recall"]) == (1.0, 0.5)
    assert out["seld_precision_l3das21"] == pytest.approx(1.0) and out["seld_recall_l3das21"] == pytest.approx(0.5)


def test_angle_and_distance_of_a_pair() -> None:
    metric = LocalisationError(C)
    p, t, pxyz, txyz = frames()
    put(t, txyz, 0, 0, 0, (1.0, 0.0, 0.0))
    put(p, pxyz, 0, 0, 0, (0.0, 1.0, 0.0))
    metric.update(p, t, pxyz, txyz)
    out = metric.compute()
    assert float(out["error_m"]) == pytest.approx(math.sqrt(2)) and float(out["error_deg"]) == pytest.approx(90.0)
    assert float(angle_degrees(torch.tensor([1.0, 0, 0]), torch.tensor([-2.0, 0, 0]))) == pytest.approx(180.0)


def test_dcase_joint_metrics_by_hand() -> None:
    """Two 1 s segments. Segment 0: class 1 localised 10° off (TP), class 2 60° off (FP, localised),
    class 7 only in the reference (FN). Segment 1: class 9 only predicted (FP)."""
    p, t, pxyz, txyz = frames(20)
    for frame in range(3, 6):
        put(t, txyz, frame, 1, 0, (1.0, 0.0, 0.0))
        put(p, pxyz, frame, 1, 0, (math.cos(math.radians(10)), math.sin(math.radians(10)), 0.0))
        put(t, txyz, frame, 2, 0, (0.0, 1.0, 0.0))
        put(p, pxyz, frame, 2, 0, (math.sin(math.radians(60)), math.cos(math.radians(60)), 0.0))
    put(t, txyz, 8, 7, 0, (0.0, 0.0, 1.0))
    put(p, pxyz, 15, 9, 0, (0.0, 0.0, 1.0))
    metric = DCASEJointScore(C)
    metric.update(p, t, pxyz, txyz)
    out = {k: float(v) for k, v in metric.compute().items()}
    # segment 0: FN 1, FP 1 → S 1; segment 1: FP 1 → I 1; N_ref = 3
    assert out["error_rate"] == pytest.approx(2 / 3)
    assert out["f_score"] == pytest.approx(1 / (1 + (2 + 1) / 2))
    assert out["localisation_error"] == pytest.approx(35.0, rel=1e-5)  # (10 + 60) / 2
    assert out["localisation_recall"] == pytest.approx(2 / 3)


def test_dcase_more_predictions_than_references() -> None:
    p, t, pxyz, txyz = frames(10)
    put(t, txyz, 0, 1, 0, (1.0, 0.0, 0.0))
    put(p, pxyz, 0, 1, 0, (1.0, 0.0, 0.0))
    put(p, pxyz, 0, 1, 1, (0.0, 1.0, 0.0))
    metric = DCASEJointScore(C)
    metric.update(p, t, pxyz, txyz)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["error_rate"] == pytest.approx(1.0)  # one insertion over one reference
    assert out["localisation_error"] == pytest.approx(0.0) and out["localisation_recall"] == 1.0


def test_empty_input_corner_cases() -> None:
    p, t, pxyz, txyz = frames(10)
    out = scores(p, t, pxyz, txyz)
    assert out["dcase_error_rate_20"] == 0.0 and out["dcase_f_score_20"] == 0.0
    assert out["dcase_localisation_error"] == 180.0 and out["dcase_localisation_recall"] == 0.0


def test_bad_positions_are_named() -> None:
    p, t, pxyz, _ = frames()
    with pytest.raises(ValueError, match="target_xyz"):
        LocalisationError(C).update(p, t, pxyz, torch.zeros(1, 1, 42, 2))


def test_flat_layout_equals_slot_layout() -> None:
    """(B, T, 42) / (B, T, 42, 3) inputs are the same as (B, T, 14, 3) / (B, T, 14, 3, 3)."""
    torch.manual_seed(0)
    t, p = torch.rand(2, 20, C, S) > 0.8, torch.rand(2, 20, C, S) > 0.8
    txyz, pxyz = torch.randn(2, 20, C, S, 3), torch.randn(2, 20, C, S, 3)
    assert scores(p, t, pxyz, txyz) == scores(p.flatten(2), t.flatten(2), pxyz.flatten(2, 3), txyz.flatten(2, 3))
