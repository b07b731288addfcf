"""The frame-matching core in both countings: hand-worked examples and an independent literal reading
of the official `location_sensitive_detection` (l3das/L3DAS21 metrics.py) on random frame rows."""

from __future__ import annotations

import math
import random
import sys

import numpy as np
import pytest
import torch

from phnn.data.l3das21.formats import FrameRow, rows_to_slots
from phnn.metrics import L3DAS21FrameScore
from phnn.metrics.frames import match_frames, official_prf


def official_reference(pred: list[list[float]], true: list[list[float]], n_frames: int,
                       threshold: float) -> tuple[int, int, int]:
    """TP, FP, FN as the official code counts them, written from its description: rows are
    [frame, class] or [frame, class, x, y, z]; the location is the last three values of a row."""
    tp = fp = fn = 0
    for frame in range(n_frames):
        t = [row for row in true if row[0] == frame]
        p = [row for row in pred if row[0] == frame]
        matched = 0
        if not t:
            fp += len(p)
        elif not p:
            fn += len(t)
        else:
            for true_row in t:
                if any(true_row[1] == pred_row[1]
                       and np.linalg.norm(np.subtract(true_row[-3:], pred_row[-3:])) < threshold for pred_row in p):
                    matched += 1
        tp += matched
        fn += len(t) - matched
        fp += len(p) - matched
    return tp, fp, fn


def as_lists(rows: list[FrameRow]) -> list[list[float]]:
    return [[row.frame, row.class_index, *(row.xyz or ())] for row in rows]


def counts(pred: list[FrameRow], true: list[FrameRow], frames: int, counting: str,
           threshold: float = 2.0) -> tuple[int, int, int]:
    p, p_xyz = rows_to_slots(pred, frames, 4)
    t, t_xyz = rows_to_slots(true, frames, 4, min_slots=p.shape[-1])
    if p.shape != t.shape:
        p, p_xyz = rows_to_slots(pred, frames, 4, min_slots=t.shape[-1])
    xyz = [None if x is None else torch.from_numpy(x)[None] for x in (p_xyz, t_xyz)]
    match = match_frames(torch.from_numpy(p)[None], torch.from_numpy(t)[None], counting, xyz[0], xyz[1], threshold)
    return int(match.tp.sum()), int(match.fp.sum()), int(match.fn.sum())


def test_official_double_counting_hand_worked() -> None:
    # frame 0: truths [c, c], one prediction c → both truths matched: TP 2, FN 0, FP 1 − 2 = −1
    # frame 1: two predictions, no truth → FP 2 + 2 (the separate branch adds them once more)
    # frame 2: one truth, no prediction → FN 1 + 1
    true = [FrameRow(0, 3), FrameRow(0, 3), FrameRow(2, 1)]
    pred = [FrameRow(0, 3), FrameRow(1, 0), FrameRow(1, 2)]
    assert counts(pred, true, 3, "official") == (2, -1 + 4, 2)
    assert counts(pred, true, 3, "one_to_one") == (1, 2, 2)


def test_official_prf_uses_the_epsilon_denominators() -> None:
    precision, recall, f_score = official_prf(2, 3, 2)
    eps = sys.float_info.epsilon
    assert precision == 2 / (5 + eps) and recall == 2 / (4 + eps)
    assert f_score == 2 * precision * recall / (precision + recall + eps)
    assert official_prf(0, 0, 0) == (0.0, 0.0, 0.0)


def random_rows(rng: random.Random, frames: int, located: bool) -> tuple[list[FrameRow], list[FrameRow]]:
    true, pred = [], []
    for frame in range(frames):
        for _ in range(rng.randint(0, 3)):
            xyz = (rng.uniform(-2, 2), rng.uniform(-1.5, 1.5), rng.uniform(-1, 1)) if located else None
            true.append(FrameRow(frame, rng.randrange(4), xyz))
            if rng.random() < 0.6:  # a nearby detection of the same class
                near = None if xyz is None else tuple(v + rng.gauss(0, 1.2) for v in xyz)
                pred.append(FrameRow(frame, true[-1].class_index, near))
        for _ in range(rng.randint(0, 1)):
            xyz = (rng.uniform(-2, 2), rng.uniform(-1.5, 1.5), rng.uniform(-1, 1)) if located else None
            pred.append(FrameRow(frame, rng.randrange(4), xyz))
    return true, pred


@pytest.mark.parametrize("located", [False, True])
def test_official_counting_equals_the_literal_reading(located: bool) -> None:
    rng = random.Random(located)
    for _ in range(40):
        true, pred = random_rows(rng, 12, located)
        expected = official_reference(as_lists(pred), as_lists(true), 12, 2.0)
        assert counts(pred, true, 12, "official") == expected


def test_one_to_one_never_credits_a_prediction_twice() -> None:
    rng = random.Random(3)
    for _ in range(40):
        true, pred = random_rows(rng, 12, located=True)
        tp, fp, fn = counts(pred, true, 12, "one_to_one")
        assert fp >= 0 and fn >= 0 and tp <= min(len(true), len(pred))
        assert tp + fp == len(pred) and tp + fn == len(true)


def test_pairs_for_localisation_errors() -> None:
    # class 1: truths at x = 0 and x = 1.5; predictions at x = 1.0 and x = −1.0
    t = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    p = torch.zeros_like(t)
    t[0, 0, 1] = p[0, 0, 1] = True
    t_xyz = torch.zeros(1, 1, 2, 2, 3)
    p_xyz = torch.zeros(1, 1, 2, 2, 3)
    t_xyz[0, 0, 1, 1, 0] = 1.5
    p_xyz[0, 0, 1, 0, 0], p_xyz[0, 0, 1, 1, 0] = 1.0, -1.0
    one = match_frames(p, t, "one_to_one", p_xyz, t_xyz)
    assert one.tp.sum() == 2
    # the maximum matching pairs prediction 0 with truth 1 and prediction 1 with truth 0
    assert one.pairs[0, 0, 1].tolist() == [[False, True], [True, False]]
    official = match_frames(p, t, "official", p_xyz, t_xyz)
    # each matched truth with its nearest admissible prediction: truth 0 → pred 0 (1.0 m), truth 1 → pred 0
    assert official.pairs[0, 0, 1].tolist() == [[True, True], [False, False]]
    errors = (p_xyz.unsqueeze(-2) - t_xyz.unsqueeze(-3)).norm(dim=-1)[official.pairs]
    assert errors.tolist() == pytest.approx([1.0, 0.5])


def test_metric_logs_per_class_and_both_countings() -> None:
    target = torch.zeros(1, 2, 14, 3)
    preds = torch.zeros(1, 2, 14, 3)
    target[0, 0, 5, :2] = 1  # two truths of class 5 in frame 0
    preds[0, 0, 5, 0] = 1    # one prediction
    preds[0, 1, 7, 0] = 1    # a prediction alone in frame 1
    official, one = L3DAS21FrameScore(14, counting="official"), L3DAS21FrameScore(14, counting="one_to_one")
    for metric in (official, one):
        metric.update(preds, target)
    assert (official.tp.sum(), official.fp.sum(), official.fn.sum()) == (2, -1 + 2, 0)
    assert official.per_class()[5]["recall"] == pytest.approx(1.0)
    p, r, f = official_prf(2, 1, 0)
    assert official.compute()["f_score"].item() == pytest.approx(f)
    assert one.compute()["f_score"].item() == pytest.approx(2 * 0.5 * 0.5 / 1.0)
    assert math.isclose(one.per_class()[7]["precision"], 0.0)
