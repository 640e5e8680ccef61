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
precision, area range "all", no crowd regions, greedy matching of detections in descending
score order to the unmatched reference box of the same class with the highest IoU, and
classes without reference boxes left out of the mean. Differences, all documented choices:

- ``max_detections`` (COCO's ``maxDets``) is per image and class, and defaults to no cap
  (``None``), because labeling jobs and crowded images can exceed COCO's 100; pass 100 to
  reproduce COCO's default number.
- Ties are broken deterministically so results never depend on input order: images are taken
  in ``source_ref`` order, and within an image detections are ordered by descending score,
  then ``left, top, width, height`` (Ground Truth writes 0.0 confidence for every box of a
  single-worker job, so ties are common); reference boxes are ordered by ``left, top, width,
  height``. pycocotools gives the same numbers when fed that order.
"""

from __future__ import annotations

import itertools
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gt_toolkit.consolidation.geometry import iou_matrix
from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.manifest import ManifestLine, RejectedLine, parse_manifest_lines
from gt_toolkit.formats.output_manifest import (
    DetectionRecord,
    LabelKind,
    OutputReader,
    OutputRejectReason,
)
from gt_toolkit.storage.files import Location, iter_raw_lines
from gt_toolkit.storage.s3 import S3Store

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "COCO_RECALL_POINTS",
    "ClassEvaluation",
    "DetectionSet",
    "EvaluationResult",
    "ImageEvaluation",
    "ScoredBox",
    "evaluate_detections",
    "format_evaluation",
    "iter_prediction_lines",
    "parse_prediction_line",
    "read_detection_set",
]

COCO_IOU_THRESHOLDS: npt.NDArray[np.float64] = np.linspace(0.5, 0.95, 10)
"""COCO's IoU thresholds, built as pycocotools builds them (bit for bit)."""
COCO_RECALL_POINTS: npt.NDArray[np.float64] = np.linspace(0.0, 1.0, 101)
"""COCO's 101 recall points for interpolated precision."""

_EPS = float(np.spacing(1))


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoredBox:
    """One labeled box in pixels (top-left origin) with a score (ignored for the reference)."""

    label: str
    left: float
    top: float
    width: float
    height: float
    score: float = 1.0

    def to_json(self) -> dict[str, Any]:
        """The neutral prediction-format box."""
        return asdict(self)


Detections = Mapping[str, Sequence[ScoredBox]]
"""Boxes per image, keyed by ``source-ref``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassEvaluation:
    """Scores for one class; AP is ``None`` when the reference has no box of the class."""

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

    ``miou`` counts every unmatched box on either side as IoU 0 (1.0 when both sides are
    empty), so it falls with misses and false positives; ``matched_iou`` is the mean IoU of
    the matched pairs alone (``None`` without any), which shows how tight the boxes are.
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
    """Everything :func:`evaluate_detections` measured; ``to_json`` is the report."""

    map50: float | None
    map75: float | None
    map: float | None
    precision: float | None
    recall: float | None
    mean_image_miou: float | None
    classes: list[ClassEvaluation]
    images: list[ImageEvaluation]
    iou_threshold: float
    score_threshold: float
    max_detections: int | None
    unknown_images: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``None`` becomes ``null``)."""
        return asdict(self)


@dataclass(slots=True)
class _ClassAccumulator:
    scores: list[npt.NDArray[np.float64]] = field(default_factory=list)
    matched: list[npt.NDArray[np.bool_]] = field(default_factory=list)  # (T, D) per image
    references: int = 0
    detections: int = 0
    tp: int = 0
    fp: int = 0


def _xywh(boxes: Sequence[ScoredBox]) -> npt.NDArray[np.float64]:
    """``(N, 4)`` array of ``left, top, width, height``."""
    if not boxes:
        return np.zeros((0, 4), dtype=np.float64)
    return np.array([[b.left, b.top, b.width, b.height] for b in boxes], dtype=np.float64)


def _det_order(boxes: Sequence[ScoredBox]) -> list[ScoredBox]:
    return sorted(boxes, key=lambda b: (-b.score, b.left, b.top, b.width, b.height))


def _ref_order(boxes: Sequence[ScoredBox]) -> list[ScoredBox]:
    return sorted(boxes, key=lambda b: (b.left, b.top, b.width, b.height))


def _greedy_match(iou: npt.NDArray[np.float64], threshold: float) -> npt.NDArray[np.int64]:
    """For each detection (rows, best first), the reference index it takes, or -1.

    COCO's rule: the unmatched reference with the highest IoU, at least ``threshold``
    (capped at ``1 - 1e-10``); on equal IoU the later reference wins, as in pycocotools.
    """
    n_det, n_ref = iou.shape
    taken = np.zeros(n_ref, dtype=bool)
    out = np.full(n_det, -1, dtype=np.int64)
    floor = min(threshold, 1 - 1e-10)
    for d in range(n_det):
        if n_ref == 0:
            break
        row = np.where(taken, -np.inf, iou[d])
        best = float(row.max())
        if best < floor:
            continue
        m = n_ref - 1 - int(np.argmax(row[::-1] == best))
        taken[m] = True
        out[d] = m
    return out


def _interpolated_ap(
    scores: npt.NDArray[np.float64], matched: npt.NDArray[np.bool_], n_refs: int
) -> npt.NDArray[np.float64]:
    """AP per IoU threshold: COCO's 101-point interpolated precision, averaged.

    ``matched`` is ``(T, D)``; detections are sorted here by score with a stable sort, so
    ties keep the caller's (image, in-image) order.
    """
    order = np.argsort(-scores, kind="mergesort")
    tps = matched[:, order]
    fps = ~tps
    tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
    fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
    n_thr = matched.shape[0]
    ap = np.zeros(n_thr, dtype=np.float64)
    for t in range(n_thr):
        tp, fp = tp_sum[t], fp_sum[t]
        nd = len(tp)
        rc = tp / n_refs
        pr = tp / (fp + tp + _EPS)
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
        values = (b.left, b.top, b.width, b.height, b.score)
        if not all(math.isfinite(v) for v in values):
            problems.append(f"{side} {source_ref} box {i}: non-finite value in {b}")
        elif b.width < 0 or b.height < 0:
            problems.append(f"{side} {source_ref} box {i}: negative width or height in {b}")
    return problems


def evaluate_detections(
    detections: Detections,
    reference: Detections,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
    max_detections: int | None = None,
) -> EvaluationResult:
    """Compare detections with reference boxes, per class and per image.

    The reference decides which images count: an image it lists without a detection entry
    has every box missed; detections on images it does not list are left out and named in
    ``unknown_images`` (usually a bucket or prefix mismatch worth seeing).

    Args:
        detections: boxes with scores per ``source-ref`` (a model's or another labeling run's).
        reference: the trusted boxes per ``source-ref``; their scores are ignored.
        iou_threshold: IoU for precision/recall at ``score_threshold`` (AP uses COCO's ten).
        score_threshold: detections scoring below it are dropped for precision, recall and
            the per-image IoU; AP always ranks all of them.
        max_detections: keep at most this many best-scored detections per image and class
            (COCO's ``maxDets``); ``None`` keeps all.

    Returns:
        Per-class AP@0.5, AP@0.75 and AP@[.5:.95], their means over classes with reference
        boxes, micro-averaged precision/recall, and per-image IoU, worst image first.

    Raises:
        ValidationError: non-finite or negative-size boxes, or a bad threshold.

    Examples:
        >>> box = ScoredBox(label="ball", left=10, top=10, width=20, height=20)
        >>> evaluate_detections({"a.jpg": [box]}, {"a.jpg": [box]}).map50
        1.0
    """
    problems: list[str] = []
    if not 0.0 <= iou_threshold <= 1.0:
        problems.append(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    if max_detections is not None and max_detections < 1:
        problems.append(f"max_detections must be >= 1 or None, got {max_detections}")
    for ref, boxes in reference.items():
        problems.extend(_check_boxes(ref, boxes, "reference"))
    for ref, boxes in detections.items():
        problems.extend(_check_boxes(ref, boxes, "detection"))
    if problems:
        raise ValidationError(problems, what="evaluation input")

    images = sorted(reference)
    unknown = sorted(set(detections) - set(reference))
    labels = sorted(
        {b.label for boxes in reference.values() for b in boxes}
        | {b.label for r in images for b in detections.get(r, ())}
    )
    acc = {label: _ClassAccumulator() for label in labels}
    per_image: list[ImageEvaluation] = []
    for source_ref in images:
        refs_by_label: dict[str, list[ScoredBox]] = defaultdict(list)
        dets_by_label: dict[str, list[ScoredBox]] = defaultdict(list)
        for b in reference[source_ref]:
            refs_by_label[b.label].append(b)
        for b in detections.get(source_ref, ()):
            dets_by_label[b.label].append(b)
        iou_sum, matched, n_ref, n_det = 0.0, 0, 0, 0
        for label in sorted(set(refs_by_label) | set(dets_by_label)):
            refs = _ref_order(refs_by_label[label])
            dets = _det_order(dets_by_label[label])[:max_detections]
            iou = iou_matrix(_xywh(dets), _xywh(refs), xywh=True)
            a = acc[label]
            a.references += len(refs)
            if dets:
                scores = np.array([d.score for d in dets], dtype=np.float64)
                a.scores.append(scores)
                a.matched.append(
                    np.stack([_greedy_match(iou, float(t)) >= 0 for t in COCO_IOU_THRESHOLDS])
                )
            kept = np.array([d.score >= score_threshold for d in dets], dtype=bool)
            iou_kept = iou[kept]
            hits = _greedy_match(iou_kept, iou_threshold) >= 0
            a.detections += int(kept.sum())
            a.tp += int(hits.sum())
            a.fp += int((~hits).sum())
            # Per-image IoU: one-to-one, any overlap counts, unmatched boxes add 0.
            pairs = _greedy_match(iou_kept, 0.0)
            overlap = pairs >= 0
            pair_ious = iou_kept[np.nonzero(overlap)[0], pairs[overlap]]
            positive = pair_ious > 0
            iou_sum += float(pair_ious[positive].sum())
            matched += int(positive.sum())
            n_ref += len(refs)
            n_det += int(kept.sum())
        denominator = n_ref + n_det - matched
        per_image.append(
            ImageEvaluation(
                source_ref=source_ref,
                miou=iou_sum / denominator if denominator else 1.0,
                matched_iou=iou_sum / matched if matched else None,
                matched=matched,
                references=n_ref,
                detections=n_det,
                missed=n_ref - matched,
                false_positives=n_det - matched,
            )
        )

    thr_50 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.5)))
    thr_75 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.75)))
    classes: list[ClassEvaluation] = []
    for label in labels:
        a = acc[label]
        ap: npt.NDArray[np.float64] | None = None
        if a.references:
            if a.scores:
                ap = _interpolated_ap(
                    np.concatenate(a.scores), np.concatenate(a.matched, axis=1), a.references
                )
            else:
                ap = np.zeros(len(COCO_IOU_THRESHOLDS))
        classes.append(
            ClassEvaluation(
                label=label,
                ap50=float(ap[thr_50]) if ap is not None else None,
                ap75=float(ap[thr_75]) if ap is not None else None,
                ap=float(np.mean(ap)) if ap is not None else None,
                references=a.references,
                detections=a.detections,
                true_positives=a.tp,
                false_positives=a.fp,
                false_negatives=a.references - a.tp,
                precision=_ratio(a.tp, a.tp + a.fp),
                recall=_ratio(a.tp, a.references),
            )
        )
    per_image.sort(key=lambda r: (r.miou, r.source_ref))
    tp = sum(c.true_positives for c in classes)
    fp = sum(c.false_positives for c in classes)
    n_refs = sum(c.references for c in classes)
    return EvaluationResult(
        map50=_mean(c.ap50 for c in classes),
        map75=_mean(c.ap75 for c in classes),
        map=_mean(c.ap for c in classes),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, n_refs),
        mean_image_miou=_mean(r.miou for r in per_image),
        classes=classes,
        images=per_image,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        max_detections=max_detections,
        unknown_images=unknown,
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_evaluation(result: EvaluationResult, *, worst: int = 10) -> str:
    """A plain-text report: the class table, the means, and the ``worst`` images."""
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
    lines = [_table(head, rows)]
    lines.append(
        f"P/R at IoU {result.iou_threshold:g}, score >= {result.score_threshold:g}; "
        f"max detections per image and class: {result.max_detections or 'all'}; "
        f"mean per-image mIoU: {_fmt(result.mean_image_miou)}"
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
    if result.unknown_images:
        lines.append(
            f"{len(result.unknown_images)} detection image(s) not in the reference were "
            f"ignored, e.g. {result.unknown_images[0]}"
        )
    return "\n".join(lines)


def _table(head: list[str], rows: list[list[str]]) -> str:
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
    kind: str  # "output-manifest" or "predictions"
    attribute: str | None = None
    skipped: list[str] = field(default_factory=list)


def parse_prediction_line(data: Mapping[str, Any]) -> tuple[str, list[ScoredBox]]:
    """One neutral-format prediction line -> ``(source_ref, boxes)``.

    Raises:
        ValueError: no ``source-ref``, ``boxes`` not a list, or a malformed box.
    """
    source_ref = data.get("source-ref")
    if not isinstance(source_ref, str):
        raise ValueError("no 'source-ref' string")
    raw = data.get("boxes")
    if not isinstance(raw, list):
        raise ValueError("'boxes' must be a list of {label, left, top, width, height, score}")
    boxes = []
    for i, b in enumerate(raw):
        try:
            boxes.append(
                ScoredBox(
                    label=str(b["label"]),
                    left=float(b["left"]),
                    top=float(b["top"]),
                    width=float(b["width"]),
                    height=float(b["height"]),
                    score=float(b.get("score", b.get("confidence", 1.0))),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"box {i} is malformed: {b!r}") from exc
    return source_ref, boxes


def iter_prediction_lines(
    boxes: Mapping[str, Sequence[ScoredBox]],
) -> Iterator[dict[str, Any]]:
    """Per-image boxes -> neutral prediction-format records, in ``source-ref`` order."""
    for source_ref in sorted(boxes):
        yield {"source-ref": source_ref, "boxes": [b.to_json() for b in boxes[source_ref]]}


def read_detection_set(
    location: Location,
    *,
    label_attribute: str | None = None,
    store: S3Store | None = None,
) -> DetectionSet:
    """Read per-image boxes from an output manifest or a neutral prediction file.

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
            or predictions, listing every problem with its line number.
        ConversionError: the chosen label attribute is not object detection.
    """
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

    def add(source_ref: str, line_no: int, boxes: list[ScoredBox]) -> None:
        if source_ref in lines:
            problems.append(
                f"{name}:{line_no}: duplicate source-ref {source_ref} "
                f"(first on line {lines[source_ref]})"
            )
            return
        lines[source_ref] = line_no
        found.boxes[source_ref] = boxes

    if is_predictions:
        for item in stream:
            if isinstance(item, RejectedLine):
                problems.append(str(item))
                continue
            try:
                source_ref, boxes = parse_prediction_line(item.data)
            except ValueError as exc:
                problems.append(f"{name}:{item.line_no}: {exc}")
                continue
            add(source_ref, item.line_no, boxes)
    else:

        def on_reject(reject: Mapping[str, Any]) -> None:
            where = f"{name}:{reject.get('line')}: {reject.get('reason')}: {reject.get('detail')}"
            if reject.get("reason") == OutputRejectReason.FAILED_OBJECT.value:
                found.skipped.append(where)
            else:
                problems.append(where)

        reader = OutputReader(
            want=frozenset({LabelKind.DETECTION}), label_attribute=label_attribute, source=name
        )
        for record in reader.iter_records(stream, on_reject=on_reject):
            if not isinstance(record, DetectionRecord):  # pragma: no cover - want= forbids it
                continue
            add(
                record.source_ref,
                record.line_no,
                [
                    ScoredBox(
                        label=b.label,
                        left=b.left,
                        top=b.top,
                        width=b.width,
                        height=b.height,
                        score=b.confidence if b.confidence is not None else 0.0,
                    )
                    for b in record.boxes
                ],
            )
        found.attribute = reader.stats.attribute
    if problems:
        raise ValidationError(problems, what=name)
    return found
