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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gt_toolkit.consolidation.geometry import FloatArray, overlap_pairs
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

Fusion = Literal["mean", "median"]
Quorum = Literal["box", "label"]
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
        quorum: what ``min_support`` counts. ``"box"`` (default): workers who drew the
            cluster; it is kept with the voted label, ties included. ``"label"``: workers
            who gave each label; one box per label that reaches it, all on the cluster's
            fused box (every member still helps place it). At a strict majority this drops
            clusters whose label vote is split (a 1:1 tie of 3 workers is a coin flip);
            at ``min_support=1`` it keeps every label any worker gave, as WBF does.
    """

    iou_threshold: float = 0.5
    min_support: int | None = None
    fusion: Fusion = "mean"
    clip: bool = True
    duplicate_iou: float = 0.9
    quorum: Quorum = "box"

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
        if self.quorum not in ("box", "label"):
            problems.append(f"quorum must be 'box' or 'label', got {self.quorum!r}")
        if problems:
            raise ConsolidationError("; ".join(problems))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConsolidationSettings:
        """Settings from ``GT_IOU_THRESHOLD``, ``GT_MIN_SUPPORT``, ``GT_FUSION``, ``GT_QUORUM``.

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
        if env.get("GT_QUORUM", "").strip():
            kwargs["quorum"] = env["GT_QUORUM"].strip().lower()
        return cls(**kwargs)


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


def default_min_support(workers: int) -> int:
    """Strict majority of the workers who answered; 1 for one (or no) worker."""
    return workers // 2 + 1 if workers > 1 else 1


IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

_GET_EACH = tuple(itemgetter(k) for k in _COORDS)
_GET_LABEL = itemgetter("label")
_NONE: IntArray = np.zeros(0, dtype=np.intp)
_NO_IOU: FloatArray = np.zeros(0)


@dataclass(slots=True)
class _Clean:
    """The valid boxes of an image in canonical order, as parallel column arrays."""

    x1: FloatArray
    y1: FloatArray
    x2: FloatArray
    y2: FloatArray
    code: IntArray  # label code: index into the label priority order
    worker: IntArray  # input worker index
    box: IntArray  # input box index
    lo: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))  # overlapping
    hi: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))  # pairs lo < hi
    iou: FloatArray = field(default_factory=lambda: np.zeros(0))  # their IoU
    own: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))  # same worker
    comp: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))  # linked group

    def take(self, keep: IntArray | BoolArray) -> _Clean:
        return _Clean(
            self.x1[keep],
            self.y1[keep],
            self.x2[keep],
            self.y2[keep],
            self.code[keep],
            self.worker[keep],
            self.box[keep],
        )


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


def _gather(
    answers: Sequence[Sequence[Any]],
) -> tuple[FloatArray, list[Any], IntArray, IntArray, dict[int, str]]:
    """Every worker's boxes as one ``(M, 4)`` xywh array, labels, worker and box indices.

    Fast path: one ``itemgetter`` map over all boxes and one array build (per-box Python
    work is the main cost at a few hundred boxes). Anything unusual (a missing key, a
    non-object box, a non-numeric coordinate) falls back to the worker-by-worker reading,
    which records malformed boxes by global position.
    """
    counts = [len(a) for a in answers]
    flat = list(chain.from_iterable(answers))
    malformed: dict[int, str] = {}
    try:
        names: list[Any] = list(map(_GET_LABEL, flat))
        xywh = np.empty((len(flat), 4))
        for k, get in enumerate(_GET_EACH):
            xywh[:, k] = np.fromiter(map(get, flat), dtype=np.float64, count=len(flat))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        parts: list[FloatArray] = []
        names = []
        for boxes in answers:
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
        xywh = np.concatenate(parts) if parts else np.zeros((0, 4))
    sizes = np.asarray(counts, dtype=np.intp)
    worker = np.arange(len(counts), dtype=np.intp).repeat(sizes)
    box = np.arange(len(worker), dtype=np.intp) - (sizes.cumsum() - sizes).repeat(sizes)
    return xywh, names, worker, box, malformed


def _label_ok(
    names: list[Any], known: frozenset[str] | None
) -> tuple[BoolArray | None, set[Any] | None]:
    """Per-box "label is usable" mask, and the distinct labels when they are hashable.

    The mask is ``None`` when every label is usable (the common case).
    """

    def ok(x: Any) -> bool:
        return isinstance(x, str) and x != "" and (known is None or x in known)

    try:
        distinct: set[Any] | None = set(names)
    except TypeError:  # an unhashable label: check box by box
        distinct = None
    if distinct is not None and all(ok(x) for x in distinct):
        return None, distinct
    mask: BoolArray = np.fromiter(map(ok, names), dtype=np.bool_, count=len(names))
    return mask, distinct


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
    Also finds the overlapping pairs and their IoU once, for duplicates and clustering.
    """
    xywh, names, worker_of, box_of, malformed = _gather(answers)
    x1, y1, w, h = (np.ascontiguousarray(xywh[:, k]) for k in range(4))
    with np.errstate(over="ignore", invalid="ignore"):  # huge or infinite edges: dropped below
        x2, y2 = x1 + w, y1 + h
    known = frozenset(labels) if labels is not None else None
    label_ok, present = _label_ok(names, known)
    finite: BoolArray = np.asarray(np.isfinite(xywh).all(axis=1), dtype=np.bool_)
    if image_size is None:  # left + width can overflow to inf (clipping would catch it)
        finite &= np.isfinite(x2) & np.isfinite(y2)
    positive: BoolArray = (w > 0) & (h > 0)
    ok = finite & positive
    if image_size is not None:
        iw, ih = float(image_size["width"]), float(image_size["height"])
        if settings.clip:
            # plain ufuncs (np.clip's wrapper costs more than the work here); NaN stays NaN
            x1, x2 = (np.minimum(np.maximum(v, 0.0), iw) for v in (x1, x2))
            y1, y2 = (np.minimum(np.maximum(v, 0.0), ih) for v in (y1, y2))
            inside = (x2 > x1) & (y2 > y1)
        else:
            with np.errstate(invalid="ignore"):
                inside = (x1 >= 0) & (y1 >= 0) & (x2 <= iw) & (y2 <= ih)
        ok &= inside
    if label_ok is not None:
        ok &= label_ok
    if malformed:
        ok[list(malformed)] = False
    if not ok.all():
        for g in np.flatnonzero(~ok).tolist():
            wk, b = int(worker_of[g]), int(box_of[g])
            name = names[g]
            if g in malformed:
                _drop(dropped, wk, b, DropReason.MALFORMED, malformed[g])
            elif not isinstance(name, str) or not name:
                _drop(dropped, wk, b, DropReason.MISSING_LABEL, f"label {name!r}")
            elif label_ok is not None and not label_ok[g]:
                _drop(
                    dropped,
                    wk,
                    b,
                    DropReason.UNKNOWN_LABEL,
                    f"label {name!r} not in the label list",
                )
            elif not finite[g]:
                _drop(dropped, wk, b, DropReason.NON_FINITE, "NaN or infinite coordinate")
            elif not positive[g]:
                size = f"{xywh[g, 2]:g} x {xywh[g, 3]:g}"
                _drop(dropped, wk, b, DropReason.NON_POSITIVE_SIZE, f"size {size}")
            else:
                detail = (
                    "entirely outside the image" if settings.clip else "crosses the image border"
                )
                _drop(dropped, wk, b, DropReason.OUTSIDE_IMAGE, detail)
        keep = np.flatnonzero(ok)
        x1, y1, x2, y2 = x1[keep], y1[keep], x2[keep], y2[keep]
        worker_of, box_of = worker_of[keep], box_of[keep]
        names = [names[g] for g in keep.tolist()]
        present = None
    if present is None:
        present = set(names)
    listed = [x for x in dict.fromkeys(labels or ()) if x in present]
    priority = listed + sorted(present - set(listed))
    code_of = {name: i for i, name in enumerate(priority)}
    code = np.fromiter(map(code_of.__getitem__, names), dtype=np.intp, count=len(names))
    # Canonical order: by geometry and label name, then by a worker rank computed from the
    # worker's own boxes and weight (never from input position), then by box index. The
    # rank only matters between identical boxes of different workers, so it is computed
    # only when there are such ties.
    alpha = np.empty(len(priority), dtype=np.intp)
    alpha[sorted(range(len(priority)), key=priority.__getitem__)] = np.arange(len(priority))
    name_key = alpha[code]
    keys = _sort_keys(x1, y1, x2, y2, name_key, box_of)
    order = np.lexsort(keys)
    clean = _Clean(
        x1[order], y1[order], x2[order], y2[order], code[order], worker_of[order], box_of[order]
    )
    if len(order) > 1:
        # identical boxes (geometry and label) of different workers: the worker rank decides
        same = keys[1:][:, order]
        if (same[:, 1:] == same[:, :-1]).all(axis=0).any():
            rank = _worker_rank(len(answers), clean, alpha, weights)
            if len(answers) > 65535:  # the worker rank would not fit the uint16 keys
                keys = keys.astype(np.float64)
            order = np.lexsort((keys[0], rank[worker_of].astype(keys.dtype), *keys[1:]))
            clean = _Clean(
                x1[order],
                y1[order],
                x2[order],
                y2[order],
                code[order],
                worker_of[order],
                box_of[order],
            )
    _find_pairs(clean)
    return _drop_duplicates(clean, settings, dropped), priority


def _sort_keys(
    x1: FloatArray,
    y1: FloatArray,
    x2: FloatArray,
    y2: FloatArray,
    name_key: IntArray,
    box_of: IntArray,
) -> npt.NDArray[Any]:
    """The canonical sort keys, least significant first (for ``np.lexsort``).

    Primary the left edge, then top, right, bottom, label name, box index. Crowd answers
    are whole pixels: then the keys are ``uint16`` and each of the six stable passes is
    a radix sort, about six times faster than sorting floats (whose comparison sort
    mispredicts on every fresh image). Other coordinates keep ``float64`` keys.
    """
    keys = np.stack((box_of, name_key, y2, x2, y1, x1))
    if keys.size and keys.min() >= 0 and keys.max() <= 65535:  # else the cast is undefined
        pixels = keys.astype(np.uint16)
        if np.array_equal(pixels, keys):
            return pixels
    return keys


def _find_pairs(clean: _Clean) -> None:
    """Overlapping pairs ``lo < hi`` (canonical indices) and their IoU, once per image."""
    clean.lo, clean.hi, clean.iou = overlap_pairs(
        clean.x1, clean.y1, clean.x2, clean.y2, x_sorted=True, with_iou=True
    )


def _worker_rank(
    workers: int, clean: _Clean, alpha: IntArray, weights: Sequence[float]
) -> IntArray:
    """A rank per worker from the bytes of their sorted boxes and weight (order-free).

    ``clean`` is in canonical order without the rank, so each worker's boxes in it are
    already sorted by geometry and label name.
    """
    rows = np.column_stack([clean.x1, clean.y1, clean.x2, clean.y2, alpha[clean.code]])
    keys = [
        rows[clean.worker == w].tobytes() + np.float64(weights[w]).tobytes() for w in range(workers)
    ]
    rank = np.empty(workers, dtype=np.intp)
    rank[sorted(range(workers), key=keys.__getitem__)] = np.arange(workers)
    return rank


def _drop_duplicates(
    clean: _Clean, settings: ConsolidationSettings, dropped: list[dict[str, Any]]
) -> _Clean:
    """Remove later (canonical order) same-label boxes of one worker that repeat an earlier one."""
    lo, hi, iou = clean.lo, clean.hi, clean.iou
    clean.own = own = clean.worker[lo] == clean.worker[hi]
    hit = (iou >= settings.duplicate_iou) & own & (clean.code[lo] == clean.code[hi])
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
    both = keep[lo] & keep[hi]
    out = clean.take(keep)
    out.lo, out.hi, out.iou, out.own = (
        new_index[lo[both]],
        new_index[hi[both]],
        iou[both],
        own[both],
    )
    return out


def _components(n: int, lo: IntArray, hi: IntArray) -> IntArray:
    """Connected components of an undirected graph: each node gets its component's min node.

    Labels only decrease and always name a node of the same component, so once every edge
    joins equal labels they are constant per component, and each is its component's
    minimum (the minimum node's label cannot go lower): no confirming pass is needed.
    """
    comp = np.arange(n, dtype=np.intp)
    while True:
        low = np.minimum(comp[lo], comp[hi])
        np.minimum.at(comp, lo, low)
        np.minimum.at(comp, hi, low)
        comp = comp[comp]  # pointer jumping halves the remaining depth
        if (comp[lo] == comp[hi]).all():
            return comp


def _box_iou(a: list[float], b: list[float]) -> float:
    """IoU of two xyxy boxes given as lists (plain Python: one pair at a time)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _cluster(
    clean: _Clean, threshold: float
) -> tuple[IntArray, IntArray, IntArray, FloatArray, IntArray, IntArray, FloatArray]:
    """Cluster boxes of different workers: one box per worker per cluster.

    Returns a cluster id per box, the linked pairs (``lo < hi``, canonical indices,
    IoU >= threshold, different workers) with their IoU, and the overlapping pairs of one
    worker's boxes with their IoU (for :func:`_second_boxes`).

    Vectorised: a connected component of the IoU >= threshold graph is one cluster when
    it is a clique of distinct workers, or when it is coherent (each worker keeps its box
    nearest the component's mean box, every kept box reaches the threshold with the kept
    boxes' mean box, and the extra boxes are at most half as many as the kept ones; each
    extra box becomes a singleton). Only the remaining components go through a greedy
    merge of linked pairs by descending IoU (ties by canonical order): two clusters merge
    when every cross pair is linked (complete linkage) or their mean boxes reach the
    threshold (centroid linkage, which tolerates one jittery or loose member); and either
    they share no worker, or the shared workers are fewer than the smaller cluster's
    members. Then each shared worker keeps the box nearer the merged mean box and the
    other box leaves as a singleton: a worker who drew two boxes on one object must not
    split the other workers' cluster in two.
    """
    n = len(clean.code)
    lo, hi, iou = clean.lo, clean.hi, clean.iou
    close, own = iou >= threshold, clean.own
    own_lo, own_hi, own_iou = (lo[own], hi[own], iou[own]) if own.any() else (_NONE, _NONE, _NO_IOU)
    linked = close & ~own
    lo, hi, iou = lo[linked], hi[linked], iou[linked]
    clean.comp = comp = _components(n, lo, hi)
    size = np.bincount(comp, minlength=n)
    workers = int(clean.worker.max()) + 1 if n else 1
    key = np.sort(comp * workers + clean.worker)
    repeated = np.bincount(key[1:][key[1:] == key[:-1]] // workers, minlength=n)
    edges = np.bincount(comp[lo], minlength=n)
    clique = (edges == size * (size - 1) // 2) & (repeated == 0)
    cluster = comp.copy()
    if clique.all():
        return cluster, lo, hi, iou, own_lo, own_hi, own_iou
    # Coherent components: each worker keeps the member nearest the component's mean box;
    # when every kept member reaches the threshold with the kept members' mean box and
    # the extra boxes are a small minority, the kept members are one cluster and each
    # extra box (a worker's second box on the object, or a stray one) is a singleton.
    sub = np.flatnonzero(~clique[comp])  # the members of the other components
    c_sub, w_sub = comp[sub], clean.worker[sub]
    boxes = (clean.x1[sub], clean.y1[sub], clean.x2[sub], clean.y2[sub])
    near = _iou_to_mean(c_sub, None, boxes, n)
    if repeated.any():
        # A worker with two boxes keeps the one whose label agrees with the component's
        # most common label (a second box with another label is the usual crowd slip),
        # then the one nearest the mean box.
        code_sub = clean.code[sub]
        span = int(code_sub.max()) + 1
        key = c_sub * span + code_sub
        votes = np.bincount(key, minlength=n * span)
        odd = votes[key] < votes.reshape(n, span).max(axis=1)[c_sub]
        order = np.lexsort((-near, odd, w_sub, c_sub))
        first = np.ones(len(sub), dtype=bool)
        first[1:] = (c_sub[order][1:] != c_sub[order][:-1]) | (
            w_sub[order][1:] != w_sub[order][:-1]
        )
        keep = np.empty(len(sub), dtype=bool)
        keep[order] = first
        near = _iou_to_mean(c_sub, keep, boxes, n)
    else:  # one box per worker in every component: all are kept, ``near`` stands
        keep = np.ones(len(sub), dtype=bool)
    far = keep & (near < threshold)
    extra = np.bincount(c_sub[~keep], minlength=n)
    coherent = (np.bincount(c_sub[far], minlength=n) == 0) & (2 * extra <= size - extra)
    coherent |= clique
    leave = sub[~keep & coherent[c_sub]]
    cluster[leave] = n + leave
    messy = ~coherent[comp[lo]]
    if messy.any():
        m_lo, m_hi, m_iou = lo[messy], hi[messy], iou[messy]
        order = np.lexsort((m_hi, m_lo, -m_iou))
        nodes = np.flatnonzero(~coherent[comp])
        root = _greedy_merge(clean, m_lo[order].tolist(), m_hi[order].tolist(), n, threshold)
        cluster[nodes] = np.asarray(root, dtype=np.intp)[nodes]
    return cluster, lo, hi, iou, own_lo, own_hi, own_iou


def _iou_to_mean(
    comp: IntArray, member: BoolArray | None, boxes: tuple[FloatArray, ...], n: int
) -> FloatArray:
    """IoU of every box with the mean box of its component's ``member`` boxes.

    ``comp`` holds component ids below ``n``, one per box in ``boxes``.
    """
    cm, vm = (comp, boxes) if member is None else (comp[member], [v[member] for v in boxes])
    count = np.maximum(np.bincount(cm, minlength=n), 1)
    mx1, my1, mx2, my2 = ((np.bincount(cm, weights=v, minlength=n) / count)[comp] for v in vm)
    x1, y1, x2, y2 = boxes
    inter = np.maximum(np.minimum(mx2, x2) - np.maximum(mx1, x1), 0.0) * np.maximum(
        np.minimum(my2, y2) - np.maximum(my1, y1), 0.0
    )
    union = (mx2 - mx1) * (my2 - my1) + (x2 - x1) * (y2 - y1) - inter
    out: FloatArray = np.divide(inter, union, out=np.zeros(len(comp)), where=union > 0)
    return out


def _greedy_merge(
    clean: _Clean, m_lo: list[int], m_hi: list[int], n: int, threshold: float
) -> list[int]:
    """The greedy agglomeration of :func:`_cluster` for the non-clique components."""
    link = set(zip(m_lo, m_hi, strict=True))
    # cluster label per box; an ejected box gets a fresh label >= 2n (labels n..2n-1 are
    # the singletons :func:`_cluster` made of coherent components' extra boxes)
    root = list(range(n))
    members: dict[int, list[int]] = {}
    by_worker: dict[int, dict[int, int]] = {}  # label -> {worker: member}
    sums: dict[int, list[float]] = {}  # label -> summed x1, y1, x2, y2 of the members
    wk = clean.worker.tolist()
    boxes = np.column_stack([clean.x1, clean.y1, clean.x2, clean.y2]).tolist()
    fresh = 2 * n

    def single(k: int, label: int) -> None:
        root[k] = label
        members[label], by_worker[label], sums[label] = [k], {wk[k]: k}, list(boxes[k])

    for i, j in zip(m_lo, m_hi, strict=True):
        for k in (i, j):
            if root[k] == k and k not in members:
                single(k, k)
        ri, rj = root[i], root[j]
        if ri == rj:
            continue
        a, b = members[ri], members[rj]
        shared = by_worker[ri].keys() & by_worker[rj].keys()
        if len(shared) >= min(len(a), len(b)):
            continue
        complete = not shared and all(
            (x, y) in link if x < y else (y, x) in link for x in a for y in b
        )
        if not complete:
            mean_a = [v / len(a) for v in sums[ri]]
            mean_b = [v / len(b) for v in sums[rj]]
            if _box_iou(mean_a, mean_b) < threshold:
                continue
        if len(a) < len(b):
            ri, rj, a, b = rj, ri, b, a
        size = len(a) + len(b)
        total = [p + q for p, q in zip(sums[ri], sums[rj], strict=True)]
        mean = [v / size for v in total]
        kept_of = by_worker[ri]
        ejected = []
        for w in sorted(shared):
            x, y = kept_of[w], by_worker[rj][w]
            ix, iy = _box_iou(boxes[x], mean), _box_iou(boxes[y], mean)
            if iy > ix or (iy == ix and y < x):
                x, y = y, x
            ejected.append((y, w, x))  # x stays, y leaves
        a.extend(b)
        for k in b:
            root[k] = ri
        kept_of.update(by_worker.pop(rj))
        sums[ri] = total
        del members[rj], sums[rj]
        for y, w, x in sorted(ejected):  # canonical order: fresh labels stay order-free
            a.remove(y)
            kept_of[w] = x
            sums[ri] = [p - q for p, q in zip(sums[ri], boxes[y], strict=True)]
            single(y, fresh)
            fresh += 1
    return root


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
    return _consolidate(answers, settings, labels, image_size, weights, explain=True)


def _consolidate(
    answers: Sequence[Sequence[WorkerBox]],
    settings: ConsolidationSettings,
    labels: Sequence[str] | None,
    image_size: ImageSize | None,
    weights: Sequence[float] | None,
    *,
    explain: bool,
) -> ImageConsolidation:
    """The body of :func:`consolidate_image`.

    ``explain=False`` skips the clusters and the below-min-support records, which
    :func:`consolidate_boxes` would throw away (about a tenth of the time per image).
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
        _fuse(clean, priority, n, w_all, weights is not None, settings, result, explain)
    result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return result


def _second_boxes(
    clean: _Clean,
    cl: IntArray,
    size: IntArray,
    means: tuple[FloatArray, ...],
    pairs: tuple[IntArray, IntArray, FloatArray],
    threshold: float,
    answered: int,
    smallest: int = 1,
) -> dict[int, int]:
    """Boxes of clusters that repeat other clusters, each mapped to its worker's box there.

    A box is covered by its worker's box in a *larger* cluster when it reaches the
    threshold with that box, or, for a lone box linked into the same component, with that
    cluster's mean box (a worker's tight second box next to their loose first one still
    lies on the object); a cluster is a repeat when all its members are covered. When
    several workers answered, one worker's two lone boxes that reach the threshold are
    one object drawn twice (nobody else corroborates a second object), so the later one
    (canonical order) is a repeat too. Of two equal clusters of the same workers,
    :func:`_repeat_of_twins` decides whether one repeats the other. Repeats smaller than
    ``smallest`` are not looked for (the quorum drops them anyway).

    Args: ``means`` is each cluster's mean box (x1, y1, x2, y2 columns); ``pairs`` the
    overlapping pairs of one worker's boxes (``lo < hi``) with their IoU; ``answered``
    the number of workers who answered.
    """
    a, b, ab = pairs
    if not len(a):
        return {}
    sa, sb = size[cl[a]], size[cl[b]]
    small = np.minimum(sa, sb)
    close = ab >= threshold
    candidate = (sa != sb) & (small >= smallest) & (close | (small == 1))
    candidate |= (sa == sb) & close & (small >= max(smallest, 1 if answered > 1 else 2))
    # the mean-box test is for a lone box that was linked into its worker's component
    # and lost its place there to the worker's other box (a stray box elsewhere is not)
    candidate &= close | (clean.comp[a] == clean.comp[b])
    if not candidate.any():
        return {}
    # Plain Python from here: an image has a handful of such pairs, and numpy's per-call
    # cost (np.unique, above all) was a tenth of the whole consolidation at 100 boxes.
    cols = (clean.x1, clean.y1, clean.x2, clean.y2)
    out: dict[int, int] = {}
    pending: dict[int, dict[int, int]] = {}  # cluster of several members -> covered ones
    twins: dict[tuple[int, int], dict[int, int]] = {}  # equal clusters -> member pairs
    for x, y, sx, sy, v in zip(
        a[candidate].tolist(),
        b[candidate].tolist(),
        sa[candidate].tolist(),
        sb[candidate].tolist(),
        ab[candidate].tolist(),
        strict=True,
    ):
        g, t, k = (x, y, sx) if sx < sy else (y, x, sy)
        if sx == sy and k > 1:  # one worker's boxes are never in one cluster
            cx, cy = int(cl[x]), int(cl[y])
            key, (p, q) = ((cx, cy), (x, y)) if cx < cy else ((cy, cx), (y, x))
            twins.setdefault(key, {}).setdefault(p, q)
            continue
        if v < threshold:  # a lone box may still lie on the larger cluster's object
            c = cl[t]
            box = [float(col[g]) for col in cols]
            if _box_iou(box, [float(m[c]) for m in means]) < threshold:
                continue
        if k == 1:
            out.setdefault(g, t)
        else:
            pending.setdefault(int(cl[g]), {}).setdefault(g, t)
    for c, covered in pending.items():
        if len(covered) == size[c]:
            out.update(covered)
    for (c1, c2), pairing in twins.items():
        if len(pairing) == size[c1] and len(set(pairing.values())) == size[c2]:
            repeat = _repeat_of_twins(clean, cl, means, c1, c2)
            if repeat is not None:
                out.update(pairing if repeat == c1 else {q: p for p, q in pairing.items()})
    for g, t in out.items():  # point at a box that stays (a repeat of a repeat)
        while t in out:
            t = out[t]
        out[g] = t
    return out


def _repeat_of_twins(
    clean: _Clean, cl: IntArray, means: tuple[FloatArray, ...], c1: int, c2: int
) -> int | None:
    """Which of two equal clusters of the same workers repeats the other, if either does.

    They are two objects when their mean boxes are further apart than their own members
    are from each other (every worker drew both of two overlapping objects); they are
    one object drawn twice by everyone when the means are closer than the members are
    (IoU of the means > the lower mean pairwise IoU inside a cluster; identical workers,
    whose members agree perfectly, keep every box they drew). The cluster drawn with
    less agreement is then the repeat (ties: the later one).
    """
    boxes = np.column_stack([clean.x1, clean.y1, clean.x2, clean.y2])
    agreement = []
    for c in (c1, c2):
        members = boxes[cl == c].tolist()
        ious = [
            _box_iou(members[i], members[j])
            for i in range(len(members))
            for j in range(i + 1, len(members))
        ]
        agreement.append(sum(ious) / len(ious))
    between = _box_iou([float(m[c1]) for m in means], [float(m[c2]) for m in means])
    if between <= min(agreement):  # identical workers' answers are kept as they are
        return None
    return c1 if agreement[0] < agreement[1] else c2


def _extra_votes(clean: _Clean, cl: IntArray, spare: dict[int, int]) -> IntArray:
    """Second boxes that give their worker's object another label (one per worker and label)."""
    out, seen = [], set()
    for g, t in sorted(spare.items()):
        key = (int(cl[t]), int(clean.worker[g]), int(clean.code[g]))
        if clean.code[g] != clean.code[t] and key not in seen:
            seen.add(key)
            out.append(g)
    return np.asarray(out, dtype=np.intp)


def _record_drops(
    clean: _Clean,
    cl: IntArray,
    size: IntArray,
    kept: BoolArray,
    spare: dict[int, int],
    voted: set[int],
    n: int,
    need: int,
    result: ImageConsolidation,
) -> None:
    """One record per box that is not part of an output box, with the reason."""
    below = np.flatnonzero(~kept[cl])
    for g, wk, b in zip(
        below.tolist(), clean.worker[below].tolist(), clean.box[below].tolist(), strict=True
    ):
        if g in voted:
            continue
        if g in spare:
            detail = f"a second box on the object of this worker's box {int(clean.box[spare[g]])}"
            _drop(result.dropped, wk, b, DropReason.DUPLICATE, detail)
            continue
        k = int(size[cl[g]])
        detail = f"{k} of {n} workers drew it; {need} needed"
        if k >= need:
            detail = f"{k} of {n} workers drew it, but no label was given by {need}"
        _drop(result.dropped, wk, b, DropReason.BELOW_MIN_SUPPORT, detail)


def _fuse(
    clean: _Clean,
    priority: list[str],
    n: int,
    w_all: list[float],
    weighted: bool,
    settings: ConsolidationSettings,
    result: ImageConsolidation,
    explain: bool = True,
) -> None:
    """Cluster, apply the quorum, fuse, vote and score; fills ``result`` (vectorised)."""
    cluster, lo, hi, iou, own_lo, own_hi, own_iou = _cluster(clean, settings.iou_threshold)
    present = np.zeros(int(cluster.max()) + 1, dtype=np.intp)
    present[cluster] = 1
    count = int(present.sum())
    cl = (np.cumsum(present) - 1)[cluster]  # compact cluster ids 0..count-1
    size = np.bincount(cl, minlength=count)
    need = min(settings.min_support or default_min_support(n), n)
    labels_n = len(priority)
    by_label = settings.quorum == "label" and labels_n > 1
    # A worker's second box on an object is a duplicate, not another object: a cluster
    # whose every member reaches the threshold with its own worker's box in a *larger*
    # cluster is dropped (otherwise a low min_support, or two workers who both drew an
    # object twice, would emit the object twice). Equal clusters of the same workers are
    # two objects unless their mean boxes are closer than their own members are.
    smallest = 1 if explain or by_label else need
    cols = (clean.x1, clean.y1, clean.x2, clean.y2)
    means = tuple(np.bincount(cl, weights=v, minlength=count) / size for v in cols)
    own = (own_lo, own_hi, own_iou)
    spare = _second_boxes(clean, cl, size, means, own, settings.iou_threshold, n, smallest)
    gone = cl[np.fromiter(spare, dtype=np.intp, count=len(spare))] if spare else _NONE
    # With the per-label quorum, a second box with another label is that worker giving
    # the object a second label: it votes (as WBF's per-label clusters let it), but does
    # not place the box.
    extra = _extra_votes(clean, cl, spare) if by_label and spare else _NONE
    if by_label:
        flat = cl * labels_n + clean.code  # (cluster, label) cell of every box
        extra_flat = cl[[spare[g] for g in extra.tolist()]] * labels_n + clean.code[extra]
        voters = np.bincount(flat, minlength=count * labels_n)
        np.add.at(voters, extra_flat, 1)
        voters = voters.reshape(count, labels_n)
        label_kept = voters >= need
        label_kept[gone] = False
        kept: BoolArray = np.asarray(label_kept.any(axis=1))
        voted = set(extra[label_kept.reshape(-1)[extra_flat]].tolist())
    else:
        kept = np.asarray(size >= need)
        kept[gone] = False
        voted = set()
    if explain and not kept.all():
        _record_drops(clean, cl, size, kept, spare, voted, n, need, result)
    if not kept.any():
        return
    if weighted:
        wb = np.asarray(w_all, dtype=np.float64)[clean.worker]
        wsum = np.bincount(cl, weights=wb, minlength=count)
        zero = wsum <= 0  # every member has weight 0: fall back to equal weights
        if zero.any():
            wb = np.where(zero[cl], 1.0, wb)
            wsum = np.bincount(cl, weights=wb, minlength=count)
    else:
        wb = np.ones(len(cl))
        wsum = size.astype(np.float64)
    if settings.fusion == "median":
        fused = np.zeros((count, 4))
        by_cluster = np.argsort(cl, kind="stable")
        xyxy = np.column_stack(cols)
        for c, idx in enumerate(np.split(by_cluster, np.cumsum(size)[:-1])):
            if kept[c]:
                fused[c] = _weighted_median(xyxy[idx], wb[idx])
        f_x1, f_y1, f_x2, f_y2 = (fused[:, k] for k in range(4))
    elif weighted:
        f_x1, f_y1, f_x2, f_y2 = (
            np.bincount(cl, weights=wb * v, minlength=count) / wsum for v in cols
        )
    else:
        f_x1, f_y1, f_x2, f_y2 = means
    same = cl[lo] == cl[hi]
    iou_sum = np.bincount(cl[lo[same]], weights=iou[same], minlength=count)
    pairs = size * (size - 1) / 2
    agreement = np.divide(iou_sum, pairs, out=np.zeros(count), where=pairs > 0)
    total = float(np.sum(w_all)) if weighted else float(n)
    label_share: FloatArray | float = 1.0
    if by_label:  # one box per (cluster, label) that reached the quorum
        votes = np.bincount(flat, weights=wb, minlength=count * labels_n)
        if len(extra):  # second boxes' votes come on top of the members' weight
            np.add.at(votes, extra_flat, wb[extra])
        votes = votes.reshape(count, labels_n)
        rows, labs = np.nonzero(label_kept)
        k_box = voters[rows, labs]
        support = votes[rows, labs] / total
        label_share = np.minimum(votes[rows, labs] / wsum[rows], 1.0)
        # the members who gave another label dissent: a contested label ranks below a
        # box nobody contradicts (workers miss objects more often than they mislabel them)
        quality = agreement[rows] * label_share - (1.0 - label_share)
    else:  # one box per kept cluster, its vote winner; scored for all clusters at once
        winner = np.zeros(count, dtype=np.intp)
        if labels_n > 1:
            votes = np.bincount(
                cl * labels_n + clean.code, weights=wb, minlength=count * labels_n
            ).reshape(count, labels_n)
            winner = np.argmax(votes, axis=1)  # first maximum = highest priority on a tie
            label_share = votes[np.arange(count), winner] / wsum
        k_box = size
        support = wsum / total
        quality = agreement * label_share
    confidence = np.minimum(np.maximum(support * (1.0 - (1.0 - quality) / (2.0 * k_box)), 0.0), 1.0)
    if n == 1:
        confidence[:] = 0.0
    if not by_label:
        rows = np.flatnonzero(kept)
        labs, confidence = winner[rows], confidence[rows]
    order = np.lexsort((labs, f_x1[rows], f_y1[rows]))  # ties stay in canonical order
    rows, labs, confidence = rows[order], labs[order], confidence[order]
    names = [priority[k] for k in labs.tolist()]
    x1s, y1s, x2s, y2s = (v[rows].tolist() for v in (f_x1, f_y1, f_x2, f_y2))
    result.boxes = [
        {"label": lab, "left": a, "top": b, "width": c - a, "height": d - b, "confidence": p}
        for lab, a, b, c, d, p in zip(names, x1s, y1s, x2s, y2s, confidence.tolist(), strict=True)
    ]
    if not explain:
        return
    span_w, span_b = int(clean.worker.max()) + 1, int(clean.box.max()) + 1
    members_order = ((cl * span_w + clean.worker) * span_b + clean.box).argsort()
    ends = np.cumsum(size)
    starts = ends - size
    pairs_list = list(
        zip(clean.worker[members_order].tolist(), clean.box[members_order].tolist(), strict=True)
    )
    result.clusters = [
        pairs_list[s:e] for s, e in zip(starts[rows].tolist(), ends[rows].tolist(), strict=True)
    ]
    if voted:  # a second box that gave its label joins that label's box
        where = {
            (c, k): i for i, (c, k) in enumerate(zip(rows.tolist(), labs.tolist(), strict=True))
        }
        for g in sorted(voted):
            i = where[int(cl[spare[g]]), int(clean.code[g])]
            result.clusters[i].append((int(clean.worker[g]), int(clean.box[g])))


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
    quorum: Quorum = "box",
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
    return _consolidate(answers, settings, labels, image_size, weights, explain=False).boxes


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
