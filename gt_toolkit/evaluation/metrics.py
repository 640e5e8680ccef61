"""Score detections against a reference: COCO-style AP, precision/recall, per-image IoU.

Users judge a labeling pipeline (or a model trained on its labels) by how its boxes compare
with trusted ones. The pure core, :func:`evaluate_detections`, takes simple per-image data:
``{source_ref: [ScoredBox, ...]}`` for the detections and for the reference. The adapters at
the bottom read that data from a Ground Truth output manifest (the label attribute is found
by its ``-metadata`` partner) or from the neutral prediction format, JSON Lines of::

    {"source-ref": "s3://b/img.jpg",
     "boxes": [{"label": "ball", "left": 12, "top": 40, "width": 100, "height": 80,
                "score": 0.93}]}

(pixels, top-left origin, ``score`` optional and 1.0 when absent; ``confidence`` is accepted
in its place, so the boxes :func:`gt_toolkit.sagemaker.predictions.decode_detections` returns can be
written as they are), which is what decoded endpoint predictions are written as.

AP follows pycocotools' ``COCOeval`` for boxes exactly, so numbers are comparable with
published ones: IoU thresholds ``np.linspace(.5, .95, 10)``, 101-point interpolated
precision, greedy matching of detections in descending score order to the unmatched
reference box of the same class with the highest IoU, and classes without reference boxes
left out of the mean. Crowd regions (reference boxes with ``crowd`` set, a COCO dataset's
``iscrowd: 1``) are COCO's: never counted as objects, in any size range; a detection's
overlap with one is the share of the detection inside it (intersection over the
detection's area); any number of detections may match one, but only when no other box
qualifies; a detection matched to one is neither a true nor a false positive. A reference
box's size range is decided by its ``area`` when it has one (the file's, as COCOeval reads
it), else by ``width * height``; a detection's always by ``width * height``.
The other figures follow the same rule: for precision/recall at ``iou_threshold`` and the
per-image IoU, crowd regions are not references, and a detection that matches one at
``iou_threshold`` is left out (counted in neither ``detections``, TP nor FP).
Differences from COCOeval, all documented choices:

- ``max_detections`` (COCO's ``maxDets``) is per image and class, and defaults to no cap
  (``None``), because labeling jobs and crowded images can exceed COCO's 100; pass 100 to
  reproduce COCO's default number.
- Ties are broken deterministically so results never depend on input order: images are taken
  in ``source_ref`` order, and within an image detections are ordered by descending score,
  then ``left, top, width, height`` (Ground Truth writes 0.0 confidence for every box of a
  single-worker job, so ties are common); reference boxes are ordered by ``left, top, width,
  height`` (the ignored ones, crowd regions included, then go last in that order, as in
  COCOeval). pycocotools gives the same numbers when fed that order. With ``coco_order``
  (a COCO results list against its COCO file) COCOeval's own order is kept instead: images
  by id, equal scores and reference boxes in file order, so such files score exactly as
  pycocotools scores them.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gt_toolkit.consolidation.geometry import iou_matrix
from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.detection_label import ScoredBox
from gt_toolkit.formats.manifest import ManifestLine, RejectedLine, parse_manifest_lines
from gt_toolkit.formats.output_manifest import (
    DetectionRecord,
    LabelKind,
    OutputReader,
    OutputRejectReason,
)
from gt_toolkit.progress import progress
from gt_toolkit.storage.files import Location, iter_raw_lines
from gt_toolkit.storage.s3 import S3Store
from gt_toolkit.text import printable  # re-exported: callers imported it from here

__all__ = [
    "AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_POINTS",
    "RECALL_DETECTIONS",
    "ClassEvaluation",
    "DetectionSet",
    "EvaluationResult",
    "ImageEvaluation",
    "evaluate_detections",
    "format_evaluation",
    "iter_prediction_lines",
    "mismatch_hints",
    "parse_prediction_line",
    "printable",
    "read_detection_set",
]

COCO_IOU_THRESHOLDS: npt.NDArray[np.float64] = np.linspace(0.5, 0.95, 10)
"""COCO's IoU thresholds, built as pycocotools builds them (bit for bit)."""
COCO_RECALL_POINTS: npt.NDArray[np.float64] = np.linspace(0.0, 1.0, 101)
"""COCO's 101 recall points for interpolated precision."""

_EPS = float(np.spacing(1))
_ANY_OVERLAP = float(np.nextafter(0.0, 1.0))  # a threshold that every positive IoU meets
# Objects the labeling did not label (listed in ``skipped``, not scored as negatives).
_NOT_LABELED = (
    OutputRejectReason.FAILED_OBJECT.value,
    OutputRejectReason.ALL_BOXES_DROPPED.value,
)


Detections = Mapping[str, Sequence[ScoredBox]]
"""Boxes per image, keyed by ``source-ref``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassEvaluation:
    """Scores for one class; AP is ``None`` when the reference has no box of the class.

    The counts leave out crowd regions and the detections on them (module docstring).
    """

    label: str
    ap50: float | None
    ap75: float | None
    ap: float | None
    references: int
    detections: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float | None
    recall: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageEvaluation:
    """One image's one-to-one match of detections to reference boxes (same class only).

    Crowd regions and the detections on them are left out (module docstring). ``miou``
    counts every unmatched box on either side as IoU 0 (1.0 when both sides are empty), so
    it falls with misses and false positives; ``matched_iou`` is the mean IoU of the
    matched pairs alone (``None`` without any), which shows how tight the boxes are.
    """

    source_ref: str
    miou: float
    matched_iou: float | None
    matched: int
    references: int
    detections: int
    missed: int
    false_positives: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationResult:
    """Everything :func:`evaluate_detections` measured; ``to_json`` is the report.

    ``map*`` and ``mar*`` are COCO's twelve summary numbers: AP over IoU .50:.95 (and at .50,
    .75) for all boxes and for small (area < 32²), medium and large (> 96²) reference boxes,
    and AR (recall averaged over the ten IoU thresholds and the classes) keeping each image's
    best 1, 10 or 100 detections per class, and by size at 100. ``warnings`` are one-line
    hints about inputs that look mismatched (label case, normalised boxes, other images);
    ``unknown_images`` are the detections' images the reference does not list (left out),
    ``missing_images`` the reference's images the detections do not list (all missed).
    """

    map50: float | None
    map75: float | None
    map: float | None
    map_small: float | None
    map_medium: float | None
    map_large: float | None
    mar1: float | None
    mar10: float | None
    mar100: float | None
    mar_small: float | None
    mar_medium: float | None
    mar_large: float | None
    precision: float | None
    recall: float | None
    mean_image_miou: float | None
    classes: list[ClassEvaluation]
    images: list[ImageEvaluation]
    iou_threshold: float
    score_threshold: float
    max_detections: int | None
    unknown_images: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``None`` becomes ``null``)."""
        return asdict(self)


AREA_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}
"""COCO's area ranges in square pixels, bounds included (a reference box's ``area`` if set)."""
RECALL_DETECTIONS: Final = (1, 10, 100)
"""The per-image, per-class detection counts of COCO's AR@1, AR@10 and AR@100."""


@dataclass(slots=True)
class _Ranked:
    """One class in one area range: every image's ranked detections and what they found."""

    scores: list[npt.NDArray[np.float64]] = field(default_factory=list)
    tp: list[npt.NDArray[np.bool_]] = field(default_factory=list)  # (T, D) per image
    fp: list[npt.NDArray[np.bool_]] = field(default_factory=list)  # (T, D) per image
    references: int = 0  # reference boxes in the range
    # true positives among each image's best k detections, per RECALL_DETECTIONS and threshold
    found: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros((len(RECALL_DETECTIONS), len(COCO_IOU_THRESHOLDS)), int)
    )

    def ap(self) -> npt.NDArray[np.float64] | None:
        """AP per IoU threshold; ``None`` when the range holds no reference box."""
        if not self.references:
            return None
        if not self.scores:
            return np.zeros(len(COCO_IOU_THRESHOLDS))
        return _interpolated_ap(
            np.concatenate(self.scores),
            np.concatenate(self.tp, axis=1),
            np.concatenate(self.fp, axis=1),
            self.references,
        )

    def ar(self) -> list[float | None]:
        """AR per :data:`RECALL_DETECTIONS`, averaged over the IoU thresholds."""
        if not self.references:
            return [None] * len(RECALL_DETECTIONS)
        return [float(np.mean(row / self.references)) for row in self.found]


@dataclass(slots=True)
class _Counts:
    """One class at ``iou_threshold`` and ``score_threshold``: precision/recall counts."""

    references: int = 0
    detections: int = 0
    tp: int = 0
    fp: int = 0


def _xywh(boxes: Sequence[ScoredBox]) -> npt.NDArray[np.float64]:
    """``(N, 4)`` array of ``left, top, width, height``."""
    if not boxes:
        return np.zeros((0, 4), dtype=np.float64)
    return np.array([[b.left, b.top, b.width, b.height] for b in boxes], dtype=np.float64)


def _score(box: ScoredBox) -> float:
    """A detection's score; one without a score counts as certain (1.0)."""
    return 1.0 if box.score is None else box.score


def _ref_area(box: ScoredBox) -> float:
    """A reference box's area for COCO's size ranges: its own ``area``, else width x height."""
    return box.width * box.height if box.area is None else box.area


def _det_order(boxes: Sequence[ScoredBox]) -> list[ScoredBox]:
    return sorted(boxes, key=lambda b: (-_score(b), b.left, b.top, b.width, b.height))


def _ref_order(boxes: Sequence[ScoredBox]) -> list[ScoredBox]:
    return sorted(boxes, key=lambda b: (b.left, b.top, b.width, b.height))


def _greedy_match(
    iou: npt.NDArray[np.float64],
    thresholds: npt.NDArray[np.float64],
    ignored: npt.NDArray[np.bool_] | None = None,
    crowd: npt.NDArray[np.bool_] | None = None,
) -> npt.NDArray[np.int64]:
    """``(T, D)``: per threshold, the reference index each detection takes, or -1.

    Detections (rows) are taken best first. COCO's rule: the unmatched reference with the
    highest IoU, at least the threshold (capped at ``1 - 1e-10``); on equal IoU the later
    reference wins, as in pycocotools. References flagged ``ignored`` (crowd regions, or
    outside the area range) are taken only when no other qualifies, as COCOeval does by
    sorting them last; ``crowd`` ones are never used up, so any number of detections may
    take one. All thresholds advance together, one detection at a time.
    """
    n_det, n_ref = iou.shape
    floors = np.minimum(thresholds, 1 - 1e-10)
    out = np.full((len(floors), n_det), -1, dtype=np.int64)
    if n_ref == 0:
        return out
    candidates = iou >= floors.min()
    if (candidates.sum(axis=0) <= 1).all() and (candidates.sum(axis=1) <= 1).all():
        # No detection competes for a reference, nor a reference for a detection: each
        # detection takes its one candidate wherever the IoU reaches the threshold.
        ref = candidates.argmax(axis=1)
        ok = candidates.any(axis=1)[None, :] & (iou[np.arange(n_det), ref] >= floors[:, None])
        return np.where(ok, ref[None, :], -1)
    taken = np.zeros((len(floors), n_ref), dtype=bool)
    rows = np.arange(len(floors))
    none = np.zeros(n_ref, dtype=bool)
    groups = [ignored, ~ignored] if ignored is not None and _splits(ignored) else [none]
    lasting = none if crowd is None else crowd
    for d in range(n_det):
        for excluded in groups:  # the refs a group may not take
            open_ = out[:, d] < 0
            row = np.where(taken & ~lasting | excluded, -np.inf, iou[d])
            best = row.max(axis=1)
            last = n_ref - 1 - np.argmax(row[:, ::-1] == best[:, None], axis=1)
            take = open_ & (best >= floors)
            out[take, d] = last[take]
            taken[rows[take], last[take]] = True
    return out


def _splits(ignored: npt.NDArray[np.bool_]) -> bool:
    """Whether ``ignored`` parts the references in two groups (else one, as with none)."""
    return bool(ignored.any() and not ignored.all())


def _interpolated_ap(
    scores: npt.NDArray[np.float64],
    tp: npt.NDArray[np.bool_],
    fp: npt.NDArray[np.bool_],
    n_refs: int,
) -> npt.NDArray[np.float64]:
    """AP per IoU threshold: COCO's 101-point interpolated precision, averaged.

    ``tp`` and ``fp`` are ``(T, D)``; a detection that is neither (matched to or lying
    outside the area range) does not count. Detections are sorted here by score with a
    stable sort, so ties keep the caller's (image, in-image) order.
    """
    order = np.argsort(-scores, kind="mergesort")
    tp_sum = np.cumsum(tp[:, order], axis=1).astype(dtype=float)
    fp_sum = np.cumsum(fp[:, order], axis=1).astype(dtype=float)
    ap = np.zeros(tp.shape[0], dtype=np.float64)
    for t in range(tp.shape[0]):
        nd = len(tp_sum[t])
        rc = tp_sum[t] / n_refs
        pr = tp_sum[t] / (fp_sum[t] + tp_sum[t] + _EPS)
        q = np.zeros(len(COCO_RECALL_POINTS), dtype=np.float64)
        pr = np.maximum.accumulate(pr[::-1])[::-1] if nd else pr
        inds = np.searchsorted(rc, COCO_RECALL_POINTS, side="left")
        valid = inds < nd
        q[valid] = pr[inds[valid]]
        ap[t] = float(np.mean(q))
    return ap


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return math.fsum(kept) / len(kept) if kept else None


def _check_boxes(source_ref: str, boxes: Sequence[ScoredBox], side: str) -> list[str]:
    problems = []
    for i, b in enumerate(boxes):
        values = (b.left, b.top, b.width, b.height, _score(b))
        if not all(math.isfinite(v) for v in values):
            problems.append(f"{side} {source_ref} box {i}: non-finite value in {b}")
        elif b.width < 0 or b.height < 0:
            problems.append(f"{side} {source_ref} box {i}: negative width or height in {b}")
        elif b.area is not None and not (math.isfinite(b.area) and b.area >= 0):
            problems.append(f"{side} {source_ref} box {i}: area must be finite and >= 0 in {b}")
    return problems


def _check_input(
    detections: Detections,
    reference: Detections,
    iou_threshold: float,
    max_detections: int | None,
) -> None:
    problems: list[str] = []
    if not 0.0 <= iou_threshold <= 1.0:
        problems.append(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if max_detections is not None and max_detections < 1:
        problems.append(f"max_detections must be >= 1 or None, got {max_detections}")
    for ref, boxes in reference.items():
        problems.extend(_check_boxes(ref, boxes, "reference"))
    for ref, boxes in detections.items():
        problems.extend(_check_boxes(ref, boxes, "detection"))
    unknown = sorted(set(detections) - set(reference))
    if detections and len(unknown) == len(detections):
        problems.append(
            f"none of the {len(detections)} detection image(s) is in the reference "
            f"(e.g. {unknown[0]} against {min(reference, default='nothing')}): "
            "do both name the images the same way (bucket, prefix)?"
        )
    if problems:
        raise ValidationError(problems, what="evaluation input")


def _is_normalised(boxes: Iterable[ScoredBox]) -> bool | None:
    """Whether every box lies within [0, 1]²; ``None`` without boxes."""
    edges = [max(b.left + b.width, b.top + b.height) for b in boxes]
    return max(edges) <= 1.0 + 1e-9 if edges else None


def mismatch_hints(detections: Detections, reference: Detections) -> list[str]:
    """One line per sign that the two sides do not describe boxes the same way.

    Labels that match only when case and surrounding spaces are ignored, boxes normalised to
    0-1 on one side only, detection images the reference does not list, and reference
    images the detections do not list (a model run on part of the images, or half the
    images spelled another way, ``/data/x.jpg`` for ``s3://b/x.jpg``): each scores 0 without
    being wrong, so a person should hear about it.
    """
    hints = []
    unknown = sorted(set(detections) - set(reference))
    if unknown:
        hints.append(
            f"{len(unknown)} of {len(detections)} detection image(s) are not in the reference "
            f"and were left out, e.g. {unknown[0]}"
        )
    absent = sorted(set(reference) - set(detections))
    if absent:  # an empty detection file too: every image missed, and nothing said
        hints.append(
            f"{len(absent)} of {len(reference)} reference image(s) have no entry in the "
            f"detections and count as all missed, e.g. {absent[0]}"
        )
    det_labels = {b.label for boxes in detections.values() for b in boxes}
    ref_labels = {b.label for boxes in reference.values() for b in boxes}
    folded = {label.strip().casefold(): label for label in ref_labels}
    near = sorted(
        (label, folded[label.strip().casefold()])
        for label in det_labels - ref_labels
        if label.strip().casefold() in folded
    )
    if near:
        pairs = ", ".join(f"{d!r} vs {r!r}" for d, r in near[:3])
        hints.append(f"labels differ from the reference only in case or spaces: {pairs}")
    det_norm = _is_normalised(b for boxes in detections.values() for b in boxes)
    ref_norm = _is_normalised(b for boxes in reference.values() for b in boxes)
    if det_norm is not None and ref_norm is not None and det_norm != ref_norm:
        side, other = ("detection", "reference") if det_norm else ("reference", "detection")
        hints.append(
            f"{side} boxes all lie within 0-1 (normalised?) while {other} boxes are in "
            "pixels: scale them by the image size"
        )
    return hints


def _by_label(boxes: Iterable[ScoredBox]) -> dict[str, list[ScoredBox]]:
    out: dict[str, list[ScoredBox]] = defaultdict(list)
    for b in boxes:
        out[b.label].append(b)
    return out


def _rank_area_ranges(
    ranked: Mapping[str, _Ranked],
    iou: npt.NDArray[np.float64],
    matches: npt.NDArray[np.int64],
    det_area: npt.NDArray[np.float64],
    ref_area: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    crowd: npt.NDArray[np.bool_],
) -> None:
    """Add one image and class to each area range's accumulator, as COCOeval counts it.

    ``matches`` are the ones with only crowd regions ignored; a range that ignores other
    references too matches again (only the grouping changes which box is taken).
    """
    for name, (low, high) in AREA_RANGES.items():
        ignored = crowd | (ref_area < low) | (ref_area > high)
        inside = (det_area >= low) & (det_area <= high)
        acc = ranked[name]
        acc.references += int((~ignored).sum())
        if ignored.all() and not inside.any():
            continue  # nothing here can be a true or a false positive
        same_groups = np.array_equal(ignored, crowd) or not (_splits(ignored) or _splits(crowd))
        taken = matches if same_groups else _greedy_match(iou, COCO_IOU_THRESHOLDS, ignored, crowd)
        hit = taken >= 0
        on_ignored = np.append(ignored, False)[taken]  # -1 (no match) reads the False
        tp = hit & ~on_ignored
        acc.scores.append(scores)
        acc.tp.append(tp)
        acc.fp.append(~hit & inside[None, :])
        for i, k in enumerate(RECALL_DETECTIONS):
            acc.found[i] += tp[:, :k].sum(axis=1)


def _threshold_matches(
    iou: npt.NDArray[np.float64],
    kept: npt.NDArray[np.bool_],
    crowd: npt.NDArray[np.bool_],
    iou_threshold: float,
) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """COCO's matches ``(T, D)``, then the precision/recall and per-image IoU matches.

    Those are the kept detections' matches at ``iou_threshold`` and at any overlap, and
    their IoU rows. A kept detection that takes a crowd region at ``iou_threshold`` (COCO's
    rule) is left out of these, and so are crowd columns: here they are not references.
    """
    extra = np.array([iou_threshold, _ANY_OVERLAP])
    if not crowd.any():
        if kept.all():  # one pass for all of them
            both = _greedy_match(iou, np.concatenate([COCO_IOU_THRESHOLDS, extra]))
            return both[:-2], both[-2], both[-1], iou
        hits, pairs = _greedy_match(iou[kept], extra)
        return _greedy_match(iou, COCO_IOU_THRESHOLDS), hits, pairs, iou[kept]
    matches = _greedy_match(iou, COCO_IOU_THRESHOLDS, crowd, crowd)
    hits = _greedy_match(iou[kept], extra[:1], crowd, crowd)[0]
    scored = ~np.append(crowd, False)[hits]  # -1 (no match) reads the False
    iou_scored = iou[kept][scored][:, ~crowd]
    return matches, hits[scored], _greedy_match(iou_scored, extra[1:])[0], iou_scored


def _match_class(
    refs: list[ScoredBox],
    dets: list[ScoredBox],
    ranked: Mapping[str, _Ranked],
    counts: _Counts,
    iou_threshold: float,
    score_threshold: float,
) -> tuple[float, int, int, int]:
    """Match one class on one image into the accumulators.

    Returns the per-image IoU's parts: (IoU sum, matched pairs, references, detections),
    without crowd regions and the detections on them.
    """
    crowd = np.array([b.crowd for b in refs], dtype=bool)
    iou = iou_matrix(_xywh(dets), _xywh(refs), xywh=True, crowd=crowd)
    ref_area = np.array([_ref_area(b) for b in refs], dtype=np.float64)
    det_area = np.array([b.width * b.height for b in dets], dtype=np.float64)
    scores = np.array([_score(d) for d in dets], dtype=np.float64)
    matches, hits, pairs, iou_scored = _threshold_matches(
        iou, scores >= score_threshold, crowd, iou_threshold
    )
    _rank_area_ranges(ranked, iou, matches, det_area, ref_area, scores, crowd)
    n_refs = int((~crowd).sum())
    counts.references += n_refs
    counts.detections += len(hits)
    counts.tp += int((hits >= 0).sum())
    counts.fp += int((hits < 0).sum())
    # Per-image IoU: one-to-one pairs that overlap at all; unmatched boxes add 0.
    paired = pairs >= 0
    pair_ious = iou_scored[np.nonzero(paired)[0], pairs[paired]]
    return float(pair_ious.sum()), int(paired.sum()), n_refs, len(hits)


def _class_result(label: str, ranked: Mapping[str, _Ranked], counts: _Counts) -> ClassEvaluation:
    ap = ranked["all"].ap()
    thr_50 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.5)))
    thr_75 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.75)))
    return ClassEvaluation(
        label=label,
        ap50=float(ap[thr_50]) if ap is not None else None,
        ap75=float(ap[thr_75]) if ap is not None else None,
        ap=float(np.mean(ap)) if ap is not None else None,
        references=counts.references,
        detections=counts.detections,
        true_positives=counts.tp,
        false_positives=counts.fp,
        false_negatives=counts.references - counts.tp,
        precision=_ratio(counts.tp, counts.tp + counts.fp),
        recall=_ratio(counts.tp, counts.references),
    )


def _mean_ap(ranked: Iterable[_Ranked]) -> float | None:
    aps = [ap for acc in ranked if (ap := acc.ap()) is not None]
    return _mean(float(np.mean(ap)) for ap in aps)


def _evaluate_image(
    source_ref: str,
    reference: Sequence[ScoredBox],
    detections: Sequence[ScoredBox],
    ranked: Mapping[str, Mapping[str, _Ranked]],
    counts: Mapping[str, _Counts],
    *,
    iou_threshold: float,
    score_threshold: float,
    max_detections: int | None,
    keep_order: bool = False,
) -> ImageEvaluation:
    """Match one image class by class, adding to the accumulators; its own IoU summary.

    ``keep_order``: boxes in input order but for the detections' scores (COCOeval's order).
    """
    refs_by_label, dets_by_label = _by_label(reference), _by_label(detections)
    iou_sum, matched, n_ref, n_det = 0.0, 0, 0, 0
    for label in sorted(set(refs_by_label) | set(dets_by_label)):
        if keep_order:
            refs = refs_by_label[label]
            dets = sorted(dets_by_label[label], key=lambda b: -_score(b))[:max_detections]
        else:
            refs = _ref_order(refs_by_label[label])
            dets = _det_order(dets_by_label[label])[:max_detections]
        pair_sum, pairs, refs_scored, dets_scored = _match_class(
            refs, dets, ranked[label], counts[label], iou_threshold, score_threshold
        )
        iou_sum += pair_sum
        matched += pairs
        n_ref += refs_scored
        n_det += dets_scored
    denominator = n_ref + n_det - matched
    return ImageEvaluation(
        source_ref=source_ref,
        miou=iou_sum / denominator if denominator else 1.0,
        matched_iou=iou_sum / matched if matched else None,
        matched=matched,
        references=n_ref,
        detections=n_det,
        missed=n_ref - matched,
        false_positives=n_det - matched,
    )


def evaluate_detections(
    detections: Detections,
    reference: Detections,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
    max_detections: int | None = None,
    coco_order: Sequence[str] | None = None,
) -> EvaluationResult:
    """Compare detections with reference boxes, per class and per image.

    The reference decides which images count: an image it lists without a detection entry
    has every box missed, named in ``missing_images`` and warned about; detections on
    images it does not list are left out, named in ``unknown_images`` and warned about
    (when *no* detection image is in the reference, that is an error: the two sides name
    images differently).

    Args:
        detections: boxes with scores per ``source-ref`` (a model's or another labeling run's);
            their ``crowd`` and ``area`` are not used (COCO's results have neither).
        reference: the trusted boxes per ``source-ref``; their scores are ignored, their
            ``crowd`` flags and ``area`` used as the module docstring says.
        iou_threshold: IoU for precision/recall at ``score_threshold`` (AP uses COCO's ten).
        score_threshold: detections scoring below it are dropped for precision, recall and
            the per-image IoU; AP always ranks all of them.
        max_detections: keep at most this many best-scored detections per image and class
            (COCO's ``maxDets``); ``None`` keeps all. With 100, the AP and AR numbers are
            exactly COCOeval's summary.
        coco_order: the reference's images in COCOeval's order (by image id, as a COCO
            reader's ``image_order`` gives it): images are then taken in that order, and
            boxes keep their input order where the documented one would sort them (equal
            scores; reference boxes), as COCOeval keeps a file's order. A results list read
            against its COCO file so scores as pycocotools scores it even where scores tie
            (``evaluate`` does this); ``None``: the order-free rule of the module docstring.

    Returns:
        Per-class AP@0.5, AP@0.75 and AP@[.5:.95], their means over classes with reference
        boxes, COCO's size and AR numbers, micro-averaged precision/recall, per-image IoU
        (worst image first) and one-line ``warnings`` from :func:`mismatch_hints`.

    Raises:
        ValidationError: non-finite or negative-size boxes (or ``area``), a bad threshold,
            or detections on none of the reference's images.

    Examples:
        >>> box = ScoredBox(label="ball", left=10, top=10, width=20, height=20)
        >>> evaluate_detections({"a.jpg": [box]}, {"a.jpg": [box]}).map50
        1.0
    """
    _check_input(detections, reference, iou_threshold, max_detections)
    images = sorted(reference)
    if coco_order is not None:
        ordered = [r for r in dict.fromkeys(coco_order) if r in reference]
        images = ordered + sorted(set(reference) - set(ordered))
    labels = sorted(
        {b.label for boxes in reference.values() for b in boxes}
        | {b.label for r in images for b in detections.get(r, ())}
    )
    ranked = {label: {name: _Ranked() for name in AREA_RANGES} for label in labels}
    counts = {label: _Counts() for label in labels}
    per_image = [
        _evaluate_image(
            source_ref,
            reference[source_ref],
            detections.get(source_ref, ()),
            ranked,
            counts,
            iou_threshold=iou_threshold,
            score_threshold=score_threshold,
            max_detections=max_detections,
            keep_order=coco_order is not None,
        )
        for source_ref in progress(images, total=len(images), desc="evaluating", unit="img")
    ]
    per_image.sort(key=lambda r: (r.miou, r.source_ref))
    return _result(
        [_class_result(label, ranked[label], counts[label]) for label in labels],
        ranked,
        per_image,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        max_detections=max_detections,
        unknown=sorted(set(detections) - set(reference)),
        missing=sorted(set(reference) - set(detections)),
        warnings=mismatch_hints(detections, reference),
    )


def _result(
    classes: list[ClassEvaluation],
    ranked: Mapping[str, Mapping[str, _Ranked]],
    per_image: list[ImageEvaluation],
    *,
    iou_threshold: float,
    score_threshold: float,
    max_detections: int | None,
    unknown: list[str],
    missing: list[str],
    warnings: list[str],
) -> EvaluationResult:
    def across(area: str) -> list[_Ranked]:
        return [ranked[c.label][area] for c in classes]

    recall = {
        area: [acc.ar() for acc in across(area)] for area in ("all", "small", "medium", "large")
    }
    at_100 = RECALL_DETECTIONS.index(100)
    tp = sum(c.true_positives for c in classes)
    fp = sum(c.false_positives for c in classes)
    return EvaluationResult(
        map50=_mean(c.ap50 for c in classes),
        map75=_mean(c.ap75 for c in classes),
        map=_mean(c.ap for c in classes),
        map_small=_mean_ap(across("small")),
        map_medium=_mean_ap(across("medium")),
        map_large=_mean_ap(across("large")),
        mar1=_mean(r[0] for r in recall["all"]),
        mar10=_mean(r[1] for r in recall["all"]),
        mar100=_mean(r[at_100] for r in recall["all"]),
        mar_small=_mean(r[at_100] for r in recall["small"]),
        mar_medium=_mean(r[at_100] for r in recall["medium"]),
        mar_large=_mean(r[at_100] for r in recall["large"]),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, sum(c.references for c in classes)),
        mean_image_miou=_mean(r.miou for r in per_image),
        classes=classes,
        images=per_image,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        max_detections=max_detections,
        unknown_images=unknown,
        warnings=warnings,
        missing_images=missing,
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_evaluation(result: EvaluationResult, *, worst: int = 10) -> str:
    """A plain-text report: the class table, the means, and the ``worst`` images.

    ``result.warnings`` are left to the caller (the CLI prints them on stderr).
    """
    lines = [_class_table(result)]
    lines.append(
        f"P/R at IoU {result.iou_threshold:g}, score >= {result.score_threshold:g}; "
        f"max detections per image and class: {result.max_detections or 'all'}; "
        f"mean per-image mIoU: {_fmt(result.mean_image_miou)}"
    )
    lines.append(
        f"AP small/medium/large: {_fmt(result.map_small)} / {_fmt(result.map_medium)} / "
        f"{_fmt(result.map_large)}; AR@1/10/100: {_fmt(result.mar1)} / {_fmt(result.mar10)} / "
        f"{_fmt(result.mar100)}; AR small/medium/large: {_fmt(result.mar_small)} / "
        f"{_fmt(result.mar_medium)} / {_fmt(result.mar_large)}"
    )
    if worst and result.images:
        lines.append("")
        lines.append(f"worst {min(worst, len(result.images))} of {len(result.images)} images:")
        img_rows = [
            [
                r.source_ref,
                _fmt(r.miou),
                _fmt(r.matched_iou),
                str(r.references),
                str(r.detections),
                str(r.missed),
                str(r.false_positives),
            ]
            for r in result.images[:worst]
        ]
        lines.append(_table(["image", "mIoU", "matched", "refs", "dets", "missed", "FP"], img_rows))
    return "\n".join(lines)


def _class_table(result: EvaluationResult) -> str:
    """One row per class and a ``mean`` row (sums of the counts, means of the scores)."""
    head = ["class", "refs", "dets", "AP50", "AP75", "AP", "P", "R", "TP", "FP", "FN"]
    rows = [
        [
            c.label,
            str(c.references),
            str(c.detections),
            _fmt(c.ap50),
            _fmt(c.ap75),
            _fmt(c.ap),
            _fmt(c.precision),
            _fmt(c.recall),
            str(c.true_positives),
            str(c.false_positives),
            str(c.false_negatives),
        ]
        for c in result.classes
    ]
    rows.append(
        [
            "mean",
            str(sum(c.references for c in result.classes)),
            str(sum(c.detections for c in result.classes)),
            _fmt(result.map50),
            _fmt(result.map75),
            _fmt(result.map),
            _fmt(result.precision),
            _fmt(result.recall),
            str(sum(c.true_positives for c in result.classes)),
            str(sum(c.false_positives for c in result.classes)),
            str(sum(c.false_negatives for c in result.classes)),
        ]
    )
    return _table(head, rows)


def _table(head: list[str], rows: list[list[str]]) -> str:
    head, rows = [printable(c) for c in head], [[printable(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


# --------------------------------------------------------------------------- adapters


@dataclass(slots=True)
class DetectionSet:
    """Boxes per image read from a file, with what was skipped and why."""

    boxes: dict[str, list[ScoredBox]]
    kind: str  # "output-manifest", "predictions", "coco" or "coco-results"
    attribute: str | None = None
    skipped: list[str] = field(default_factory=list)
    # COCO only: the image keys in COCOeval's order (by image id), for ``coco_order``
    image_order: list[str] | None = None


def parse_prediction_line(data: Mapping[str, Any]) -> tuple[str, list[ScoredBox]]:
    """One neutral-format prediction line -> ``(source_ref, boxes)``.

    A box needs a non-empty string ``label`` and finite numbers (JSON numbers or numeric
    strings, never booleans) with a width and height of at least 0: a ``null`` label would
    otherwise become a class named ``"None"`` and score as a false positive.

    Raises:
        ValidationError: no ``source-ref``, ``boxes`` not a list, or a malformed box.
    """
    source_ref = data.get("source-ref")
    if not isinstance(source_ref, str):
        raise ValidationError(["no 'source-ref' string"], what="prediction line")
    raw = data.get("boxes")
    if not isinstance(raw, list):
        raise ValidationError(
            ["'boxes' must be a list of {label, left, top, width, height, score}"],
            what="prediction line",
        )
    boxes = []
    for i, b in enumerate(raw):
        try:
            label = b["label"]
            if not isinstance(label, str) or not label:
                raise TypeError(label)
            boxes.append(
                ScoredBox(
                    label=label,
                    left=_number(b["left"]),
                    top=_number(b["top"]),
                    width=_number(b["width"]),
                    height=_number(b["height"]),
                    score=_number(b.get("score", b.get("confidence", 1.0))),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValidationError([f"box {i} is malformed: {b!r}"], what="prediction line") from exc
    if problems := _check_boxes(source_ref, boxes, "prediction"):
        raise ValidationError(problems, what="prediction line")
    return source_ref, boxes


def _number(value: object) -> float:
    """A JSON number or numeric string as a float; a boolean is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(value)
    return float(value)


def iter_prediction_lines(
    boxes: Mapping[str, Sequence[ScoredBox]],
) -> Iterator[dict[str, Any]]:
    """Per-image boxes -> neutral prediction-format records, in ``source-ref`` order."""
    for source_ref in sorted(boxes):
        yield {"source-ref": source_ref, "boxes": [b.to_json() for b in boxes[source_ref]]}


_Record = tuple[str, int, list[ScoredBox]]  # source-ref, line number, boxes


def _prediction_records(
    stream: Iterable[ManifestLine | RejectedLine], name: str, problems: list[str]
) -> Iterator[_Record]:
    for item in stream:
        if isinstance(item, RejectedLine):
            problems.append(str(item))
            continue
        try:
            source_ref, boxes = parse_prediction_line(item.data)
        except ValidationError as exc:
            problems.append(f"{name}:{item.line_no}: {'; '.join(exc.problems)}")
            continue
        yield source_ref, item.line_no, boxes


def _output_records(
    stream: Iterable[ManifestLine | RejectedLine],
    name: str,
    label_attribute: str | None,
    found: DetectionSet,
    problems: list[str],
) -> Iterator[_Record]:
    """Detection records of an output manifest; failed objects are skipped and listed."""

    def on_reject(reject: Mapping[str, Any]) -> None:
        where = f"{name}:{reject.get('line')}: {reject.get('reason')}: {reject.get('detail')}"
        if reject.get("reason") in _NOT_LABELED:
            found.skipped.append(where)
        else:
            problems.append(where)

    reader = OutputReader(
        want=frozenset({LabelKind.DETECTION}), label_attribute=label_attribute, source=name
    )
    for record in reader.iter_records(stream, on_reject=on_reject):
        if not isinstance(record, DetectionRecord):  # pragma: no cover - want= forbids it
            continue
        boxes = [b if b.score is not None else replace(b, score=0.0) for b in record.boxes]
        yield record.source_ref, record.line_no, boxes
    found.attribute = reader.stats.attribute


def read_detection_set(
    location: Location,
    *,
    label_attribute: str | None = None,
    store: S3Store | None = None,
    coco_reference: Location | None = None,
    coco_predictions: Location | None = None,
) -> DetectionSet:
    """Read per-image boxes from an output manifest, a neutral prediction file or COCO.

    A COCO file (one JSON object with ``images``) is read by
    :func:`gt_toolkit.evaluation.coco_detections.read_coco_detections`; a COCO results list
    (one JSON array) by :func:`~gt_toolkit.evaluation.coco_detections.read_coco_results`,
    against ``coco_reference``, the COCO file its ids refer to (``evaluate`` passes its
    reference).

    Where both sides are COCO, boxes are matched by category id, as pycocotools matches
    them: a COCO file read with a COCO ``coco_reference`` (the predictions), or with
    ``coco_predictions`` (the reference, when the predictions are a COCO file or results
    list), labels a name that several category ids share ``name (id N)`` on both sides
    (:func:`~gt_toolkit.evaluation.coco_detections.category_labels`). Read alone, or against
    a manifest, which has only names, such a name is an error.

    The kind is decided by the first line: a ``boxes`` *list* means the prediction format
    (a bounding-box label value is an object, so an attribute named ``boxes`` is not
    mistaken for it). Output manifests go through
    :class:`gt_toolkit.formats.output_manifest.OutputReader`
    (label attribute by its ``-metadata`` partner, newest by ``creation-date`` unless
    named; boxes clipped to ``image_size``); scores are ``objects[].confidence``, 0.0 when
    absent, as Ground Truth writes for one worker per object. Failed objects
    (``failure-reason``) are skipped and listed in ``skipped``; anything else unreadable is
    an error, because dropping an image silently would change the scores.

    Raises:
        ValidationError: unparsable lines, duplicated ``source-ref`` values, malformed labels
            or predictions, listing every problem with its line number; a COCO results list
            without a COCO ``coco_reference``, naming what it needs.
        ConversionError: the chosen label attribute is not object detection.
    """
    from gt_toolkit.evaluation.coco_detections import (
        is_coco_file,
        is_results_list,
        read_coco_detections,
        read_coco_results,
    )

    if is_results_list(location, store=store):
        if coco_reference is None or not is_coco_file(coco_reference, store=store):
            raise ValidationError(
                [
                    f"{location} is a COCO results list, whose image_id and category_id refer "
                    "to a COCO file: evaluate it against that file (gt-convert evaluate "
                    "RESULTS COCO_FILE), or convert it with gt-convert from-coco RESULTS "
                    "--coco-reference COCO_FILE --image-prefix PREFIX -o predictions.manifest"
                ],
                what=os.fspath(location),
            )
        if label_attribute is not None:
            raise ValidationError([f"{location}: a COCO results list has no label attribute"])
        coco = read_coco_results(location, coco_reference, store=store)
        order = coco.image_order
        return DetectionSet(
            boxes=coco.boxes, kind="coco-results", skipped=coco.skipped, image_order=order
        )
    if is_coco_file(location, store=store):
        if label_attribute is not None:
            raise ValidationError([f"{location}: a COCO file has no label attribute to choose"])
        other = coco_reference if coco_reference is not None else coco_predictions
        partner = other if other is not None and is_coco_file(other, store=store) else None
        results = coco_predictions is not None and is_results_list(coco_predictions, store=store)
        by_id = partner is not None or results
        coco = read_coco_detections(location, store=store, by_id=by_id, partner=partner)
        return DetectionSet(
            boxes=coco.boxes, kind="coco", skipped=coco.skipped, image_order=coco.image_order
        )
    name = os.fspath(location)
    items = parse_manifest_lines(iter_raw_lines(location, store=store), source=name)
    first: ManifestLine | None = None
    buffered: list[ManifestLine | RejectedLine] = []
    for item in items:
        buffered.append(item)
        if isinstance(item, ManifestLine):
            first = item
            break
    stream = itertools.chain(buffered, items)
    is_predictions = first is not None and isinstance(first.data.get("boxes"), list)
    found = DetectionSet(boxes={}, kind="predictions" if is_predictions else "output-manifest")
    problems: list[str] = []
    lines: dict[str, int] = {}
    if is_predictions:
        records = _prediction_records(stream, name, problems)
    else:
        records = _output_records(stream, name, label_attribute, found, problems)
    for source_ref, line_no, boxes in records:
        if source_ref in lines:
            problems.append(
                f"{name}:{line_no}: duplicate source-ref {source_ref} "
                f"(first on line {lines[source_ref]})"
            )
            continue
        lines[source_ref] = line_no
        found.boxes[source_ref] = boxes
    if problems:
        raise ValidationError(problems, what=name)
    return found
