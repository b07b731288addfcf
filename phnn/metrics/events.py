"""DCASE segment-based and event-based metrics on event lists (seconds), counted as sed_eval 0.2.1 does.

An event is ``(onset, offset, class_index)``; every function takes one clip's reference and estimated
lists and returns counts, which add up over clips (`DCASECounts`); `dcase_scores` turns them into rates.

Segment-based (``segment`` = 1 s): an event is active in segments ``floor(onset / 1) … ceil(offset / 1) − 1``;
the clip spans ``ceil(max offset / 1)`` segments. Per segment, over classes: TP, FP, FN;
S = min(Nref, Nsys) − TP, D = max(0, Nref − Nsys), I = max(0, Nsys − Nref).

Event-based: an estimated event hits a reference event of its class when the onsets differ by at
most ``t_collar`` (200 ms) and the offsets by at most max(``t_collar``, ``percentage_of_length`` ×
reference length) (50 %). TP = a maximum matching of hits (Hopcroft–Karp in the formulation sed_eval
uses, so that the same events stay unmatched); a substitution pairs a left-over reference with a
left-over estimate of another class within both collars (greedy, in list order); FP = Nsys − TP − S,
FN = Nref − TP − S. Per class there are no substitutions.

Rates follow sed_eval exactly where it is defined: ER = (S + D + I) / Nref (per class (FN + FP) / Nref),
P = TP / Nsys, R = TP / Nref, F = 2PR / (P + R). The corner cases differ, on purpose:

- Nref = 0: sed_eval divides by ``Nref + eps`` and reports I / 2.2e-16 (≈ 4.5e15 per insertion, a
  finite but meaningless number; 0 for a silent system). phnn reports ER = I / max(Nref, 1): the
  number of insertions (0 when there are none).
- Nsys = 0 (or Nref = 0): sed_eval's P (or R) is NaN, and so is its F (F = 0 only when P = R = 0).
  phnn reports 0 for an undefined P, R or F, so that scores stay numbers in logs and JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from phnn.metrics.frames import one_to_one_prf

Event = tuple[float, float, int]  # onset s, offset s, class index


@dataclass
class DCASECounts:
    """Counts of one metric family (segment- or event-based), overall and per class; they add up."""

    num_classes: int
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    tp: np.ndarray = field(default=None)  # type: ignore[assignment]
    fp: np.ndarray = field(default=None)  # type: ignore[assignment]
    fn: np.ndarray = field(default=None)  # type: ignore[assignment]
    reference: np.ndarray = field(default=None)  # type: ignore[assignment]
    system: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        for name in ("tp", "fp", "fn", "reference", "system"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(self.num_classes, dtype=np.int64))

    def __iadd__(self, other: DCASECounts) -> DCASECounts:
        for item in fields(self):
            if item.name != "num_classes":
                setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))
        return self

    def as_vector(self) -> np.ndarray:
        """[S, D, I, tp…, fp…, fn…, reference…, system…]: the layout of the task's metric state."""
        return np.concatenate([[self.substitutions, self.deletions, self.insertions], self.tp, self.fp, self.fn,
                               self.reference, self.system]).astype(np.int64)

    @classmethod
    def from_vector(cls, vector: Sequence[int], num_classes: int) -> DCASECounts:
        v = np.asarray(vector, dtype=np.int64)
        c = num_classes
        return cls(c, int(v[0]), int(v[1]), int(v[2]), v[3:3 + c], v[3 + c:3 + 2 * c], v[3 + 2 * c:3 + 3 * c],
                   v[3 + 3 * c:3 + 4 * c], v[3 + 4 * c:3 + 5 * c])


def _roll(events: Sequence[Event], num_classes: int, segments: int, segment: float) -> np.ndarray:
    roll = np.zeros((segments, num_classes), dtype=bool)
    for onset, offset, cls in events:
        roll[int(math.floor(onset * 1 / float(segment))):int(math.ceil(offset * 1 / float(segment))), cls] = True
    return roll


def segment_counts(reference: Sequence[Event], estimated: Sequence[Event], num_classes: int,
                   segment: float = 1.0) -> DCASECounts:
    """Segment-based counts of one clip (see the module docstring)."""
    length = max([0.0] + [e[1] for e in reference] + [e[1] for e in estimated])
    segments = int(math.ceil(length * 1 / float(segment)))
    ref = _roll(reference, num_classes, max(segments, 1), segment)[:segments]
    est = _roll(estimated, num_classes, max(segments, 1), segment)[:segments]
    n_ref, n_sys, n_tp = ref.sum(1), est.sum(1), (ref & est).sum(1)
    return DCASECounts(
        num_classes,
        substitutions=int((np.minimum(n_ref, n_sys) - n_tp).sum()),
        deletions=int(np.maximum(0, n_ref - n_sys).sum()),
        insertions=int(np.maximum(0, n_sys - n_ref).sum()),
        tp=(ref & est).sum(0), fp=(est & ~ref).sum(0), fn=(ref & ~est).sum(0),
        reference=ref.sum(0), system=est.sum(0))


def _within_collars(ref: Event, est: Event, t_collar: float, percentage_of_length: float) -> bool:
    onset_ok = math.fabs(ref[0] - est[0]) <= t_collar
    return onset_ok and math.fabs(ref[1] - est[1]) <= max(t_collar, percentage_of_length * (ref[1] - ref[0]))


def _maximum_matching(graph: dict[int, list[int]]) -> dict[int, int]:
    """Hopcroft–Karp maximum matching of estimates (keys) to references; returns reference → estimate.

    The phases (greedy start, layered search from the free estimates, backward search from the
    free references in layer order) follow the formulation sed_eval uses, so that ties break alike.
    """
    matching: dict[int, int] = {}
    for est, refs in graph.items():
        free = next((ref for ref in refs if ref not in matching), None)
        if free is not None:
            matching[free] = est
    while True:
        free_marker: list[int] = []
        came_from: dict[int, object] = {est: free_marker for est in graph}
        for est in matching.values():
            del came_from[est]
        layer = list(came_from)
        reached: dict[int, list[int]] = {}
        free_refs: list[int] = []
        while layer and not free_refs:
            next_layer: dict[int, list[int]] = {}
            for est in layer:
                for ref in graph[est]:
                    if ref not in reached:
                        next_layer.setdefault(ref, []).append(est)
            layer = []
            for ref, ests in next_layer.items():
                reached[ref] = ests
                if ref in matching:
                    layer.append(matching[ref])
                    came_from[matching[ref]] = ref
                else:
                    free_refs.append(ref)
        if not free_refs:
            return matching
        for ref in free_refs:
            _augment(ref, reached, came_from, free_marker, matching)


def _augment(ref: int, reached: dict[int, list[int]], came_from: dict[int, object], free_marker: object,
             matching: dict[int, int]) -> bool:
    """Follow one augmenting path back from the free reference `ref`, flipping `matching` along it if found."""
    if ref not in reached:
        return False
    for est in reached.pop(ref):
        if est in came_from:
            previous = came_from.pop(est)
            if previous is free_marker or _augment(previous,  # type: ignore[arg-type]
                                                   reached, came_from, free_marker, matching):
                matching[ref] = est
                return True
    return False


def _hits(reference: Sequence[Event], estimated: Sequence[Event], same_class: bool, t_collar: float,
          percentage_of_length: float) -> dict[int, list[int]]:
    """estimate index → reference indices it hits, in the order sed_eval builds its graph."""
    graph: dict[int, list[int]] = {}
    for j, ref in enumerate(reference):
        for i, est in enumerate(estimated):
            if (not same_class or ref[2] == est[2]) and _within_collars(ref, est, t_collar, percentage_of_length):
                graph.setdefault(i, []).append(j)
    return graph


def event_counts(reference: Sequence[Event], estimated: Sequence[Event], num_classes: int, t_collar: float = 0.2,
                 percentage_of_length: float = 0.5) -> DCASECounts:
    """Event-based counts of one clip (see the module docstring)."""
    matching = _maximum_matching(_hits(reference, estimated, True, t_collar, percentage_of_length))
    ref_left = [j for j in range(len(reference)) if j not in matching]
    est_left = [i for i in range(len(estimated)) if i not in set(matching.values())]
    substitutions = 0
    taken: set[int] = set()
    for j in ref_left:
        for i in est_left:
            if i not in taken and _within_collars(reference[j], estimated[i], t_collar, percentage_of_length):
                taken.add(i)
                substitutions += 1
                break
    counts = DCASECounts(num_classes)
    for cls in range(num_classes):
        ref_c = [e for e in reference if e[2] == cls]
        est_c = [e for e in estimated if e[2] == cls]
        tp = len(_maximum_matching(_hits(ref_c, est_c, False, t_collar, percentage_of_length)))
        counts.tp[cls], counts.reference[cls], counts.system[cls] = tp, len(ref_c), len(est_c)
        counts.fp[cls], counts.fn[cls] = len(est_c) - tp, len(ref_c) - tp
    counts.substitutions = substitutions
    # overall: FP = Nsys − TP − S (insertions), FN = Nref − TP − S (deletions)
    counts.insertions = int(counts.system.sum() - counts.tp.sum() - substitutions)
    counts.deletions = int(counts.reference.sum() - counts.tp.sum() - substitutions)
    return counts


def _rates(tp: int, fp: int, fn: int, errors: int) -> dict[str, float]:
    """P, R, F1 (0 where undefined) and ER; the system has tp + fp events, the reference tp + fn."""
    precision, recall, f1 = one_to_one_prf(tp, fp, fn)
    return {"error_rate": errors / max(tp + fn, 1), "f1": f1, "precision": precision, "recall": recall}


def dcase_scores(counts: DCASECounts, class_names: Sequence[str] | None = None) -> dict[str, object]:
    """Overall rates (ER with its S/D/I parts, F1, P, R) and the same per class (ER = (FN + FP) / Nref)."""
    n_ref = int(counts.reference.sum())
    overall = _rates(int(counts.tp.sum()), int(counts.fp.sum()), int(counts.fn.sum()),
                     counts.substitutions + counts.deletions + counts.insertions)
    for rate, count in (("substitution_rate", counts.substitutions), ("deletion_rate", counts.deletions),
                        ("insertion_rate", counts.insertions)):
        overall[rate] = count / max(n_ref, 1)
    names = class_names or [str(c) for c in range(counts.num_classes)]
    per_class = {names[c]: _rates(int(counts.tp[c]), int(counts.fp[c]), int(counts.fn[c]),
                                  int(counts.fn[c] + counts.fp[c]))
                 for c in range(counts.num_classes)}
    return {"overall": overall, "per_class": per_class}
