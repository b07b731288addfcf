"""Frame matching of the L3DAS21 Task 2 metric, in its two countings (one core, used everywhere).

Input: per 100 ms frame and class, up to S *slots* (simultaneous sounds of that class), as boolean
activity ``(B, T, C, S)`` — the layout of phnn's targets — and, for location-sensitive matching,
coordinates in metres ``(B, T, C, S, 3)``. A true and a predicted event *can match* when they share
frame and class and, with coordinates, lie closer than ``spatial_threshold`` (strictly, as the
official code).

``counting="one_to_one"`` (phnn's ``f_score``): each prediction matches at most one true event; per
cell (frame, class) TP is the size of a maximum matching, FP = #pred − TP, FN = #true − TP.

``counting="official"`` (``f_score_l3das21``): a literal reading of ``location_sensitive_detection``
in the official ``metrics.py``. Per frame, a true event is *matched* when any prediction can match it
(predictions are not used up); TP += matched, FN += #true − matched, FP += #pred − matched; and a
frame with predictions but no truths adds its #pred to FP once more, a frame with truths but no
predictions adds #true to FN once more (the official code's separate branches). So truths
``[c, c]`` with one prediction ``c`` give TP 2, FP −1 in that frame, and an empty-truth frame
with 2 predictions gives FP 4. The official P, R, F divide by ``count + eps`` (`official_prf`).

`match_frames` returns per-cell counts and the matched pairs, so a DOA metric can measure
localisation errors over matched detections (`FrameMatch.pairs`).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Counting = Literal["official", "one_to_one"]
COUNTINGS: tuple[str, ...] = ("official", "one_to_one")
OFFICIAL_EPS = sys.float_info.epsilon  # the official metrics.py divides by count + this


@dataclass
class FrameMatch:
    """Counts per cell ``(B, T, C)`` (long) and the matched pairs ``(B, T, C, S_pred, S_true)`` (bool).

    In the official counting a prediction may be paired with several true events (each matched true
    event is paired with its nearest admissible prediction, the first one without coordinates); in
    the one-to-one counting the pairs form a maximum matching. The official double counting of
    prediction-only / truth-only frames is included in ``fp`` / ``fn`` of the cells concerned.
    """

    tp: Tensor
    fp: Tensor
    fn: Tensor
    pairs: Tensor


def _admissible(preds: Tensor, target: Tensor, pred_xyz: Tensor | None, target_xyz: Tensor | None,
                spatial_threshold: float) -> tuple[Tensor, Tensor | None]:
    """(B, T, C, S, S) pairs that may match, and their distances (None without coordinates)."""
    valid = preds.unsqueeze(-1) & target.unsqueeze(-2)
    if pred_xyz is None or target_xyz is None:
        return valid, None
    distance = (pred_xyz.double().unsqueeze(-2) - target_xyz.double().unsqueeze(-3)).norm(dim=-1)
    return valid & (distance < spatial_threshold), distance


def _maximum_matching(valid: Tensor) -> Tensor:
    """Pairs of a maximum matching per cell, every assignment of the (few) slots enumerated."""
    slots = valid.shape[-1]
    index = torch.arange(slots, device=valid.device)
    best = torch.zeros(valid.shape[:-2], dtype=torch.long, device=valid.device)
    pairs = torch.zeros_like(valid)
    for perm in itertools.permutations(range(slots)):
        chosen = torch.zeros_like(valid)
        chosen[..., index, torch.tensor(perm, device=valid.device)] = True
        chosen &= valid
        count = chosen.sum((-1, -2))
        better = count > best
        best = torch.where(better, count, best)
        pairs = torch.where(better[..., None, None], chosen, pairs)
    return pairs


def _nearest_pairs(valid: Tensor, distance: Tensor | None) -> Tensor:
    """Each true event with an admissible prediction paired with the nearest one (official counting)."""
    cost = valid.double() * 0 if distance is None else distance
    cost = torch.where(valid, cost, torch.full_like(cost, float("inf")))
    nearest = cost.argmin(dim=-2, keepdim=True)  # first minimum: the first prediction without coordinates
    pairs = torch.zeros_like(valid).scatter_(-2, nearest, True)
    return pairs & valid.any(-2, keepdim=True)


def match_frames(preds: Tensor, target: Tensor, counting: Counting = "one_to_one", pred_xyz: Tensor | None = None,
                 target_xyz: Tensor | None = None, spatial_threshold: float = 2.0) -> FrameMatch:
    """Match predicted and true events per frame and class (see the module docstring).

    preds, target: ``(B, T, C, S)`` activity (any dtype, nonzero = active), the same shape.
    pred_xyz, target_xyz: ``(B, T, C, S, 3)`` metres, both or neither; without them only classes count.
    """
    if counting not in COUNTINGS:
        raise ValueError(f"counting={counting!r}: expected one of {list(COUNTINGS)}")
    if preds.shape != target.shape or preds.dim() != 4:
        raise ValueError(f"preds and target must be (B, T, classes, slots) of the same shape; got "
                         f"{tuple(preds.shape)} and {tuple(target.shape)}")
    if (pred_xyz is None) != (target_xyz is None):
        raise ValueError("pass both pred_xyz and target_xyz (metres), or neither")
    p, t = preds.bool(), target.bool()
    for name, xyz in (("pred_xyz", pred_xyz), ("target_xyz", target_xyz)):
        if xyz is not None and xyz.shape != (*p.shape, 3):
            raise ValueError(f"{name} must have shape {(*p.shape, 3)} (metres per slot); got {tuple(xyz.shape)}")
    valid, distance = _admissible(p, t, pred_xyz, target_xyz, spatial_threshold)
    n_pred, n_true = p.sum(-1), t.sum(-1)
    if counting == "one_to_one":
        pairs = _maximum_matching(valid)
        tp = pairs.sum((-1, -2))
        return FrameMatch(tp, n_pred - tp, n_true - tp, pairs)
    tp = valid.any(-2).sum(-1)
    frame_pred, frame_true = n_pred.sum(-1, keepdim=True), n_true.sum(-1, keepdim=True)
    fp = n_pred - tp + torch.where(frame_true == 0, n_pred, torch.zeros_like(n_pred))
    fn = n_true - tp + torch.where(frame_pred == 0, n_true, torch.zeros_like(n_true))
    return FrameMatch(tp, fp, fn, _nearest_pairs(valid, distance))


def official_prf(tp: Tensor | float, fp: Tensor | float, fn: Tensor | float) -> tuple[float, float, float]:
    """Precision, recall and F exactly as the official ``compute_seld_metric`` (``+ eps`` denominators)."""
    tp, fp, fn = (float(x) for x in (tp, fp, fn))
    precision = tp / (tp + fp + OFFICIAL_EPS)
    recall = tp / (tp + fn + OFFICIAL_EPS)
    return precision, recall, 2 * precision * recall / (precision + recall + OFFICIAL_EPS)


def one_to_one_prf(tp: Tensor | float, fp: Tensor | float, fn: Tensor | float) -> tuple[float, float, float]:
    """Precision, recall and F of the one-to-one counting; each is 0 where its denominator is 0."""
    tp, fp, fn = (float(x) for x in (tp, fp, fn))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f_score = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f_score


PRF = {"official": official_prf, "one_to_one": one_to_one_prf}
