"""SED metrics against hand-computed TP/FP/FN and S/D/I."""

from __future__ import annotations

import pytest
import torch

from phnn.metrics import DCASEScore, L3DAS21FrameScore


def slots(frames: int, events: list[tuple[int, int, int]], batch: int = 1) -> torch.Tensor:
    """(batch, frames, 14, 3) zeros with ones at (frame, class, slot) in item 0."""
    x = torch.zeros(batch, frames, 14, 3)
    for frame, cls, slot in events:
        x[0, frame, cls, slot] = 1
    return x


def test_frame_score_counts_per_class_slots() -> None:
    # frame 0: class 2 true ×2, pred ×1 → TP 1, FN 1; class 5 pred only → FP 1
    # frame 1: class 2 true ×1, pred ×3 → TP 1, FP 2
    target = slots(2, [(0, 2, 0), (0, 2, 1), (1, 2, 0)])
    preds = slots(2, [(0, 2, 0), (0, 5, 0), (1, 2, 0), (1, 2, 1), (1, 2, 2)])
    metric = L3DAS21FrameScore(14)
    metric.update(preds.flatten(2), target.flatten(2))  # the (B, T, 42) layout
    assert (metric.tp.sum().item(), metric.fp.sum().item(), metric.fn.sum().item()) == (2, 3, 1)
    out = metric.compute()
    p, r = 2 / 5, 2 / 3
    assert out["precision"].item() == pytest.approx(p)
    assert out["recall"].item() == pytest.approx(r)
    assert out["f_score"].item() == pytest.approx(2 * p * r / (p + r))


def test_frame_score_when_precision_plus_recall_is_below_one() -> None:
    # 3 TP, 7 FP, 7 FN over 10 frames of class 0: P = R = 0.3, so F = 0.3 (not 2PR / max(P + R, 1) = 0.18)
    target = slots(10, [(f, 0, 0) for f in range(10)])
    preds = slots(10, [(f, 0, 0) for f in range(3)] + [(f, 1, 0) for f in range(3, 10)])
    metric = L3DAS21FrameScore(14)
    metric.update(preds, target)
    assert (metric.tp.sum().item(), metric.fp.sum().item(), metric.fn.sum().item()) == (3, 7, 7)
    out = metric.compute()
    assert out["precision"].item() == pytest.approx(0.3)
    assert out["recall"].item() == pytest.approx(0.3)
    assert out["f_score"].item() == pytest.approx(0.3)


def test_frame_score_slot_position_does_not_matter_and_accumulates() -> None:
    metric = L3DAS21FrameScore(14)
    metric.update(slots(1, [(0, 0, 2)]), slots(1, [(0, 0, 0)]))
    metric.update(slots(1, [(0, 1, 0)]), slots(1, [(0, 3, 0)]))
    assert (metric.tp.sum().item(), metric.fp.sum().item(), metric.fn.sum().item()) == (1, 1, 1)
    assert metric.compute()["f_score"].item() == pytest.approx(0.5)


def test_frame_score_with_locations_needs_distance_below_threshold() -> None:
    target = slots(1, [(0, 4, 0), (0, 4, 1)])
    preds = slots(1, [(0, 4, 0), (0, 4, 1)])
    t_loc = torch.zeros(1, 1, 14, 3, 3)
    p_loc = torch.zeros(1, 1, 14, 3, 3)
    t_loc[0, 0, 4, 0] = torch.tensor([0.0, 0.0, 0.0])
    t_loc[0, 0, 4, 1] = torch.tensor([5.0, 0.0, 0.0])
    # pred slot 0 near true slot 1, pred slot 1 far from both true events
    p_loc[0, 0, 4, 0] = torch.tensor([4.0, 0.0, 0.0])
    p_loc[0, 0, 4, 1] = torch.tensor([10.0, 0.0, 0.0])
    metric = L3DAS21FrameScore(14, spatial_threshold=2.0)
    metric.update(preds, target, p_loc, t_loc)
    assert (metric.tp.sum().item(), metric.fp.sum().item(), metric.fn.sum().item()) == (1, 1, 1)


def test_location_matching_is_a_maximum_matching() -> None:
    # pred 0 is close to both true events, pred 1 only to true 0: the best assignment matches both
    target = slots(1, [(0, 1, 0), (0, 1, 1)])
    preds = slots(1, [(0, 1, 0), (0, 1, 1)])
    t_loc = torch.zeros(1, 1, 14, 3, 3)
    p_loc = torch.zeros(1, 1, 14, 3, 3)
    t_loc[0, 0, 1, 1] = torch.tensor([1.5, 0.0, 0.0])
    p_loc[0, 0, 1, 0] = torch.tensor([1.0, 0.0, 0.0])
    p_loc[0, 0, 1, 1] = torch.tensor([-1.0, 0.0, 0.0])
    metric = L3DAS21FrameScore(14)
    metric.update(preds, target, p_loc, t_loc)
    assert metric.tp.sum().item() == 2


def test_frame_score_without_events_is_zero_not_nan() -> None:
    metric = L3DAS21FrameScore(14)
    metric.update(slots(3, []), slots(3, []))
    out = metric.compute()
    assert [out[k].item() for k in ("precision", "recall", "f_score")] == [0.0, 0.0, 0.0]


def test_perfect_prediction() -> None:
    target = (torch.rand(2, 30, 42) > 0.8).float()
    frame, segment = L3DAS21FrameScore(14), DCASEScore(14, kind="segment")
    frame.update(target, target)
    events = [(0.0, 1.5, 2), (2.25, 3.0, 5)]
    segment.update(events, events)
    assert frame.compute()["f_score"].item() == pytest.approx(1.0)
    assert segment.compute()["error_rate"].item() == 0.0
    assert segment.compute()["f1"].item() == pytest.approx(1.0)


@pytest.mark.parametrize("shape", [(1, 5, 40), (1, 5, 13, 3), (5, 42)])
def test_bad_shapes_are_named(shape: tuple[int, ...]) -> None:
    x = torch.zeros(shape)
    with pytest.raises(ValueError) as info:
        L3DAS21FrameScore(14).update(x, x)
    assert "preds" in str(info.value) and str(tuple(shape)) in str(info.value)


def test_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        L3DAS21FrameScore(14).update(torch.zeros(1, 5, 42), torch.zeros(1, 6, 42))
