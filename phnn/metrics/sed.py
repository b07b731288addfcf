"""Sound event detection metrics for L3DAS21 Task 2, as torchmetrics Metrics.

Both metrics take binary predictions (already thresholded) and binary targets shaped
(B, T, classes · slots) — the 42 = 14 × 3 layout of phnn's SED targets, class-major
(index = class · slots + slot) — or (B, T, classes, slots). T counts 100 ms label frames.
Their states are counts with `dist_reduce_fx="sum"`, so they add up across batches and DDP ranks.

Conventions for the corner cases (the same as the official L3DAS21 and sed_eval tools, which
divide by `count + eps`):

- precision, recall and F-score are 0 when their denominator is 0 (e.g. no events and no
  detections give P = R = F = 0, not 1);
- the DCASE error rate divides by max(N, 1): with no reference events it equals the number of
  insertions (0 for a silent prediction), never inf or nan.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor
from torchmetrics import Metric

NUM_CLASSES = 14
NUM_SLOTS = 3


def to_slots(x: Tensor, num_classes: int = NUM_CLASSES, name: str = "input") -> Tensor:
    """(B, T, C·S) or (B, T, C, S) binary → (B, T, C, S) bool, checking the class count."""
    if x.dim() == 3:
        if x.shape[-1] % num_classes:
            raise ValueError(f"{name}: last dimension {x.shape[-1]} must be num_classes·slots "
                             f"(a multiple of {num_classes}); got shape {tuple(x.shape)}")
        x = x.reshape(*x.shape[:2], num_classes, x.shape[-1] // num_classes)
    elif x.dim() != 4 or x.shape[2] != num_classes:
        raise ValueError(f"{name}: expected shape (B, T, {num_classes}·slots) or (B, T, {num_classes}, slots); "
                         f"got {tuple(x.shape)}")
    return x.bool()


def _check_pair(preds: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    p, t = to_slots(preds, num_classes, "preds"), to_slots(target, num_classes, "target")
    if p.shape != t.shape:
        raise ValueError(f"preds and target must have the same shape; got {tuple(preds.shape)} and "
                         f"{tuple(target.shape)}")
    return p, t


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """num / den, 0 where den is 0 (den may be a count or a float below 1, e.g. P + R)."""
    num, den = num.double(), den.double()
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), torch.zeros_like(num))


def _location_matches(p: Tensor, t: Tensor, p_loc: Tensor, t_loc: Tensor, max_distance: float) -> Tensor:
    """Maximum number of (pred, true) pairs per (B, T, C) cell, each used once, within `max_distance`.

    Slots are few (3), so every assignment of predicted slots to true slots is enumerated:
    an exact maximum matching, not a greedy one.
    """
    close = torch.cdist(p_loc.flatten(0, 2).double(), t_loc.flatten(0, 2).double()) < max_distance
    close = close.view(*p.shape, p.shape[-1])  # (B, T, C, S_pred, S_true)
    valid = close & p.unsqueeze(-1) & t.unsqueeze(-2)
    slots = p.shape[-1]
    best = torch.zeros(p.shape[:-1], dtype=torch.long, device=p.device)
    index = torch.arange(slots, device=p.device)
    for perm in itertools.permutations(range(slots)):
        matched = valid[..., index, torch.tensor(perm, device=p.device)].sum(-1)
        best = torch.maximum(best, matched)
    return best


class L3DAS21FrameScore(Metric):
    """The L3DAS21 Task 2 frame metric (class matching per 100 ms frame): precision, recall, F.

    Per frame and class: TP = min(#pred, #true), FP = #pred − TP, FN = #true − TP, summed over
    frames, classes and clips. When locations (B, T, C·S, 3) or (B, T, C, S, 3) are passed to
    `update`, a prediction only matches a true event of the same class within `max_distance`
    (same units as the locations; 2 m in the challenge), each true event at most once.
    `compute()` returns {"precision", "recall", "f_score"}.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int = NUM_CLASSES, max_distance: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.max_distance = max_distance
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, pred_locations: Tensor | None = None,
               target_locations: Tensor | None = None) -> None:
        p, t = _check_pair(preds, target, self.num_classes)
        n_pred, n_true = p.sum(-1), t.sum(-1)
        if (pred_locations is None) != (target_locations is None):
            raise ValueError("pass both pred_locations and target_locations, or neither")
        if pred_locations is None:
            tp = torch.minimum(n_pred, n_true)
        else:
            locs = [loc.reshape(*p.shape, 3) for loc in (pred_locations, target_locations)]
            tp = _location_matches(p, t, locs[0], locs[1], self.max_distance)
        self.tp += tp.sum()
        self.fp += (n_pred - tp).sum()
        self.fn += (n_true - tp).sum()

    def compute(self) -> dict[str, Tensor]:
        precision = _ratio(self.tp, self.tp + self.fp)
        recall = _ratio(self.tp, self.tp + self.fn)
        f_score = _ratio(2 * precision * recall, precision + recall)
        return {"precision": precision.float(), "recall": recall.float(), "f_score": f_score.float()}


class DCASESegmentScore(Metric):
    """DCASE segment-based error rate and micro F1 on segments of `segment_frames` label frames.

    Per segment and class, activity = any frame and any slot active. Per segment, with FN/FP
    counted over classes: S = min(FN, FP), D = max(0, FN − FP), I = max(0, FP − FN);
    ER = (ΣS + ΣD + ΣI) / N (N = active reference (segment, class) pairs); F1 = 2TP / (2TP + FP + FN)
    over all (segment, class) pairs.

    Segments start at the first frame of each batch item: every item is taken as a clip, or a
    window that starts on a segment boundary (windows of whole seconds do). A trailing partial
    segment (T not a multiple of `segment_frames`) is counted as a segment of its own.
    `compute()` returns {"error_rate", "f1", "substitutions", "deletions", "insertions"} (the
    last three as rates, i.e. divided by N like the error rate).
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, num_classes: int = NUM_CLASSES, segment_frames: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        if segment_frames < 1:
            raise ValueError(f"DCASESegmentScore: segment_frames must be ≥ 1; got {segment_frames}")
        self.num_classes = num_classes
        self.segment_frames = segment_frames
        for name in ("tp", "fp", "fn", "substitutions", "deletions", "insertions", "reference"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _segments(self, x: Tensor) -> Tensor:
        """(B, T, C, S) → (B, ceil(T / segment_frames), C) class activity per segment."""
        active = x.any(-1)
        pad = -active.shape[1] % self.segment_frames
        if pad:
            active = torch.cat([active, active.new_zeros(active.shape[0], pad, active.shape[2])], dim=1)
        return active.view(active.shape[0], -1, self.segment_frames, active.shape[2]).any(2)

    def update(self, preds: Tensor, target: Tensor) -> None:
        p, t = (self._segments(x) for x in _check_pair(preds, target, self.num_classes))
        fn = (t & ~p).sum(-1)
        fp = (p & ~t).sum(-1)
        self.tp += (p & t).sum()
        self.fp += fp.sum()
        self.fn += fn.sum()
        self.substitutions += torch.minimum(fn, fp).sum()
        self.deletions += (fn - fp).clamp(min=0).sum()
        self.insertions += (fp - fn).clamp(min=0).sum()
        self.reference += t.sum()

    def compute(self) -> dict[str, Tensor]:
        n = self.reference.clamp(min=1).double()
        rates = {name: getattr(self, name).double() / n for name in ("substitutions", "deletions", "insertions")}
        error_rate = sum(rates.values())
        f1 = _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)
        return {"error_rate": error_rate.float(), "f1": f1.float(), **{k: v.float() for k, v in rates.items()}}
