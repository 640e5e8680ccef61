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
import numpy.typing as npt

from .boxes import FloatArray, candidate_pairs, clip_xyxy, iou_pairs
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


IntArray = npt.NDArray[np.intp]


@dataclass(slots=True)
class _Clean:
    """The valid boxes of an image in canonical order, as parallel arrays."""

    xyxy: FloatArray  # (M, 4)
    code: IntArray  # label code: index into the label priority order
    worker: IntArray  # input worker index
    box: IntArray  # input box index
    pairs: tuple[IntArray, IntArray] | None = None  # overlapping pairs, see candidate_pairs


def _drop(
    dropped: list[dict[str, Any]], worker: int, box: int, reason: DropReason, detail: str
) -> None:
    dropped.append({"worker": worker, "box": box, "reason": reason.value, "detail": detail})


def _gather_slow(boxes: Sequence[Any]) -> tuple[FloatArray, list[Any], dict[int, str]]:
    """Box-by-box reading for a worker whose answer has malformed entries."""
    rows: list[tuple[float, float, float, float]] = []
    names: list[Any] = []
    malformed: dict[int, str] = {}
    for b, raw in enumerate(boxes):
        if not isinstance(raw, Mapping):
            malformed[b] = f"not an object: {raw!r}"[:200]
            rows.append((math.nan,) * 4)
            names.append(None)
            continue
        try:
            left, top, width, height = (float(raw[k]) for k in _COORDS)
        except (KeyError, TypeError, ValueError) as exc:
            malformed[b] = f"bad coordinates: {exc}"[:200]
            rows.append((math.nan,) * 4)
            names.append(None)
            continue
        rows.append((left, top, width, height))
        names.append(raw.get("label"))
    return np.array(rows, dtype=np.float64).reshape(-1, 4), names, malformed


def _clean(
    answers: Sequence[Sequence[Any]],
    labels: Sequence[str] | None,
    image_size: ImageSize | None,
    weights: Sequence[float],
    settings: ConsolidationSettings,
    dropped: list[dict[str, Any]],
) -> tuple[_Clean, list[str]]:
    """Validate every box (vectorised), then put the valid ones in canonical order.

    Returns the valid boxes and the label priority order their ``code`` indexes: the
    ``labels`` order first, then other names alphabetically (this order breaks vote ties).
    """
    parts: list[FloatArray] = []
    names: list[Any] = []
    worker_of: list[int] = []
    box_of: list[int] = []
    malformed: dict[int, str] = {}
    for w, boxes in enumerate(answers):
        try:
            arr = np.array(
                [(b["left"], b["top"], b["width"], b["height"]) for b in boxes],
                dtype=np.float64,
            ).reshape(-1, 4)
            labs = [b.get("label") for b in boxes]
        except (KeyError, TypeError, ValueError, AttributeError):
            arr, labs, bad = _gather_slow(boxes)
            malformed.update({len(names) + b: d for b, d in bad.items()})
        parts.append(arr)
        names.extend(labs)
        worker_of.extend([w] * len(labs))
        box_of.extend(range(len(labs)))
    if not names:
        empty = np.zeros(0, dtype=np.intp)
        return _Clean(np.zeros((0, 4)), empty, empty, empty), []
    xywh = np.concatenate(parts)
    xyxy = xywh.copy()
    xyxy[:, 2:] += xyxy[:, :2]
    known = frozenset(labels) if labels is not None else None
    label_ok = np.array(
        [isinstance(x, str) and x != "" and (known is None or x in known) for x in names]
    )
    finite = np.asarray(np.isfinite(xywh).all(axis=1), dtype=bool)
    positive: npt.NDArray[np.bool_] = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
    inside: npt.NDArray[np.bool_] = np.ones(len(names), dtype=bool)
    if image_size is not None:
        iw, ih = float(image_size["width"]), float(image_size["height"])
        with np.errstate(invalid="ignore"):
            inside = (xyxy[:, 0] >= 0) & (xyxy[:, 1] >= 0) & (xyxy[:, 2] <= iw) & (xyxy[:, 3] <= ih)
        if settings.clip:
            xyxy = clip_xyxy(np.nan_to_num(xyxy), iw, ih)
            inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    ok = label_ok & finite & positive & inside
    for g in np.flatnonzero(~ok).tolist():
        w, b = worker_of[g], box_of[g]
        name = names[g]
        if g in malformed:
            _drop(dropped, w, b, DropReason.MALFORMED, malformed[g])
        elif not isinstance(name, str) or not name:
            _drop(dropped, w, b, DropReason.MISSING_LABEL, f"label {name!r}")
        elif not label_ok[g]:
            _drop(dropped, w, b, DropReason.UNKNOWN_LABEL, f"label {name!r} not in the label list")
        elif not finite[g]:
            _drop(dropped, w, b, DropReason.NON_FINITE, "NaN or infinite coordinate")
        elif not positive[g]:
            size = f"{xywh[g, 2]:g} x {xywh[g, 3]:g}"
            _drop(dropped, w, b, DropReason.NON_POSITIVE_SIZE, f"size {size}")
        else:
            detail = "entirely outside the image" if settings.clip else "crosses the image border"
            _drop(dropped, w, b, DropReason.OUTSIDE_IMAGE, detail)
    keep = np.flatnonzero(ok)
    xyxy = xyxy[keep]
    worker = np.asarray(worker_of, dtype=np.intp)[keep]
    box = np.asarray(box_of, dtype=np.intp)[keep]
    kept_names = [names[g] for g in keep.tolist()]
    listed = [x for x in dict.fromkeys(labels or ()) if x in set(kept_names)]
    priority = listed + sorted(set(kept_names) - set(listed))
    code_of = {name: i for i, name in enumerate(priority)}
    code = np.array([code_of[x] for x in kept_names], dtype=np.intp)
    # Canonical order: by geometry and label name, then by a worker rank computed from the
    # worker's own boxes and weight (never from input position), then by box index. The
    # rank only matters between identical boxes of different workers, so it is computed
    # only when there are such ties.
    alpha = {name: i for i, name in enumerate(sorted(priority))}
    name_key = np.array([alpha[x] for x in kept_names], dtype=np.intp)
    order = np.lexsort((box, name_key, xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0]))
    rows = np.column_stack([xyxy[order], name_key[order]])
    if len(rows) > 1 and (rows[1:] == rows[:-1]).all(axis=1).any():
        rank = _worker_rank(len(answers), worker, xyxy, name_key, weights)
        order = np.lexsort(
            (box, rank[worker], name_key, xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0])
        )
    clean = _Clean(xyxy[order], code[order], worker[order], box[order])
    return _drop_duplicates(clean, settings, dropped), priority


def _worker_rank(
    workers: int,
    worker: IntArray,
    xyxy: FloatArray,
    name_key: IntArray,
    weights: Sequence[float],
) -> IntArray:
    """A rank per worker from the bytes of their sorted boxes and weight (order-free)."""
    keys: list[bytes] = []
    for w in range(workers):
        mine = worker == w
        rows = np.column_stack([xyxy[mine], name_key[mine]])
        rows = rows[np.lexsort(rows.T[::-1])] if len(rows) else rows
        keys.append(rows.tobytes() + np.float64(weights[w]).tobytes())
    rank = np.empty(workers, dtype=np.intp)
    rank[sorted(range(workers), key=keys.__getitem__)] = np.arange(workers)
    return rank


def _drop_duplicates(
    clean: _Clean, settings: ConsolidationSettings, dropped: list[dict[str, Any]]
) -> _Clean:
    """Remove later (canonical order) same-label boxes of one worker that repeat an earlier one.

    Also computes the overlapping pairs once for the clustering step (``clean.pairs``).
    """
    lo, hi = candidate_pairs(clean.xyxy)
    clean.pairs = (lo, hi)
    same = (clean.worker[lo] == clean.worker[hi]) & (clean.code[lo] == clean.code[hi])
    lo, hi = lo[same], hi[same]
    if len(lo) == 0:
        return clean
    iou = iou_pairs(clean.xyxy[lo], clean.xyxy[hi])
    hit = iou >= settings.duplicate_iou
    if not hit.any():
        return clean
    removed: set[int] = set()
    for i, j, v in sorted(zip(lo[hit].tolist(), hi[hit].tolist(), iou[hit].tolist(), strict=True)):
        if i in removed or j in removed:
            continue
        removed.add(j)
        _drop(
            dropped,
            int(clean.worker[j]),
            int(clean.box[j]),
            DropReason.DUPLICATE,
            f"repeats box {int(clean.box[i])} of the same worker (IoU {v:.2f})",
        )
    keep = np.ones(len(clean.code), dtype=bool)
    keep[list(removed)] = False
    new_index = np.cumsum(keep) - 1
    both = keep[clean.pairs[0]] & keep[clean.pairs[1]]
    out = _Clean(clean.xyxy[keep], clean.code[keep], clean.worker[keep], clean.box[keep])
    out.pairs = (new_index[clean.pairs[0][both]], new_index[clean.pairs[1][both]])
    return out


def _components(n: int, lo: IntArray, hi: IntArray) -> IntArray:
    """Connected components of an undirected graph: each node gets its component's min node."""
    comp = np.arange(n, dtype=np.intp)
    while True:
        low = np.minimum(comp[lo], comp[hi])
        new = comp.copy()
        np.minimum.at(new, lo, low)
        np.minimum.at(new, hi, low)
        new = new[new]  # pointer jumping halves the remaining depth
        if np.array_equal(new, comp):
            return comp
        comp = new


def _cluster(clean: _Clean, threshold: float) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Cluster boxes of different workers: complete linkage, one box per worker per cluster.

    Returns a cluster id per box and the linked pairs (``lo < hi``, canonical indices) with
    their IoU. Fast path: a connected component of the IoU >= threshold graph that is a
    clique of distinct workers is one cluster, exactly what the greedy merge would build;
    only the other components go through the greedy merge (pairs by descending IoU, then
    canonical order; merge when the clusters share no worker and every cross pair is linked).
    """
    n = len(clean.code)
    lo, hi = clean.pairs if clean.pairs is not None else candidate_pairs(clean.xyxy)
    cross = clean.worker[lo] != clean.worker[hi]
    lo, hi = lo[cross], hi[cross]
    iou = iou_pairs(clean.xyxy[lo], clean.xyxy[hi])
    linked = iou >= threshold
    lo, hi, iou = lo[linked], hi[linked], iou[linked]
    order = np.lexsort((hi, lo, -iou))
    lo, hi, iou = lo[order], hi[order], iou[order]
    comp = _components(n, lo, hi)
    size = np.bincount(comp, minlength=n)
    workers = int(clean.worker.max()) + 1 if n else 1
    distinct = np.bincount(np.unique(comp * workers + clean.worker) // workers, minlength=n)
    edges = np.bincount(comp[lo], minlength=n)
    clique = (distinct == size) & (edges == size * (size - 1) // 2)
    cluster = comp.copy()
    messy = ~clique[comp[lo]]
    if messy.any():
        m_lo, m_hi = lo[messy].tolist(), hi[messy].tolist()
        link = set(zip(m_lo, m_hi, strict=True))
        root = list(range(n))
        members: dict[int, list[int]] = {}
        mask: dict[int, int] = {}
        for i, j in zip(m_lo, m_hi, strict=True):
            for k in (i, j):
                if k not in members:
                    members[k], mask[k] = [k], 1 << int(clean.worker[k])
            ri, rj = root[i], root[j]
            if ri == rj or mask[ri] & mask[rj]:
                continue
            a, b = members[ri], members[rj]
            if (len(a) > 1 or len(b) > 1) and not all(
                (x, y) in link if x < y else (y, x) in link for x in a for y in b
            ):
                continue
            if len(a) < len(b):
                ri, rj, a, b = rj, ri, b, a
            a.extend(b)
            for k in b:
                root[k] = ri
            mask[ri] |= mask.pop(rj)
            del members[rj]
        nodes = np.flatnonzero(~clique[comp])
        cluster[nodes] = np.asarray(root, dtype=np.intp)[nodes]
    return cluster, lo, hi, iou


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
    clean, priority = _clean(answers, labels, image_size, w_all, settings, result.dropped)
    if len(clean.code):
        _fuse(clean, priority, n, w_all, weights is not None, settings, result)
    result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return result


def _fuse(
    clean: _Clean,
    priority: list[str],
    n: int,
    w_all: list[float],
    weighted: bool,
    settings: ConsolidationSettings,
    result: ImageConsolidation,
) -> None:
    """Cluster, apply the quorum, fuse, vote and score; fills ``result`` (vectorised)."""
    cluster, lo, hi, iou = _cluster(clean, settings.iou_threshold)
    _, cl = np.unique(cluster, return_inverse=True)
    count = int(cl.max()) + 1
    size = np.bincount(cl, minlength=count)
    need = min(settings.min_support or default_min_support(n), n)
    kept = size >= need
    for g in np.flatnonzero(~kept[cl]).tolist():
        _drop(
            result.dropped,
            int(clean.worker[g]),
            int(clean.box[g]),
            DropReason.BELOW_MIN_SUPPORT,
            f"{size[cl[g]]} of {n} workers drew it; {need} needed",
        )
    if not kept.any():
        return
    wb = np.asarray(w_all, dtype=np.float64)[clean.worker]
    wsum = np.bincount(cl, weights=wb, minlength=count)
    zero = wsum <= 0  # every member has weight 0: fall back to equal weights
    if zero.any():
        wb = np.where(zero[cl], 1.0, wb)
        wsum = np.bincount(cl, weights=wb, minlength=count)
    if settings.fusion == "median":
        fused = np.zeros((count, 4))
        by_cluster = np.argsort(cl, kind="stable")
        bounds = np.cumsum(size)[:-1]
        for c, idx in enumerate(np.split(by_cluster, bounds)):
            if kept[c]:
                fused[c] = _weighted_median(clean.xyxy[idx], wb[idx])
    else:
        fused = (
            np.column_stack(
                [np.bincount(cl, weights=wb * clean.xyxy[:, k], minlength=count) for k in range(4)]
            )
            / wsum[:, None]
        )
    labels_n = len(priority)
    votes = np.bincount(cl * labels_n + clean.code, weights=wb, minlength=count * labels_n)
    votes = votes.reshape(count, labels_n)
    winner = np.argmax(votes, axis=1)  # first maximum = highest-priority label on a tie
    label_share = votes[np.arange(count), winner] / wsum
    same = cl[lo] == cl[hi]
    iou_sum = np.bincount(cl[lo][same], weights=iou[same], minlength=count)
    pairs = size * (size - 1) / 2
    agreement = np.divide(iou_sum, pairs, out=np.zeros(count), where=pairs > 0)
    support = wsum / float(np.sum(w_all)) if weighted else size / n
    confidence = np.clip(support * agreement * label_share, 0.0, 1.0)
    if n == 1:
        confidence[:] = 0.0
    ids = np.flatnonzero(kept)
    ids = ids[np.lexsort((winner[ids], fused[ids, 2], fused[ids, 3], fused[ids, 0], fused[ids, 1]))]
    members_order = np.lexsort((clean.box, clean.worker, cl))
    starts = np.concatenate([[0], np.cumsum(size)])
    pairs_list = np.column_stack([clean.worker, clean.box])[members_order].tolist()
    for c in ids.tolist():
        x1, y1, x2, y2 = fused[c].tolist()
        result.boxes.append(
            {
                "label": priority[int(winner[c])],
                "left": x1,
                "top": y1,
                "width": x2 - x1,
                "height": y2 - y1,
                "confidence": float(confidence[c]),
            }
        )
        result.clusters.append([(w, b) for w, b in pairs_list[starts[c] : starts[c + 1]]])


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
