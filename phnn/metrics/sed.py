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

import torch
from torch import Tensor
from torchmetrics import Metric

from phnn.metrics.frames import COUNTINGS, PRF, Counting, match_frames

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


class L3DAS21FrameScore(Metric):
    """The L3DAS21 Task 2 frame metric: precision, recall and F per 100 ms frame, in one `counting`.

    ``counting="one_to_one"``: each prediction matches at most one true event (phnn's ``f_score``);
    ``counting="official"``: the official ``location_sensitive_detection`` counting, double counting
    included (``f_score_l3das21``); see `phnn.metrics.frames`. When coordinates in metres
    (B, T, C·S, 3) or (B, T, C, S, 3) are passed to `update`, a prediction only matches a true event
    of its class closer than `spatial_threshold` (2 m in the challenge). Counts are kept per class
    (states of shape (C,), summed across batches and DDP ranks). `compute()` returns {"precision",
    "recall", "f_score"}; `per_class()` the same per class.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int = NUM_CLASSES, counting: Counting = "one_to_one",
                 spatial_threshold: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if counting not in COUNTINGS:
            raise ValueError(f"L3DAS21FrameScore: counting={counting!r}; expected one of {list(COUNTINGS)}")
        self.num_classes = num_classes
        self.counting = counting
        self.spatial_threshold = spatial_threshold
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, pred_xyz: Tensor | None = None,
               target_xyz: Tensor | None = None) -> None:
        p, t = _check_pair(preds, target, self.num_classes)
        xyz = [None if x is None else x.reshape(*p.shape, 3) for x in (pred_xyz, target_xyz)]
        match = match_frames(p, t, self.counting, xyz[0], xyz[1], self.spatial_threshold)
        self.tp += match.tp.sum((0, 1))
        self.fp += match.fp.sum((0, 1))
        self.fn += match.fn.sum((0, 1))

    def compute(self) -> dict[str, Tensor]:
        scores = PRF[self.counting](self.tp.sum(), self.fp.sum(), self.fn.sum())
        return {name: torch.tensor(value) for name, value in zip(("precision", "recall", "f_score"), scores)}

    def per_class(self) -> list[dict[str, float]]:
        """Precision, recall and F of each class (the synced counts; call after `compute`)."""
        return [dict(zip(("precision", "recall", "f_score"), PRF[self.counting](tp, fp, fn)))
                for tp, fp, fn in zip(self.tp.tolist(), self.fp.tolist(), self.fn.tolist())]


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
