"""Consolidate several workers' boxes on one image into one set of labelled boxes.

Why not Weighted Boxes Fusion: WBF merges greedily and is only right when each cluster holds
at most one box per source (its author says so in ZFTurbo/Weighted-Boxes-Fusion PR #25);
crowd workers routinely draw two boxes on one object. Here a cluster is a *matching*: it
never holds two boxes of one worker. See ``shared/spec/ground-truth-formats.md`` §7.

Algorithm (pure, deterministic):

1. **Clean.** Every box is checked; a bad one is dropped with a recorded reason (see
   :class:`DropReason`) and never fails the image: malformed, missing or unknown label,
   NaN/inf, zero or negative size, outside the image (or clipped to it), duplicates from one
   worker (same label, IoU >= ``duplicate_iou``).
2. **Canonical order.** Boxes are sorted by coordinates, label and a worker rank derived from
   each worker's own sorted boxes, never by input position, so any permutation of workers or
   of boxes gives the same result.
3. **Cluster by geometry.** Candidate pairs of boxes from *different* workers with IoU >=
   ``iou_threshold`` are found with an x-sweep (near-linear), sorted by IoU (ties by
   canonical order), and merged greedily, agglomerative style, under two constraints: the
   two clusters share no worker, and every cross pair reaches the threshold (complete
   linkage, so clusters do not chain across neighbouring objects).
4. **Vote the label** inside each cluster (weighted by worker weight): a worker who picked the
   wrong label still helps place the box. Ties go to the label listed first in ``labels``,
   else the alphabetically first.
5. **Keep** clusters drawn by at least ``min_support`` workers (default: a strict majority of
   the workers who answered, 1 when one worker answered; capped at the number who answered).
6. **Fuse** the member edges by (weighted) mean or median.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np

from .boxes import FloatArray, candidate_pairs, iou_pairs
from .errors import ConsolidationError
from .types import ConsolidatedBox, ImageSize, WorkerBox

__all__ = [
    "ConsolidationSettings",
    "DropReason",
    "Fusion",
    "ImageConsolidation",
    "consolidate_boxes",
    "consolidate_image",
    "default_min_support",
]

Fusion = Literal["mean", "median"]
_COORDS = ("left", "top", "width", "height")


class DropReason(StrEnum):
    """Why a worker's box did not become (part of) a consolidated box."""

    MALFORMED = "malformed"
    MISSING_LABEL = "missing-label"
    UNKNOWN_LABEL = "unknown-label"
    NON_FINITE = "non-finite"
    NON_POSITIVE_SIZE = "non-positive-size"
    OUTSIDE_IMAGE = "outside-image"
    DUPLICATE = "duplicate"
    BELOW_MIN_SUPPORT = "below-min-support"


@dataclass(frozen=True, slots=True)
class ConsolidationSettings:
    """Tuning knobs of :func:`consolidate_image`.

    Attributes:
        iou_threshold: the IoU two boxes of different workers need to be the same object.
        min_support: workers needed to keep a cluster; ``None`` = strict majority of the
            workers who answered (1 when one answered).
        fusion: how member edges are combined, ``"mean"`` or ``"median"``.
        clip: clip boxes to the image (``True``) or drop boxes that cross its border.
        duplicate_iou: IoU at which two same-label boxes of *one* worker count as a duplicate.
    """

    iou_threshold: float = 0.5
    min_support: int | None = None
    fusion: Fusion = "mean"
    clip: bool = True
    duplicate_iou: float = 0.9

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.iou_threshold <= 1.0:
            problems.append(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.min_support is not None and self.min_support < 1:
            problems.append(f"min_support must be >= 1, got {self.min_support}")
        if self.fusion not in ("mean", "median"):
            problems.append(f"fusion must be 'mean' or 'median', got {self.fusion!r}")
        if not 0.0 < self.duplicate_iou <= 1.0:
            problems.append(f"duplicate_iou must be in (0, 1], got {self.duplicate_iou}")
        if problems:
            raise ConsolidationError("; ".join(problems))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConsolidationSettings:
        """Settings from ``GT_IOU_THRESHOLD``, ``GT_MIN_SUPPORT``, ``GT_FUSION`` (Lambda env).

        Unset or empty variables keep the defaults.

        Raises:
            ConsolidationError: a variable is set to a value that cannot be used.
        """
        kwargs: dict[str, Any] = {}
        try:
            if env.get("GT_IOU_THRESHOLD", "").strip():
                kwargs["iou_threshold"] = float(env["GT_IOU_THRESHOLD"])
            if env.get("GT_MIN_SUPPORT", "").strip():
                kwargs["min_support"] = int(env["GT_MIN_SUPPORT"])
        except ValueError as exc:
            raise ConsolidationError(
                f"bad consolidation setting in the environment: {exc}"
            ) from exc
        if env.get("GT_FUSION", "").strip():
            kwargs["fusion"] = env["GT_FUSION"].strip().lower()
        return cls(**kwargs)


@dataclass
class ImageConsolidation:
    """The result for one image, with everything needed to explain it.

    Attributes:
        boxes: the consolidated boxes, sorted by position (top, left, bottom, right, label).
        dropped: one record per worker box that is not part of any output box:
            ``{"worker": worker index, "box": box index, "reason": DropReason value,
            "detail": text}``.
        workers: how many workers answered (the ``N`` of the confidence formula).
        clusters: for each output box (same index), its members as
            ``(worker index, box index)`` into the input ``answers``.
    """

    boxes: list[ConsolidatedBox] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0
    clusters: list[list[tuple[int, int]]] = field(default_factory=list)


def default_min_support(workers: int) -> int:
    """Strict majority of the workers who answered; 1 for one (or no) worker."""
    return workers // 2 + 1 if workers > 1 else 1


@dataclass(slots=True)
class _Clean:
    """The valid boxes of an image in canonical order, as parallel arrays and lists."""

    xyxy: FloatArray
    labels: list[str]
    worker: list[int]  # input worker index
    box: list[int]  # input box index


def _drop(
    dropped: list[dict[str, Any]], worker: int, box: int, reason: DropReason, detail: str
) -> None:
    dropped.append({"worker": worker, "box": box, "reason": reason.value, "detail": detail})


def _read_worker(
    w: int,
    boxes: Sequence[Any],
    labels: frozenset[str] | None,
    image_size: ImageSize | None,
    settings: ConsolidationSettings,
    dropped: list[dict[str, Any]],
) -> tuple[list[tuple[float, float, float, float]], list[str], list[int]]:
    """Validate one worker's boxes; returns xyxy rows, labels and input indices of the kept."""
    rows: list[tuple[float, float, float, float]] = []
    names: list[str] = []
    index: list[int] = []
    for b, raw in enumerate(boxes):
        if not isinstance(raw, Mapping):
            _drop(dropped, w, b, DropReason.MALFORMED, f"not an object: {raw!r}"[:200])
            continue
        label = raw.get("label")
        if not isinstance(label, str) or not label:
            _drop(dropped, w, b, DropReason.MISSING_LABEL, f"label {label!r}")
            continue
        if labels is not None and label not in labels:
            _drop(dropped, w, b, DropReason.UNKNOWN_LABEL, f"label {label!r} not in the label list")
            continue
        try:
            values = [raw[k] for k in _COORDS]
            if any(isinstance(v, bool) for v in values):
                raise TypeError("boolean coordinate")
            left, top, width, height = (float(v) for v in values)
        except (KeyError, TypeError, ValueError) as exc:
            _drop(dropped, w, b, DropReason.MALFORMED, f"bad coordinates: {exc}"[:200])
            continue
        if not all(math.isfinite(v) for v in (left, top, width, height)):
            _drop(dropped, w, b, DropReason.NON_FINITE, "NaN or infinite coordinate")
            continue
        if width <= 0 or height <= 0:
            _drop(dropped, w, b, DropReason.NON_POSITIVE_SIZE, f"size {width} x {height}")
            continue
        x1, y1, x2, y2 = left, top, left + width, top + height
        if image_size is not None:
            iw, ih = float(image_size["width"]), float(image_size["height"])
            inside = x1 >= 0 and y1 >= 0 and x2 <= iw and y2 <= ih
            if not inside:
                if not settings.clip:
                    _drop(dropped, w, b, DropReason.OUTSIDE_IMAGE, "crosses the image border")
                    continue
                x1, y1 = min(max(x1, 0.0), iw), min(max(y1, 0.0), ih)
                x2, y2 = min(max(x2, 0.0), iw), min(max(y2, 0.0), ih)
                if x2 <= x1 or y2 <= y1:
                    _drop(dropped, w, b, DropReason.OUTSIDE_IMAGE, "entirely outside the image")
                    continue
        rows.append((x1, y1, x2, y2))
        names.append(label)
        index.append(b)
    return rows, names, index


def _clean(
    answers: Sequence[Sequence[Any]],
    labels: Sequence[str] | None,
    image_size: ImageSize | None,
    weights: Sequence[float],
    settings: ConsolidationSettings,
    dropped: list[dict[str, Any]],
) -> _Clean:
    """Validate, canonically order and de-duplicate every worker's boxes."""
    known = frozenset(labels) if labels is not None else None
    per_worker = [
        _read_worker(w, boxes, known, image_size, settings, dropped)
        for w, boxes in enumerate(answers)
    ]
    # Worker rank: from the worker's own sorted boxes (and weight), not from input position.
    keys = []
    for w, (rows, names, _) in enumerate(per_worker):
        keys.append((sorted(zip(rows, names, strict=True)), weights[w]))
    rank = {w: r for r, w in enumerate(sorted(range(len(answers)), key=lambda w: keys[w]))}
    entries = [
        (row, name, rank[w], w, b)
        for w, (rows, names, index) in enumerate(per_worker)
        for row, name, b in zip(rows, names, index, strict=True)
    ]
    entries.sort(key=lambda e: (e[0], e[1], e[2], e[4]))
    xyxy = np.array([e[0] for e in entries], dtype=np.float64).reshape(-1, 4)
    clean = _Clean(xyxy, [e[1] for e in entries], [e[3] for e in entries], [e[4] for e in entries])
    return _drop_duplicates(clean, settings, dropped)


def _drop_duplicates(
    clean: _Clean, settings: ConsolidationSettings, dropped: list[dict[str, Any]]
) -> _Clean:
    """Remove later (canonical order) same-label boxes of one worker that repeat an earlier one."""
    lo, hi = candidate_pairs(clean.xyxy)
    if len(lo) == 0:
        return clean
    worker = np.asarray(clean.worker)
    same = worker[lo] == worker[hi]
    lo, hi = lo[same], hi[same]
    if len(lo) == 0:
        return clean
    iou = iou_pairs(clean.xyxy[lo], clean.xyxy[hi])
    hit = iou >= settings.duplicate_iou
    removed: set[int] = set()
    for i, j, v in sorted(zip(lo[hit].tolist(), hi[hit].tolist(), iou[hit].tolist(), strict=True)):
        if i in removed or j in removed or clean.labels[i] != clean.labels[j]:
            continue
        removed.add(j)
        _drop(
            dropped,
            clean.worker[j],
            clean.box[j],
            DropReason.DUPLICATE,
            f"repeats box {clean.box[i]} of the same worker (IoU {v:.2f})",
        )
    if not removed:
        return clean
    keep = [k for k in range(len(clean.labels)) if k not in removed]
    return _Clean(
        clean.xyxy[keep],
        [clean.labels[k] for k in keep],
        [clean.worker[k] for k in keep],
        [clean.box[k] for k in keep],
    )


def _cluster(
    clean: _Clean, threshold: float
) -> tuple[list[list[int]], dict[tuple[int, int], float]]:
    """Greedy complete-linkage clustering of cross-worker pairs, one box per worker per cluster.

    Returns clusters as sorted lists of canonical indices and the IoU of every linked pair.
    """
    n = len(clean.labels)
    lo, hi = candidate_pairs(clean.xyxy)
    edges: dict[tuple[int, int], float] = {}
    if len(lo):
        worker = np.asarray(clean.worker)
        cross = worker[lo] != worker[hi]
        lo, hi = lo[cross], hi[cross]
        iou = iou_pairs(clean.xyxy[lo], clean.xyxy[hi])
        ok = iou >= threshold
        lo, hi, iou = lo[ok], hi[ok], iou[ok]
        order = np.lexsort((hi, lo, -iou))
        lo_l, hi_l, iou_l = lo[order].tolist(), hi[order].tolist(), iou[order].tolist()
        edges = dict(zip(zip(lo_l, hi_l, strict=True), iou_l, strict=True))
    else:
        lo_l, hi_l = [], []
    root = list(range(n))
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    mask: dict[int, int] = {i: 1 << clean.worker[i] for i in range(n)}
    for i, j in zip(lo_l, hi_l, strict=True):
        ri, rj = root[i], root[j]
        if ri == rj or mask[ri] & mask[rj]:
            continue
        a, b = members[ri], members[rj]
        # Complete linkage: every cross pair must be linked.
        if (len(a) > 1 or len(b) > 1) and not all(
            (min(x, y), max(x, y)) in edges for x in a for y in b
        ):
            continue
        if len(a) < len(b):
            ri, rj, a, b = rj, ri, b, a
        a.extend(b)
        for k in b:
            root[k] = ri
        mask[ri] |= mask.pop(rj)
        del members[rj]
    return [sorted(m) for m in members.values()], edges


def _weighted_median(values: FloatArray, w: FloatArray) -> FloatArray:
    """Per-column weighted median of ``values`` ``(K, 4)``; plain median for equal weights."""
    if np.all(w == w[0]):
        result: FloatArray = np.median(values, axis=0)
        return result
    out = np.empty(values.shape[1])
    half = w.sum() / 2.0
    for c in range(values.shape[1]):
        order = np.argsort(values[:, c], kind="stable")
        v, cw = values[order, c], np.cumsum(w[order])
        k = int(np.searchsorted(cw, half))
        out[c] = (v[k] + v[k + 1]) / 2.0 if math.isclose(cw[k], half) and k + 1 < len(v) else v[k]
    return out


def consolidate_image(
    answers: Sequence[Sequence[WorkerBox]],
    *,
    settings: ConsolidationSettings = ConsolidationSettings(),
    labels: Sequence[str] | None = None,
    image_size: ImageSize | None = None,
    weights: Sequence[float] | None = None,
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
            :mod:`gt_toolkit.quality`); they weight fusion, label votes and the support
            share of the confidence. ``None`` = equal weights.

    Returns:
        The :class:`ImageConsolidation`. Confidence of each box, in ``[0, 1]``::

            confidence = (member weight / total weight)       # support share, k/N unweighted
                       x mean pairwise IoU of the members      # geometric agreement
                       x (weight of the winning label / member weight)  # label agreement

        It is ``0.0`` when only one worker answered, to match Ground Truth (which reports
        0.00 for one worker), and for a single-member cluster kept by ``min_support=1``
        (no agreement to measure).

    Raises:
        ConsolidationError: ``weights`` has the wrong length or a negative or non-finite
            value. Dirty boxes never raise; they are listed in ``dropped``.

    Examples:
        >>> a = [{"label": "car", "left": 10, "top": 10, "width": 20, "height": 20}]
        >>> b = [{"label": "car", "left": 12, "top": 10, "width": 20, "height": 20}]
        >>> r = consolidate_image([a, b])
        >>> r.boxes[0]["left"], r.boxes[0]["width"], round(r.boxes[0]["confidence"], 3)
        (11.0, 20.0, 0.818)
    """
    n = len(answers)
    if weights is None:
        w_all = [1.0] * n
    else:
        w_all = [float(x) for x in weights]
        if len(w_all) != n:
            raise ConsolidationError(f"got {len(w_all)} weights for {n} workers")
        if any(not math.isfinite(x) or x < 0 for x in w_all):
            raise ConsolidationError(f"weights must be finite and >= 0, got {w_all}")
        if sum(w_all) <= 0:
            w_all = [1.0] * n
    result = ImageConsolidation(workers=n)
    if n == 0:
        return result
    clean = _clean(answers, labels, image_size, w_all, settings, result.dropped)
    if not clean.labels:
        return result
    groups, edges = _cluster(clean, settings.iou_threshold)
    need = min(settings.min_support or default_min_support(n), n)
    order_of_label = {name: i for i, name in enumerate(labels or ())}
    total_weight = sum(w_all)
    kept: list[tuple[tuple[Any, ...], ConsolidatedBox, list[tuple[int, int]]]] = []
    for group in groups:
        if len(group) < need:
            for k in group:
                _drop(
                    result.dropped,
                    clean.worker[k],
                    clean.box[k],
                    DropReason.BELOW_MIN_SUPPORT,
                    f"{len(group)} of {n} workers drew it; {need} needed",
                )
            continue
        ww = np.array([w_all[clean.worker[k]] for k in group])
        if ww.sum() <= 0:
            ww = np.ones(len(group))
        coords = clean.xyxy[group]
        if settings.fusion == "median":
            fused = _weighted_median(coords, ww)
        else:
            fused = (coords * ww[:, None]).sum(axis=0) / ww.sum()
        votes: dict[str, float] = {}
        for k, wk in zip(group, ww.tolist(), strict=True):
            votes[clean.labels[k]] = votes.get(clean.labels[k], 0.0) + wk
        label = min(
            votes,
            key=lambda name: (-votes[name], order_of_label.get(name, len(order_of_label)), name),
        )
        if n == 1 or len(group) == 1:
            confidence = 0.0
        else:
            pair_ious = [
                edges.get((x, y), 0.0) for i, x in enumerate(group) for y in group[i + 1 :]
            ]
            agreement = sum(pair_ious) / len(pair_ious)
            support = float(ww.sum()) / total_weight if weights is not None else len(group) / n
            confidence = min(1.0, max(0.0, support * agreement * votes[label] / float(ww.sum())))
        x1, y1, x2, y2 = (float(v) for v in fused)
        box: ConsolidatedBox = {
            "label": label,
            "left": x1,
            "top": y1,
            "width": x2 - x1,
            "height": y2 - y1,
            "confidence": confidence,
        }
        members = sorted((clean.worker[k], clean.box[k]) for k in group)
        kept.append(((y1, x1, y2, x2, label), box, members))
    kept.sort(key=lambda item: item[0])
    result.boxes = [item[1] for item in kept]
    result.clusters = [item[2] for item in kept]
    result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return result


def consolidate_boxes(
    answers: Sequence[Sequence[WorkerBox]],
    *,
    iou_threshold: float = 0.5,
    min_support: int | None = None,
    fusion: Fusion = "mean",
    clip: bool = True,
    labels: Sequence[str] | None = None,
    image_size: ImageSize | None = None,
    weights: Sequence[float] | None = None,
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
    settings = ConsolidationSettings(
        iou_threshold=iou_threshold, min_support=min_support, fusion=fusion, clip=clip
    )
    return consolidate_image(
        answers, settings=settings, labels=labels, image_size=image_size, weights=weights
    ).boxes
