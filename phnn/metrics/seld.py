"""Sound event localisation and detection (SELD) metrics for L3DAS21 Task 2, as torchmetrics Metrics.

Every metric takes, per batch, binary detections and targets `(B, T, classes · slots)` (or
`(B, T, classes, slots)`) on the 100 ms label grid and positions in metres `(B, T, classes · slots, 3)`
(or `(B, T, classes, slots, 3)`), relative to microphone A (the L3DAS21 labels' origin). Matching is
`phnn.metrics.frames.match_frames`, the one frame-matching core of phnn; states are sums with
`dist_reduce_fx="sum"`, so the numbers are the same on one process and under DDP.

- **Location-sensitive F** (`L3DAS21FrameScore` with coordinates): a detection counts when a true
  event of its class in the same frame lies closer than `spatial_threshold` (2 m in L3DAS21), in the
  official counting (`seld_f_score_l3das21`) and one-to-one (`seld_f_score`).
- **Localisation error** (`LocalisationError`): over detections matched one-to-one to a true event of
  their class in the same frame *at any distance* (the pairs that `match_frames` chooses), the mean
  Euclidean distance in metres and the mean angle between the two directions seen from mic A in
  degrees. Not limited to pairs within the threshold, so gross errors count too.
- **DCASE joint metrics** (`DCASEJointScore`): the location-aware detection and class-dependent
  localisation of the DCASE 2020 SELD metrics (Politis et al., 2020) on 1 s segments; see the class.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from phnn.metrics.frames import match_frames
from phnn.metrics.sed import L3DAS21FrameScore, to_slots

SEGMENT_FRAMES = 10  # DCASE 1 s segments of 100 ms frames


def _slots_and_xyz(detections: Tensor, targets: Tensor, pred_xyz: Tensor, target_xyz: Tensor,
                   num_classes: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Check shapes: (B, T, C, S) activity and (B, T, C, S, 3) float64 positions for both sides."""
    p, t = to_slots(detections, num_classes, "detections"), to_slots(targets, num_classes, "targets")
    if p.shape != t.shape:
        raise ValueError(f"detections and targets must have the same shape; got {tuple(detections.shape)} and "
                         f"{tuple(targets.shape)}")
    positions = []
    for name, xyz in (("pred_xyz", pred_xyz), ("target_xyz", target_xyz)):
        if xyz.numel() != p.numel() * 3 or xyz.shape[-1] != 3:
            raise ValueError(f"{name}: expected positions (B, T, classes·slots, 3) in metres for {tuple(p.shape)} "
                             f"slots; got shape {tuple(xyz.shape)}")
        positions.append(xyz.reshape(*p.shape, 3).double())
    return p, t, positions[0], positions[1]


def angle_degrees(a: Tensor, b: Tensor) -> Tensor:
    """Angle between the directions of `a` and `b` (…, 3) seen from the origin, in degrees (0 for a zero vector)."""
    cosine = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-12)
    return torch.rad2deg(torch.arccos(cosine.clamp(-1.0, 1.0)))


def _pair_errors(p: Tensor, t: Tensor, pred_xyz: Tensor, target_xyz: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One-to-one class matches at any distance: (pairs (B, T, C, S, S) bool, distances, angles) per pair."""
    pairs = match_frames(p, t, "one_to_one", pred_xyz, target_xyz, spatial_threshold=math.inf).pairs
    pred, true = pred_xyz.unsqueeze(-2), target_xyz.unsqueeze(-3)  # (B, T, C, S_pred, 1, 3), (…, 1, S_true, 3)
    return pairs, (pred - true).norm(dim=-1), angle_degrees(pred, true)


class LocalisationError(Metric):
    """Mean localisation error of matched detections, in metres and in degrees of direction.

    `compute()` returns {"error_m", "error_deg", "matched"}; the errors are NaN when nothing matched.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("matched", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("distance", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("angle", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, detections: Tensor, targets: Tensor, pred_xyz: Tensor, target_xyz: Tensor) -> None:
        pairs, distance, angle = _pair_errors(*_slots_and_xyz(detections, targets, pred_xyz, target_xyz,
                                                               self.num_classes))
        self.matched += pairs.sum()
        self.distance += distance[pairs].sum()
        self.angle += angle[pairs].sum()

    def compute(self) -> dict[str, Tensor]:
        count = self.matched.double()
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=count.device)
        mean = (lambda total: total / count) if self.matched > 0 else (lambda total: nan)
        return {"error_m": mean(self.distance).float(), "error_deg": mean(self.angle).float(),
                "matched": self.matched.float()}


class DCASEJointScore(Metric):
    """DCASE 2020 SELD metrics on 1 s segments: ER and F within `angle_threshold` degrees (location-aware
    detection), class-dependent localisation error LE_CD (degrees) and recall LR_CD.

    Per segment (`segment_frames` label frames; segments restart at each batch item, as in
    `DCASESegmentScore`) and class: N_ref / N_pred = the largest number of simultaneous true /
    predicted events of the class in a frame of the segment. When both are present, the frames where
    both are active are matched one-to-one (`match_frames`) and the mean angle over the matched pairs
    is the segment's error: it counts one localised true positive (LE_CD sums these errors, LR_CD
    counts them) and one TP when the error is within the threshold, else one FP; |N_pred − N_ref|
    more events are FP (or FN). A class present only in the references adds N_ref FN; only in the
    predictions, N_pred FP. Per segment, with FN and FP summed over classes, S = min(FN, FP),
    D = max(0, FN − FP), I = max(0, FP − FN). ER = (ΣS + ΣD + ΣI) / ΣN_ref, F = TP / (TP + (FP + FN) / 2).

    One deliberate difference from the DCASE 2020 code: a class present in both but never in the
    same frame counts its N_ref events as FN and its N_pred as FP (the DCASE code adds N_pred to FN
    only). Corner cases: ER divides by max(ΣN_ref, 1); F is 0 without any TP, FP or FN; LE_CD is
    180° (the DCASE convention) when no segment was localised; LR_CD is 0 without references.
    `compute()` returns {"error_rate", "f_score", "localisation_error", "localisation_recall"}.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, angle_threshold: float = 20.0,
                 segment_frames: int = SEGMENT_FRAMES, **kwargs) -> None:
        super().__init__(**kwargs)
        if segment_frames < 1 or not angle_threshold > 0:
            raise ValueError(f"DCASEJointScore: need segment_frames >= 1 and angle_threshold > 0; got "
                             f"{segment_frames} and {angle_threshold}")
        self.num_classes, self.angle_threshold, self.segment_frames = num_classes, angle_threshold, segment_frames
        for name in ("tp", "fp", "fn", "localised", "reference"):
            self.add_state(name, default=torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("angle", default=torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("substitutions", "deletions", "insertions"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _segments(self, x: Tensor, reduce: str) -> Tensor:
        """(B, T, C, …) → (B, segments, C, …) by max or sum over each segment's frames (zero-padded)."""
        pad = -x.shape[1] % self.segment_frames
        if pad:
            x = torch.cat([x, x.new_zeros(x.shape[0], pad, *x.shape[2:])], dim=1)
        x = x.view(x.shape[0], -1, self.segment_frames, *x.shape[2:])
        return x.amax(2) if reduce == "max" else x.sum(2)

    def update(self, detections: Tensor, targets: Tensor, pred_xyz: Tensor, target_xyz: Tensor) -> None:
        p, t, pred_xyz, target_xyz = _slots_and_xyz(detections, targets, pred_xyz, target_xyz, self.num_classes)
        pairs, _, angle = _pair_errors(p, t, pred_xyz, target_xyz)
        n_ref, n_pred = self._segments(t.sum(-1), "max"), self._segments(p.sum(-1), "max")  # (B, segments, C)
        matched = self._segments(pairs.sum((-1, -2)), "sum")
        angle_sum = self._segments(torch.where(pairs, angle, torch.zeros_like(angle)).sum((-1, -2)), "sum")
        both = (n_ref > 0) & (n_pred > 0)
        localised = both & (matched > 0)
        error = angle_sum / matched.clamp(min=1)
        close = localised & (error <= self.angle_threshold)
        apart = both & ~localised
        zero = torch.zeros_like(n_ref)
        extra = torch.where(localised, n_pred - n_ref, zero)
        fp = (localised & ~close).long() + extra.clamp(min=0) + torch.where(apart | (n_ref == 0), n_pred, zero)
        fn = (-extra).clamp(min=0) + torch.where(apart | (n_pred == 0), n_ref, zero)
        self.tp += close.sum((0, 1))
        self.fp += fp.sum((0, 1))
        self.fn += fn.sum((0, 1))
        self.localised += localised.sum((0, 1))
        self.angle += torch.where(localised, error, torch.zeros_like(error)).sum((0, 1))
        self.reference += n_ref.sum((0, 1))
        fn_segment, fp_segment = fn.sum(-1), fp.sum(-1)
        self.substitutions += torch.minimum(fn_segment, fp_segment).sum()
        self.deletions += (fn_segment - fp_segment).clamp(min=0).sum()
        self.insertions += (fp_segment - fn_segment).clamp(min=0).sum()

    def compute(self) -> dict[str, Tensor]:
        errors = (self.substitutions + self.deletions + self.insertions).double()
        error_rate = errors / self.reference.sum().clamp(min=1).double()
        tp, wrong = self.tp.sum().double(), (self.fp.sum() + self.fn.sum()).double()
        f_score = tp / (tp + wrong / 2) if tp + wrong > 0 else torch.zeros_like(tp)
        localised = self.localised.sum().double()
        error = self.angle.sum() / localised if localised > 0 else torch.full_like(localised, 180.0)
        recall_den = localised + self.fn.sum().double()  # LR_CD's misses are the FN
        recall = localised / recall_den if recall_den > 0 else torch.zeros_like(localised)
        return {"error_rate": error_rate.float(), "f_score": f_score.float(),
                "localisation_error": error.float(), "localisation_recall": recall.float()}


class SELDScores(nn.Module):
    """Every SELD metric of one stage, updated together; `compute()` gives the logged names:

    `seld_f_score` / `seld_precision` / `seld_recall` (location-sensitive, one-to-one),
    the same with `_l3das21` (official counting), `doa_error_m`, `doa_error_deg`, and
    `dcase_error_rate_20`, `dcase_f_score_20`, `dcase_localisation_error`, `dcase_localisation_recall`.
    """

    def __init__(self, num_classes: int, spatial_threshold: float = 2.0,
                 angle_threshold: float = 20.0) -> None:
        super().__init__()
        self.one_to_one = L3DAS21FrameScore(num_classes, counting="one_to_one", spatial_threshold=spatial_threshold)
        self.official = L3DAS21FrameScore(num_classes, counting="official", spatial_threshold=spatial_threshold)
        self.error = LocalisationError(num_classes)
        self.dcase = DCASEJointScore(num_classes, angle_threshold)

    def update(self, detections: Tensor, targets: Tensor, pred_xyz: Tensor, target_xyz: Tensor) -> None:
        for metric in (self.one_to_one, self.official, self.error, self.dcase):
            metric.update(detections, targets, pred_xyz, target_xyz)

    def compute(self) -> dict[str, Tensor]:
        scores = {}
        for suffix, metric in (("", self.one_to_one), ("_l3das21", self.official)):
            scores.update({f"seld_{name}{suffix}": value for name, value in metric.compute().items()})
        error = self.error.compute()
        dcase = self.dcase.compute()
        return {**scores, "doa_error_m": error["error_m"], "doa_error_deg": error["error_deg"],
                "dcase_error_rate_20": dcase["error_rate"], "dcase_f_score_20": dcase["f_score"],
                "dcase_localisation_error": dcase["localisation_error"],
                "dcase_localisation_recall": dcase["localisation_recall"]}

    def reset(self) -> None:
        for metric in (self.one_to_one, self.official, self.error, self.dcase):
            metric.reset()
