"""Sound event detection metrics for L3DAS21 Task 2, as torchmetrics Metrics (states summed across DDP ranks).

`L3DAS21FrameScore` takes binary predictions (already thresholded) and binary targets shaped
(B, T, classes · slots) — the 42 = 14 × 3 layout of phnn's SED targets, class-major
(index = class · slots + slot) — or (B, T, classes, slots); T counts 100 ms label frames. It counts
one-to-one or as the official L3DAS21 code (`phnn.metrics.frames`).

`DCASEScore` takes event lists in seconds and counts as sed_eval does (`phnn.metrics.events`), except
for the corner cases documented there: where sed_eval gives NaN (P, R or F with nothing to divide) or
a huge number (ER with no reference event: I / eps), phnn reports 0, resp. I / max(N, 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from phnn.bounds import SPATIAL_THRESHOLD_M
from phnn.metrics.events import DCASECounts, Event, dcase_scores, event_counts, segment_counts
from phnn.metrics.frames import COUNTINGS, PRF, Counting, match_frames

DCASE_KINDS = {"segment": segment_counts, "event": event_counts}


def to_slots(x: Tensor, num_classes: int, name: str = "input") -> Tensor:
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

    def __init__(self, num_classes: int, counting: Counting = "one_to_one",
                 spatial_threshold: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if counting not in COUNTINGS:
            raise ValueError(f"L3DAS21FrameScore: counting={counting!r}; expected one of {list(COUNTINGS)}")
        self.num_classes = num_classes
        self.counting = counting
        self.spatial_threshold = SPATIAL_THRESHOLD_M.check(spatial_threshold, "spatial_threshold")
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
        return {name: torch.tensor(value, dtype=torch.float64)
                for name, value in zip(("precision", "recall", "f_score"), scores)}

    def per_class(self) -> list[dict[str, float]]:
        """Precision, recall and F of each class (the synced counts; call after `compute`)."""
        return [dict(zip(("precision", "recall", "f_score"), PRF[self.counting](tp, fp, fn)))
                for tp, fp, fn in zip(self.tp.tolist(), self.fp.tolist(), self.fn.tolist())]


class DCASEScore(Metric):
    """DCASE segment-based (1 s) or event-based (collars 200 ms / max(200 ms, 50 %)) metrics over clips.

    `update(reference, estimated)` takes one clip's event lists ``[(onset s, offset s, class), ...]``
    (see `phnn.metrics.events`, which counts as sed_eval does); the counts are one long vector state,
    summed across clips and DDP ranks. `compute()` returns {"error_rate", "f1", "precision", "recall",
    "substitution_rate", "deletion_rate", "insertion_rate"}; `scores(class_names)` adds per-class ones.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, num_classes: int, kind: str = "segment", **kwargs) -> None:
        super().__init__(**kwargs)
        if kind not in DCASE_KINDS:
            raise ValueError(f"DCASEScore: kind={kind!r}; expected one of {sorted(DCASE_KINDS)}")
        self.num_classes, self.kind = num_classes, kind
        self.add_state("counts", default=torch.zeros(3 + 5 * num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, reference: Sequence[Event], estimated: Sequence[Event]) -> None:
        counts = DCASE_KINDS[self.kind](reference, estimated, self.num_classes)
        self.counts += torch.from_numpy(counts.as_vector()).to(self.counts.device)

    def scores(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        return dcase_scores(DCASECounts.from_vector(self.counts.tolist(), self.num_classes), class_names)

    def compute(self) -> dict[str, Tensor]:
        return {name: torch.tensor(value, dtype=torch.float64) for name, value in self.scores()["overall"].items()}
