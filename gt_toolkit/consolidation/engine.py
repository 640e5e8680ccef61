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

from gt_toolkit.consolidation.clean import (
    CleanBoxes,
    IntArray,
    Together,
    clean_boxes,
    clean_together,
)
from gt_toolkit.consolidation.clusters import Clusters, cluster_boxes
from gt_toolkit.consolidation.fusion import (
    Images,
    fuse_clusters,
    inner_pairs,
    member_weights,
    without_bias,
)
from gt_toolkit.consolidation.geometry import FloatArray, far_corner
from gt_toolkit.consolidation.repeats import find_repeats
from gt_toolkit.consolidation.settings import (
    ConsolidationSettings,
    DropReason,
    Fusion,
    Quorum,
    default_min_support,
)
from gt_toolkit.consolidation.votes import (
    LEAST_WEIGHT,
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
    "consolidate_boxes_batch",
    "consolidate_image",
    "consolidate_images",
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


def consolidate_images(
    images: Sequence[Sequence[Sequence[WorkerBox]]],
    *,
    settings: ConsolidationSettings = _DEFAULTS,
    labels: Sequence[str] | None = None,
    image_sizes: Sequence[ImageSize | None] | None = None,
    weights: Sequence[Sequence[float] | None] | None = None,
    worker_model: WorkerModel | None = None,
    annotators: Sequence[Sequence[str]] | None = None,
) -> list[ImageConsolidation]:
    """:func:`consolidate_image` of each of several images, faster.

    Each result is the one :func:`consolidate_image` gives that image, bit for bit. Images
    of up to a few hundred boxes go through each phase together, in one numpy call for
    several images: at 3 workers and 100 objects an image that is about 40% less time per
    image (numpy's cost per call is most of an image's time there). ``image_sizes``,
    ``weights`` and ``annotators`` hold one entry per image (``None``: none for all); with
    a ``worker_model`` each image's evidence is its own annotators'.

    Raises:
        ConsolidationError: as :func:`consolidate_image` does for any of the images.
    """
    sizes, given = _per_image(images, image_sizes, weights)
    evidences: list[Evidence | None] = [None] * len(images)
    if worker_model is not None or settings.keep == "model":
        if annotators is not None and len(annotators) != len(images):
            raise ConsolidationError(
                f"got {len(annotators)} annotator lists for {len(images)} images"
            )
        try:
            evidences = _evidences(images, given, worker_model, annotators)
        # one by one: each image's own error, the first first (any error here: a later
        # image's evidence, or a None for its annotators, must not come before an earlier
        # image's own mistake, nor raise otherwise than that image alone does)
        except Exception:
            return [
                consolidate_image(
                    a,
                    settings=settings,
                    labels=labels,
                    image_size=size,
                    weights=w,
                    worker_model=worker_model,
                    annotators=annotators[k] if annotators is not None else None,
                )
                for k, (a, size, w) in enumerate(zip(images, sizes, given, strict=True))
            ]
    return _in_groups(images, settings, labels, sizes, given, evidences, explain=True)


def _evidences(
    images: Sequence[Sequence[Sequence[WorkerBox]]],
    weights: Sequence[Sequence[float] | None],
    worker_model: WorkerModel | None,
    annotators: Sequence[Sequence[str]] | None,
) -> list[Evidence | None]:
    """Each image's evidence from the worker model, checked as :func:`consolidate_image` does.

    Raises:
        ConsolidationError: any image's worker-model arguments are wrong; whatever else a
            wrong argument or the model's evidence raises (the caller goes one by one).
    """
    if worker_model is None or annotators is None:
        raise ConsolidationError("a worker model and one annotator list per image are needed")
    out: list[Evidence | None] = []
    for answers, w, names in zip(images, weights, annotators, strict=True):
        if w is not None or len(names) != len(answers):
            raise ConsolidationError("wrong weights or annotators for an image")
        out.append(worker_model.evidence(names))
    return out


def consolidate_boxes_batch(
    images: Sequence[Sequence[Sequence[WorkerBox]]],
    *,
    iou_threshold: float = 0.5,
    min_support: int | None = None,
    fusion: Fusion = "huber",
    clip: bool = True,
    labels: Sequence[str] | None = None,
    image_sizes: Sequence[ImageSize | None] | None = None,
    weights: Sequence[Sequence[float] | None] | None = None,
    quorum: Quorum = "label",
) -> list[list[ConsolidatedBox]]:
    """:func:`consolidate_boxes` of each of several images, faster.

    One list of boxes per image, each bit for bit what :func:`consolidate_boxes` gives
    (see :func:`consolidate_images`).
    """
    settings = _cached_settings(iou_threshold, min_support, fusion, clip, quorum)
    sizes, given = _per_image(images, image_sizes, weights)
    results = _in_groups(
        images, settings, labels, sizes, given, [None] * len(images), explain=False
    )
    return [result.boxes for result in results]


def _per_image(
    images: Sequence[Sequence[Sequence[WorkerBox]]],
    image_sizes: Sequence[ImageSize | None] | None,
    weights: Sequence[Sequence[float] | None] | None,
) -> tuple[Sequence[ImageSize | None], Sequence[Sequence[float] | None]]:
    """The per-image sizes and weights (``None`` for all: none for each), lengths checked."""
    sizes = [None] * len(images) if image_sizes is None else image_sizes
    given = [None] * len(images) if weights is None else weights
    for what, values in (("image sizes", sizes), ("weight lists", given)):
        if len(values) != len(images):
            raise ConsolidationError(f"got {len(values)} {what} for {len(images)} images")
    return sizes, given


# An image of more boxes goes alone (past it its own overlap search and sorts cost more than
# sharing saves: at ~480 boxes an image, 8 to a pass, sharing saved 10-15%; at ~700, 5 to a
# pass, nothing), and a pass takes at most _GROUP_BOXES boxes: past ~5,000 its arrays leave
# the cache and pass glibc's 128 KiB mmap threshold, and each pass got slower per box.
_ALONE_FROM, _GROUP_BOXES = 640, 4096


def _in_groups(
    images: Sequence[Sequence[Sequence[WorkerBox]]],
    settings: ConsolidationSettings,
    labels: Sequence[str] | None,
    sizes: Sequence[ImageSize | None],
    weights: Sequence[Sequence[float] | None],
    evidences: Sequence[Evidence | None],
    *,
    explain: bool,
) -> list[ImageConsolidation]:
    """:func:`_consolidate_many` over groups of consecutive images (see the limits above)."""
    results: list[ImageConsolidation] = []
    start, boxes = 0, 0
    for k in range(len(images) + 1):  # k == len(images): the end, where the last group goes
        count = _box_count(images[k]) if k < len(images) else _ALONE_FROM
        if k > start and (count >= _ALONE_FROM or boxes + count > _GROUP_BOXES):
            group = slice(start, k)
            results += _consolidate_many(
                images[group],
                settings,
                labels,
                sizes[group],
                weights[group],
                evidences[group],
                explain=explain,
            )
            start, boxes = k, 0
        if k < len(images) and count >= _ALONE_FROM:
            results.append(
                _consolidate(
                    images[k], settings, labels, sizes[k], weights[k], evidences[k], explain=explain
                )
            )
            start = k + 1
        else:
            boxes += count
    return results


def _box_count(answers: Sequence[Sequence[WorkerBox]]) -> int:
    """The boxes of one image's answers (a caller's wrong shape counts as none here)."""
    try:
        return sum(map(len, answers))
    except TypeError:
        return 0


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
            placed = clean
            if evidence is not None:
                far = far_corner(image_size) if image_size is not None else None
                placed = without_bias(clean, evidence.bias, far)
            fused = fuse_clusters(placed, clusters, ballot.kept, mw, settings.fusion, pairs)
            verdict, corners = _in_output_order(verdict, fused)
            result.boxes = _output_boxes(verdict, corners, clean.labels)
            if explain:
                result.clusters = _members(clean, clusters, ballot, repeats, verdict)
    if len(result.dropped) > 1:
        result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return result


def _consolidate_many(
    images: Sequence[Sequence[Sequence[WorkerBox]]],
    settings: ConsolidationSettings,
    labels: Sequence[str] | None,
    image_sizes: Sequence[ImageSize | None],
    weights: Sequence[Sequence[float] | None],
    evidences: Sequence[Evidence | None],
    *,
    explain: bool,
) -> list[ImageConsolidation]:
    """:func:`_consolidate` of each image, the images' phases run together where they can.

    Every image's result is the one it gets alone, bit for bit. Together: images with an
    answer whose boxes :func:`~gt_toolkit.consolidation.clean.clean_together` takes, all
    with weights or all without; the others go one by one.
    """
    if isinstance(labels, str):  # a str is a sequence of one-letter labels
        raise ConsolidationError(f"labels must be a list of names, not the string {labels!r:.40}")
    try:
        checked = [_checked_weights(w, len(a)) for a, w in zip(images, weights, strict=True)]
    except (ConsolidationError, TypeError):  # one by one: an earlier image's error comes first
        checked = []
    todo = [k for k, answers in enumerate(images) if len(answers)] if checked else []
    together = None
    if len(todo) > 1 and len({checked[k] is None for k in todo}) == 1:
        try:
            together = clean_together(
                [images[k] for k in todo],
                labels,
                [image_sizes[k] for k in todo],
                [checked[k] or [1.0] * len(images[k]) for k in todo],
                settings,
            )
        except ConsolidationError:  # a caller's mistake: raised below, for its own image
            together = None
    if together is None:
        return [
            _consolidate(a, settings, labels, size, w, ev, explain=explain)
            for a, size, w, ev in zip(images, image_sizes, weights, evidences, strict=True)
        ]
    results = [ImageConsolidation(workers=len(answers)) for answers in images]
    todo = [todo[k] for k in together.members]
    alone = set(range(len(images))) - set(todo)
    for k in alone:
        results[k] = _consolidate(
            images[k], settings, labels, image_sizes[k], weights[k], evidences[k], explain=explain
        )
    parts = _decide_together(
        together,
        settings,
        [len(images[k]) for k in todo],
        [checked[k] for k in todo],
        [evidences[k] for k in todo],
        [image_sizes[k] for k in todo],
        explain,
    )
    for k, (boxes, dropped, members) in zip(todo, parts, strict=True):
        result = results[k]
        result.boxes, result.dropped, result.clusters = boxes, dropped, members
        if len(result.dropped) > 1:
            result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return results


_Parts = tuple[list[ConsolidatedBox], list[dict[str, Any]], list[list[tuple[int, int]]]]


def _decide_together(
    together: Together,
    settings: ConsolidationSettings,
    answered: list[int],
    weights: list[list[float] | None],
    evidences: list[Evidence | None],
    sizes: list[ImageSize | None],
    explain: bool,
) -> list[_Parts]:
    """The phases after cleaning, for the images of ``together`` at once (see ``_consolidate``).

    Each image keeps its own worker count, quorum, total weight, Huber scale and, with a
    worker model, its evidence (``evidences``: all ``None`` or none).
    """
    clean, image, first = together.clean, together.image, together.first_worker
    count_of = len(answered)
    threshold = settings.iou_threshold
    clusters, of_cluster, cluster_bounds = _by_image(
        cluster_boxes(clean, threshold), image, count_of
    )
    evidence = _joined(evidences, of_cluster)
    decides = evidence if settings.keep == "model" else None
    floor = [1 if decides is not None else default_min_support(n) for n in answered]
    need = [min(settings.min_support or f, n) for f, n in zip(floor, answered, strict=True)]
    by_label = settings.quorum == "label" and len(clean.labels) > 1
    smallest = [1] * count_of if explain or by_label else need
    n_of = np.array(answered, dtype=np.intp)
    repeats = find_repeats(
        clean, clusters, threshold, n_of.take(image), np.array(smallest, dtype=np.intp).take(image)
    )
    ballot = count_votes(
        clean, clusters, repeats, np.array(need, dtype=np.intp).take(of_cluster), by_label, decides
    )
    below: list[dict[str, Any]] = []
    if explain and np.count_nonzero(ballot.kept) < len(ballot.kept):
        below = below_quorum_records(clean, clusters, ballot, repeats, answered, need, image)
    boxes: list[ConsolidatedBox] = []
    members: list[list[tuple[int, int]]] = []
    row_image: list[int] = []
    if len(ballot.rows):
        if evidence is not None:
            weights = [e.weights.tolist() for e in evidences if e is not None]
        weighted = weights[0] is not None
        fusion_weights = [x for w in weights for x in (w or ())] if weighted else None
        mw = member_weights(clean, clusters, fusion_weights)
        # fsum: exact, so the workers' order cannot move the confidence's last bits
        totals = [
            math.fsum(w) if w is not None else float(n)
            for w, n in zip(weights, answered, strict=True)
        ]
        pairs = inner_pairs(clean, clusters)
        verdict = score_boxes(
            clean,
            clusters,
            ballot,
            pairs,
            mw.per_box,
            mw.per_cluster,
            np.array(totals).take(of_cluster),
            n_of.take(of_cluster),
            void=mw.void,
        )
        pair_bounds = image.take(pairs.lo).searchsorted(np.arange(count_of + 1)).tolist()
        where = Images(cluster_bounds, pair_bounds, of_cluster)
        placed = clean
        if evidence is not None:
            far = None
            if sizes[0] is not None:
                each = [far_corner(size) for size in sizes if size is not None]
                far = np.concatenate(each, axis=1).take(image, axis=1)
            placed = without_bias(clean, evidence.bias, far)
        fused = fuse_clusters(placed, clusters, ballot.kept, mw, settings.fusion, pairs, where)
        verdict, corners = _in_output_order(verdict, fused, of_cluster)
        boxes = _output_boxes(verdict, corners, clean.labels)
        row_image = of_cluster.take(verdict.rows).tolist()
        if explain:
            members = [
                [(w - first[k], b) for w, b in group]
                for group, k in zip(
                    _members(clean, clusters, ballot, repeats, verdict), row_image, strict=True
                )
            ]
    parts: list[_Parts] = [([], list(dropped), []) for dropped in together.dropped]
    for i, k in enumerate(row_image):
        parts[k][0].append(boxes[i])
        if explain:
            parts[k][2].append(members[i])
    for record in below:
        k = int(np.searchsorted(first, record["worker"], side="right")) - 1
        record["worker"] -= first[k]
        parts[k][1].append(record)
    return parts


def _joined(evidences: list[Evidence | None], of_cluster: IntArray) -> Evidence | None:
    """The images' evidence as one, indexed by global worker (``silent``: per cluster)."""
    if evidences[0] is None:
        return None
    found = [e for e in evidences if e is not None]
    return Evidence(
        np.concatenate([e.drawn for e in found]),
        np.array([e.silent for e in found]).take(of_cluster),
        np.concatenate([e.weights for e in found]),
        np.concatenate([e.bias for e in found]),
    )


def _by_image(
    clusters: Clusters, image: IntArray, images: int
) -> tuple[Clusters, IntArray, list[int]]:
    """The clusters numbered image after image, each image's in their order.

    Also returns each cluster's image and where each image's clusters start.
    """
    of_cluster = np.empty(clusters.count, dtype=np.intp)
    of_cluster[clusters.of] = image
    if np.count_nonzero(of_cluster[1:] < of_cluster[:-1]):
        order = of_cluster.argsort(kind="stable")
        renumber = np.empty(clusters.count, dtype=np.intp)
        renumber[order] = np.arange(clusters.count)
        clusters = Clusters(
            renumber.take(clusters.of),
            clusters.size.take(order),
            clusters.means.take(order, axis=1),
            clusters.component,
            clusters.links,
            clusters.own,
        )
        of_cluster = of_cluster.take(order)
    return clusters, of_cluster, of_cluster.searchsorted(np.arange(images + 1)).tolist()


def _checked_weights(weights: Sequence[float] | None, n: int) -> list[float] | None:
    """The weights as floats scaled to a largest of 1; ``None`` for equal weights.

    All zero counts as equal weights; a weight under :data:`LEAST_WEIGHT` of the largest
    counts as 0.

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
    return [share if (share := x / top) >= LEAST_WEIGHT else 0.0 for x in w_all]


def _in_output_order(
    verdict: Verdict, fused: FloatArray, of_cluster: IntArray | None = None
) -> tuple[Verdict, FloatArray]:
    """Sorted by top edge, left edge and label; ties stay in canonical order.

    Also returns the boxes' fused corners in that order (``x1, y1, x2, y2`` by box).
    Several images (``of_cluster``: each cluster's image): image by image.
    """
    rows, codes, confidence = verdict
    corners = fused.take(rows, axis=1)
    if len(rows) < 2:  # already in order: a third of the time at one box per image
        return verdict, corners
    keys = (codes, corners[0], corners[1])
    order = np.lexsort(keys if of_cluster is None else (*keys, of_cluster.take(rows)))
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
    settings = _cached_settings(iou_threshold, min_support, fusion, clip, quorum)
    return _consolidate(answers, settings, labels, image_size, weights, None, explain=False).boxes


def _cached_settings(
    iou_threshold: float, min_support: int | None, fusion: Fusion, clip: bool, quorum: Quorum
) -> ConsolidationSettings:
    """The settings of these arguments (validated), from the cache where they are hashable."""
    args = (iou_threshold, min_support, fusion, clip, quorum)
    try:
        return _settings(*args)
    except TypeError:  # an unhashable argument: validate it without the cache
        return _settings.__wrapped__(*args)


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
