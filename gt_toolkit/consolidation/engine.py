"""Consolidate several workers' boxes on one image into one set of labelled boxes.

Why not Weighted Boxes Fusion: WBF merges greedily and is only right when each cluster holds
at most one box per source (its author says so in ZFTurbo/Weighted-Boxes-Fusion PR #25);
crowd workers routinely draw two boxes on one object. Here a cluster is a *matching*: it
never holds two boxes of one worker. See ``docs/ground-truth-formats.md`` §7.

Algorithm (pure, deterministic):

1. **Clean.** Every box is checked; a bad one is dropped with a recorded reason (see
   :class:`DropReason`) and never fails the image: malformed, missing or unknown label,
   NaN/inf, zero or negative size, outside the image (or clipped to it), duplicates from one
   worker (same label, IoU >= ``duplicate_iou``).
2. **Canonical order.** Boxes are sorted by coordinates, label and a worker rank derived from
   each worker's own sorted boxes, never by input position, so any permutation of workers or
   of boxes gives the same result.
3. **Cluster by geometry.** Overlapping pairs come from a band sweep (near-linear); pairs
   of boxes from *different* workers with IoU >= ``iou_threshold`` are linked. A connected
   component of links is one cluster when it is a clique of distinct workers, or when,
   after each worker keeps only its box nearest the component's mean box, every kept box
   reaches the threshold with the kept boxes' mean and the extra boxes are at most half
   as many as the kept ones (each extra box, a worker's second box on the object or a stray one,
   becomes a singleton). Other components are merged greedily by descending IoU (ties by
   canonical order): two clusters merge when every cross pair is linked or their mean
   boxes reach the threshold, and they share no worker or fewer workers than the smaller
   one has members (each shared worker then keeps its box nearer the merged mean box).
   A cluster never holds two boxes of one worker, and a duplicate drawer cannot split
   the other workers' cluster in two.
4. **Second boxes.** A cluster whose every member reaches ``iou_threshold`` with its own
   worker's box in a *larger* cluster, or with that cluster's mean box, is those workers
   drawing the object again: its boxes are dropped as ``duplicate`` (when a worker has two
   boxes on one component, the one whose label agrees with the component's most common
   label joins the cluster). So is the later of one worker's two lone boxes that reach
   the threshold, when several workers answered (nobody corroborates a second object),
   and the less agreed of two equal clusters of the same workers whose mean boxes are
   closer than their members are (everyone drew the object twice).
5. **Vote and keep.** With ``quorum="box"`` (default) a cluster drawn by at least
   ``min_support`` workers is kept (default: a strict majority of the workers who
   answered, 1 when one answered; capped at the number who answered) with the label
   voted inside it (weighted by worker weight): a worker who picked the wrong label still
   helps place the box. Ties go to the label listed first in ``labels``, else the
   alphabetically first. With ``quorum="label"`` the support is counted per label (a
   worker's second box with another label also votes): one box per label at least
   ``min_support`` workers gave, all on the cluster's fused box.
6. **Fuse** the member edges by (weighted) mean or median, and **score** (see
   :func:`consolidate_image` for the confidence formula).

Speed: all per-box work is whole-array numpy (about a hundred calls per image) except the
greedy merge, which only sees the few components that are not coherent.
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
from gt_toolkit.consolidation.fusion import fuse_clusters, member_weights
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
    """Consolidate one image's worker answers (algorithm in the module docstring).

    Args:
        answers: one entry per worker who answered, each a list of
            ``{"label", "left", "top", "width", "height"}`` boxes; an empty list is a worker
            who drew nothing (and still counts towards the majority).
        settings: threshold, support, fusion and clipping.
        labels: the job's label list; boxes with other labels are dropped
            (``unknown-label``) and it breaks label-vote ties. ``None`` accepts any label.
        image_size: clip (or drop) boxes against it; ``None`` skips the image-border check.
        weights: one non-negative weight per worker (for example from
            :mod:`gt_toolkit.consolidation.worker_quality`); they weight fusion, label votes and
            the support
            share of the confidence. ``None`` = equal weights.

    Returns:
        The :class:`ImageConsolidation`. Confidence of each box, in ``[0, 1]``, ranks
        clusters by how likely they are real: support share first, agreement second::

            s = member weight / total weight   # support share; k / N unweighted
            q = mean pairwise IoU of the k members       # geometric agreement (0 if k = 1)
                x weight of the winning label / member weight   # label agreement
            confidence = s * (1 - (1 - q) / (2 * k))

        Unweighted this is ``(k - (1 - q) / 2) / N``: it lies in ``[(k - 1/2) / N, k / N]``,
        so a cluster drawn by more workers always ranks above one drawn by fewer, and
        agreement orders clusters of equal support. ``N`` identical boxes score 1.0; a
        single-member cluster (kept by ``min_support=1``) scores ``1 / (2N)``, above 0.
        The confidence is ``0.0`` only when exactly one worker answered the image, to
        match Ground Truth (which reports 0.00 for one worker). With ``quorum="label"``
        each label's box is scored from the workers who gave that label: ``s`` and ``k``
        count them, and with ``p`` their share of the cluster's weight,
        ``q = mean pairwise IoU x p - (1 - p)``: the members who gave another label
        dissent, so a contested label scores lower than the same box uncontested (within
        ``[(k - 1) / N, k / N]``), and one worker's label that the others contradict
        ranks below a lone box nobody contradicts (crowds miss objects more often than
        they mislabel them).

    Raises:
        ConsolidationError: ``weights`` has the wrong length or a negative or non-finite
            value. Dirty boxes never raise; they are listed in ``dropped``.

    Examples:
        >>> a = [{"label": "car", "left": 10, "top": 10, "width": 20, "height": 20}]
        >>> b = [{"label": "car", "left": 12, "top": 10, "width": 20, "height": 20}]
        >>> r = consolidate_image([a, b])
        >>> r.boxes[0]["left"], r.boxes[0]["width"], round(r.boxes[0]["confidence"], 3)
        (11.0, 20.0, 0.955)
    """
    evidence = None
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
    """
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
        floor = 1 if evidence is not None else default_min_support(n)
        need = min(settings.min_support or floor, n)
        by_label = settings.quorum == "label" and len(clean.labels) > 1
        smallest = 1 if explain or by_label else need
        repeats = find_repeats(clean, clusters, threshold, n, smallest)
        ballot = count_votes(clean, clusters, repeats, need, by_label, evidence)
        if explain and not ballot.kept.all():
            result.dropped += below_quorum_records(clean, clusters, ballot, repeats, n, need)
        if ballot.kept.any():
            fusion_weights = evidence.weights.tolist() if evidence is not None else w_all
            mw = member_weights(clean, clusters, fusion_weights)
            total = float(sum(w_all)) if w_all is not None else float(n)
            verdict = score_boxes(clean, clusters, ballot, mw.per_box, mw.per_cluster, total, n)
            weighted = fusion_weights is not None
            fused = fuse_clusters(clean, clusters, ballot.kept, mw, settings.fusion, weighted)
            verdict = _in_output_order(verdict, fused)
            result.boxes = _output_boxes(verdict, fused, clean.labels)
            if explain:
                result.clusters = _members(clean, clusters, ballot, repeats, verdict)
    result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return result


def _checked_weights(weights: Sequence[float] | None, n: int) -> list[float] | None:
    """The weights as floats; ``None`` for equal weights (also when all are 0).

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
    return w_all if sum(w_all) > 0 else [1.0] * n


def _in_output_order(verdict: Verdict, fused: FloatArray) -> Verdict:
    """Sorted by top edge, left edge and label; ties stay in canonical order."""
    order = np.lexsort((verdict.labels, fused[0][verdict.rows], fused[1][verdict.rows]))
    return Verdict(verdict.rows[order], verdict.labels[order], verdict.confidence[order])


def _output_boxes(
    verdict: Verdict, fused: FloatArray, labels: tuple[str, ...]
) -> list[ConsolidatedBox]:
    names = [labels[k] for k in verdict.labels.tolist()]
    x1s, y1s, x2s, y2s = fused[:, verdict.rows].tolist()
    return [
        {"label": lab, "left": a, "top": b, "width": c - a, "height": d - b, "confidence": p}
        for lab, a, b, c, d, p in zip(
            names, x1s, y1s, x2s, y2s, verdict.confidence.tolist(), strict=True
        )
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
