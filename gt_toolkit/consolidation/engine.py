"""Consolidate several workers' boxes on one image into one set of labelled boxes.

The rules (cleaning, canonical order, clustering, second boxes, quorum, fusion, confidence,
the worker model) are told once, in ``docs/consolidation.md``; rule numbers below refer to
it. This module runs them as phases, each passing a typed value to the next:
:func:`~gt_toolkit.consolidation.clean.clean_boxes` (rules 1-2),
:func:`~gt_toolkit.consolidation.clusters.cluster_boxes` (3),
:func:`~gt_toolkit.consolidation.repeats.find_repeats` (4),
:func:`~gt_toolkit.consolidation.votes.count_votes` and
:func:`~gt_toolkit.consolidation.votes.score_boxes` (5, 7, 8),
:func:`~gt_toolkit.consolidation.fusion.fuse_clusters` (6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from gt_toolkit.consolidation.clean import CleanBoxes, clean_boxes
from gt_toolkit.consolidation.clusters import Clusters, cluster_boxes
from gt_toolkit.consolidation.fusion import (
    fuse_clusters,
    inner_pairs,
    member_weights,
    without_bias,
)
from gt_toolkit.consolidation.geometry import FloatArray
from gt_toolkit.consolidation.repeats import find_repeats
from gt_toolkit.consolidation.settings import (
    ConsolidationSettings,
    DropReason,
    Fusion,
    Quorum,
    default_min_support,
)
from gt_toolkit.consolidation.votes import (
    Ballot,
    Evidence,
    Verdict,
    below_quorum_records,
    count_votes,
    score_boxes,
)
from gt_toolkit.consolidation.worker_model import WorkerModel
from gt_toolkit.errors import ConsolidationError
from gt_toolkit.types import ConsolidatedBox, ImageSize, WorkerBox

__all__ = [
    "ConsolidationSettings",
    "DropReason",
    "Fusion",
    "ImageConsolidation",
    "Quorum",
    "consolidate_boxes",
    "consolidate_image",
    "default_min_support",
]


_DEFAULTS = ConsolidationSettings()


@dataclass
class ImageConsolidation:
    """The result for one image, with everything needed to explain it.

    Attributes:
        boxes: the consolidated boxes, sorted by top edge, left edge and label (ties in
            canonical order, so the order is deterministic too).
        dropped: one record per worker box that is not part of any output box:
            ``{"worker": worker index, "box": box index, "reason": DropReason value,
            "detail": text}``.
        workers: how many workers answered (the ``N`` of the confidence formula).
        clusters: for each output box (same index), its members as
            ``(worker index, box index)`` into the input ``answers``. With
            ``quorum="label"`` the boxes of one cluster share its members, and a worker's
            second box that gave a box's label is listed with that box.
    """

    boxes: list[ConsolidatedBox] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0
    clusters: list[list[tuple[int, int]]] = field(default_factory=list)


def consolidate_image(
    answers: Sequence[Sequence[WorkerBox]],
    *,
    settings: ConsolidationSettings = _DEFAULTS,
    labels: Sequence[str] | None = None,
    image_size: ImageSize | None = None,
    weights: Sequence[float] | None = None,
    worker_model: WorkerModel | None = None,
    annotators: Sequence[str] | None = None,
) -> ImageConsolidation:
    """Consolidate one image's worker answers (the rules of ``docs/consolidation.md``).

    Args:
        answers: one entry per worker who answered, each a list of
            ``{"label", "left", "top", "width", "height"}`` boxes; an empty list is a worker
            who drew nothing (and still counts towards the majority).
        settings: threshold, support, fusion and clipping.
        labels: the job's label list; boxes with other labels are dropped
            (``unknown-label``) and it breaks label-vote ties. ``None`` accepts any label.
        image_size: clip (or drop) boxes against it; ``None`` skips the image-border check.
        weights: one non-negative weight per worker (for example from
            :mod:`gt_toolkit.consolidation.worker_quality`); they weight fusion, label votes
            and the support share of the confidence. ``None`` = equal weights.
        worker_model: per-worker skills (rule 8): they weight fusion and take out each
            worker's bias, and with ``settings.keep="model"`` they also decide and score
            instead of the head count; needs ``annotators``, excludes ``weights``.
        annotators: the worker id of each answer (same order), for ``worker_model``.

    Returns:
        The :class:`ImageConsolidation`; each box's confidence follows rule 7 of
        ``docs/consolidation.md`` (rule 8 with a worker model).

    Raises:
        ConsolidationError: an answer that is not a list of boxes (``None``, a string, a
            dict), ``labels`` given as one string, or an image size that is not positive;
            ``weights`` has the wrong length or a
            negative or non-finite value; a worker model without one annotator per answer,
            or with ``weights``; ``settings.keep="model"`` without a worker model. Dirty
            boxes never raise; they are listed in ``dropped``.

    Examples:
        >>> a = [{"label": "car", "left": 10, "top": 10, "width": 20, "height": 20}]
        >>> b = [{"label": "car", "left": 12, "top": 10, "width": 20, "height": 20}]
        >>> r = consolidate_image([a, b])
        >>> r.boxes[0]["left"], r.boxes[0]["width"], round(r.boxes[0]["confidence"], 3)
        (11.0, 20.0, 0.955)
    """
    evidence = None
    if worker_model is None and settings.keep == "model":
        raise ConsolidationError('keep="model" needs a worker_model: give one, or keep="quorum"')
    if worker_model is not None:
        if weights is not None:
            raise ConsolidationError("give weights or a worker model, not both")
        if annotators is None or len(annotators) != len(answers):
            got = "no" if annotators is None else str(len(annotators))
            raise ConsolidationError(
                f"a worker model needs one annotator id per answer: got {got} for "
                f"{len(answers)} answers"
            )
        evidence = worker_model.evidence(annotators)
    return _consolidate(answers, settings, labels, image_size, weights, evidence, explain=True)


def _consolidate(
    answers: Sequence[Sequence[WorkerBox]],
    settings: ConsolidationSettings,
    labels: Sequence[str] | None,
    image_size: ImageSize | None,
    weights: Sequence[float] | None,
    evidence: Evidence | None,
    *,
    explain: bool,
) -> ImageConsolidation:
    """The body of :func:`consolidate_image`: the phases, one after the other.

    ``explain=False`` skips the clusters and the below-min-support records, which
    :func:`consolidate_boxes` would throw away (about a tenth of the time per image).
    ``evidence`` always fuses; it decides only with ``settings.keep == "model"``.
    """
    if isinstance(labels, str):  # a str is a sequence of one-letter labels
        raise ConsolidationError(f"labels must be a list of names, not the string {labels!r:.40}")
    n = len(answers)
    w_all = _checked_weights(weights, n)
    result = ImageConsolidation(workers=n)
    if n == 0:
        return result
    equal = [1.0] * n
    clean, result.dropped = clean_boxes(answers, labels, image_size, w_all or equal, settings)
    if len(clean):
        threshold = settings.iou_threshold
        clusters = cluster_boxes(clean, threshold)
        decides = evidence if settings.keep == "model" else None
        floor = 1 if decides is not None else default_min_support(n)
        need = min(settings.min_support or floor, n)
        by_label = settings.quorum == "label" and len(clean.labels) > 1
        smallest = 1 if explain or by_label else need
        repeats = find_repeats(clean, clusters, threshold, n, smallest)
        ballot = count_votes(clean, clusters, repeats, need, by_label, decides)
        # count_nonzero: a fifth of the cost of .all()
        if explain and np.count_nonzero(ballot.kept) < len(ballot.kept):
            result.dropped += below_quorum_records(clean, clusters, ballot, repeats, n, need)
        if len(ballot.rows):
            fusion_weights = evidence.weights.tolist() if evidence is not None else w_all
            mw = member_weights(clean, clusters, fusion_weights)
            # fsum: exact, so the workers' order cannot move the confidence's last bits
            total = math.fsum(fusion_weights) if fusion_weights is not None else float(n)
            pairs = inner_pairs(clean, clusters)
            verdict = score_boxes(
                clean, clusters, ballot, pairs, mw.per_box, mw.per_cluster, total, n, void=mw.void
            )
            placed = clean if evidence is None else without_bias(clean, evidence.bias, image_size)
            fused = fuse_clusters(placed, clusters, ballot.kept, mw, settings.fusion, pairs)
            verdict, corners = _in_output_order(verdict, fused)
            result.boxes = _output_boxes(verdict, corners, clean.labels)
            if explain:
                result.clusters = _members(clean, clusters, ballot, repeats, verdict)
    if len(result.dropped) > 1:
        result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return result


_LEAST_WEIGHT = 2.0**-100  # relative to the largest weight: below it, none


def _checked_weights(weights: Sequence[float] | None, n: int) -> list[float] | None:
    """The weights as floats scaled to a largest of 1; ``None`` for equal weights.

    All zero counts as equal weights. A weight under 2^-100 of the largest counts as 0: as a
    near-subnormal, its products with small edges fell to 0 (a fused box of width 0).

    Raises:
        ConsolidationError: the wrong length, or a negative or non-finite weight.
    """
    if weights is None:
        return None
    w_all = [float(x) for x in weights]
    if len(w_all) != n:
        raise ConsolidationError(f"got {len(w_all)} weights for {n} workers")
    if any(not math.isfinite(x) or x < 0 for x in w_all):
        raise ConsolidationError(f"weights must be finite and >= 0, got {w_all}")
    top = max(w_all, default=0.0)
    # only their ratios count: the largest becomes 1, so huge or tiny weights neither
    # overflow nor underflow in the sums and products they go into
    if top <= 0:
        return [1.0] * n
    return [share if (share := x / top) >= _LEAST_WEIGHT else 0.0 for x in w_all]


def _in_output_order(verdict: Verdict, fused: FloatArray) -> tuple[Verdict, FloatArray]:
    """Sorted by top edge, left edge and label; ties stay in canonical order.

    Also returns the boxes' fused corners in that order (``x1, y1, x2, y2`` by box).
    """
    rows, codes, confidence = verdict
    corners = fused.take(rows, axis=1)
    if len(rows) < 2:  # already in order: a third of the time at one box per image
        return verdict, corners
    order = np.lexsort((codes, corners[0], corners[1]))
    # take, not fancy indexing: a third cheaper on these small arrays
    sorted_verdict = Verdict(rows.take(order), codes.take(order), confidence.take(order))
    return sorted_verdict, corners.take(order, axis=1)


def _output_boxes(
    verdict: Verdict, corners: FloatArray, labels: tuple[str, ...]
) -> list[ConsolidatedBox]:
    x1s, y1s, x2s, y2s = corners.tolist()
    codes, confidences = verdict.labels.tolist(), verdict.confidence.tolist()
    return [  # the label looked up here, not in a list of its own: one loop, not two
        {"label": labels[k], "left": a, "top": b, "width": c - a, "height": d - b, "confidence": p}
        for k, a, b, c, d, p in zip(codes, x1s, y1s, x2s, y2s, confidences, strict=True)
    ]


def _members(
    clean: CleanBoxes,
    clusters: Clusters,
    ballot: Ballot,
    repeats: dict[int, int],
    verdict: Verdict,
) -> list[list[tuple[int, int]]]:
    """Each output box's members as ``(worker, box)`` input indices, sorted."""
    cl, size = clusters.of, clusters.size
    span_w, span_b = int(clean.worker.max()) + 1, int(clean.box.max()) + 1
    members_order = ((cl * span_w + clean.worker) * span_b + clean.box).argsort()
    ends = np.cumsum(size)
    starts = ends - size
    pairs_list = list(
        zip(clean.worker[members_order].tolist(), clean.box[members_order].tolist(), strict=True)
    )
    rows = verdict.rows
    out = [pairs_list[s:e] for s, e in zip(starts[rows].tolist(), ends[rows].tolist(), strict=True)]
    if ballot.voted:  # a second box that gave its label joins that label's box
        where = {
            (c, k): i
            for i, (c, k) in enumerate(zip(rows.tolist(), verdict.labels.tolist(), strict=True))
        }
        for g in sorted(ballot.voted):
            i = where[int(cl[repeats[g]]), int(clean.code[g])]
            out[i].append((int(clean.worker[g]), int(clean.box[g])))
    return out


def consolidate_boxes(
    answers: Sequence[Sequence[WorkerBox]],
    *,
    iou_threshold: float = 0.5,
    min_support: int | None = None,
    fusion: Fusion = "huber",
    clip: bool = True,
    labels: Sequence[str] | None = None,
    image_size: ImageSize | None = None,
    weights: Sequence[float] | None = None,
    quorum: Quorum = "label",
) -> list[ConsolidatedBox]:
    """Consolidate one image's worker boxes; the one-call public API.

    ``answers`` has one list of ``{"label", "left", "top", "width", "height"}`` per worker;
    the result is a list of the same boxes plus ``"confidence"``. See
    :func:`consolidate_image` for the rules, the confidence formula and the record of
    dropped boxes.

    Examples:
        >>> w1 = [{"label": "dog", "left": 0, "top": 0, "width": 10, "height": 10}]
        >>> [b["label"] for b in consolidate_boxes([w1, w1, []])]
        ['dog']
    """
    args = (iou_threshold, min_support, fusion, clip, quorum)
    try:
        settings = _settings(*args)
    except TypeError:  # an unhashable argument: validate it without the cache
        settings = _settings.__wrapped__(*args)
    return _consolidate(answers, settings, labels, image_size, weights, None, explain=False).boxes


@lru_cache(maxsize=64)
def _settings(
    iou_threshold: float, min_support: int | None, fusion: Fusion, clip: bool, quorum: Quorum
) -> ConsolidationSettings:
    """One validated (frozen) settings object per combination: images of a job share it."""
    return ConsolidationSettings(
        iou_threshold=iou_threshold,
        min_support=min_support,
        fusion=fusion,
        clip=clip,
        quorum=quorum,
    )
