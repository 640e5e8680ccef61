"""Box geometry on ``(N, 4)`` numpy arrays of ``x1, y1, x2, y2`` pixels (xyxy).

Ground Truth speaks ``{left, top, width, height}``; the toolkit converts to xyxy at the parse
edge (:func:`xyxy_from_gt`) and back at the serialise edge (:func:`gt_from_xyxy`), so every
computation in between is vectorised. IoU is computed here and nowhere else in the
package (the engine, worker quality and evaluation call it), with safe division: two empty
boxes have IoU 0, never NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from gt_toolkit.errors import ConsolidationError

__all__ = [
    "FloatArray",
    "area",
    "as_xyxy",
    "box_iou",
    "candidate_pairs",
    "clip_xyxy",
    "gt_from_xyxy",
    "iou_columns",
    "iou_matrix",
    "iou_pairs",
    "overlap_pairs",
    "xyxy_from_gt",
]

FloatArray = npt.NDArray[np.float64]
_EMPTY = np.zeros((0, 4), dtype=np.float64)


def as_xyxy(boxes: npt.ArrayLike) -> FloatArray:
    """Coerce to a float64 ``(N, 4)`` array; an empty input gives shape ``(0, 4)``.

    Raises:
        ValueError: the input is not ``N`` rows of 4 numbers.
    """
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return _EMPTY.copy()
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ConsolidationError(f"expected an (N, 4) xyxy array, got shape {arr.shape}")
    return arr


def xyxy_from_gt(boxes: Iterable[Mapping[str, Any]]) -> FloatArray:
    """``[{left, top, width, height}, ...]`` to an ``(N, 4)`` xyxy array.

    Raises:
        KeyError: a box lacks one of the four keys.
        ValueError, TypeError: a coordinate is not a number.
    """
    rows = [
        (float(b["left"]), float(b["top"]), float(b["width"]), float(b["height"])) for b in boxes
    ]
    if not rows:
        return _EMPTY.copy()
    arr = np.array(rows, dtype=np.float64)
    arr[:, 2] += arr[:, 0]
    arr[:, 3] += arr[:, 1]
    return arr


def gt_from_xyxy(xyxy: npt.ArrayLike) -> list[dict[str, float]]:
    """An ``(N, 4)`` xyxy array to ``[{left, top, width, height}, ...]`` (floats)."""
    arr = as_xyxy(xyxy)
    return [
        {"left": x1, "top": y1, "width": x2 - x1, "height": y2 - y1}
        for x1, y1, x2, y2 in arr.tolist()
    ]


def area(xyxy: npt.ArrayLike) -> FloatArray:
    """Areas, with inverted (negative-size) boxes counting as 0."""
    arr = as_xyxy(xyxy)
    w = np.clip(arr[:, 2] - arr[:, 0], 0.0, None)
    h = np.clip(arr[:, 3] - arr[:, 1], 0.0, None)
    result: FloatArray = w * h
    return result


def clip_xyxy(xyxy: npt.ArrayLike, width: float, height: float) -> FloatArray:
    """Clip boxes to the image ``[0, width] x [0, height]``; a box fully outside gets area 0."""
    arr = as_xyxy(xyxy).copy()
    np.clip(arr[:, 0::2], 0.0, float(width), out=arr[:, 0::2])
    np.clip(arr[:, 1::2], 0.0, float(height), out=arr[:, 1::2])
    return arr


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike, *, xywh: bool = False) -> FloatArray:
    """The ``(N, M)`` intersection-over-union matrix of two box sets.

    Safe division: where the union is 0 (two empty boxes) the IoU is 0, so the result is
    always in ``[0, 1]`` and never NaN for finite input. ``xywh=True`` reads ``left, top,
    width, height`` rows and takes each area as ``width x height``, which is pycocotools'
    ``bbIou`` arithmetic to the last bit, so threshold decisions match COCO's.

    Examples:
        >>> iou_matrix([[0, 0, 2, 2]], [[1, 0, 3, 2], [0, 0, 2, 2]]).round(3).tolist()
        [[0.333, 1.0]]
        >>> iou_matrix([[0, 0, 2, 2]], [[1, 0, 2, 2]], xywh=True).round(3).tolist()
        [[0.333]]
    """
    aa, bb = as_xyxy(a), as_xyxy(b)
    if len(aa) == 0 or len(bb) == 0:
        return np.zeros((len(aa), len(bb)), dtype=np.float64)
    if xywh:
        area_a, area_b = aa[:, 2] * aa[:, 3], bb[:, 2] * bb[:, 3]
        aa, bb = aa.copy(), bb.copy()
        aa[:, 2:] += aa[:, :2]
        bb[:, 2:] += bb[:, :2]
    else:
        area_a, area_b = area(aa), area(bb)
    ix = np.minimum(aa[:, None, 2], bb[None, :, 2]) - np.maximum(aa[:, None, 0], bb[None, :, 0])
    iy = np.minimum(aa[:, None, 3], bb[None, :, 3]) - np.maximum(aa[:, None, 1], bb[None, :, 1])
    inter = np.clip(ix, 0.0, None) * np.clip(iy, 0.0, None)
    return _ratio(inter, area_a[:, None] + area_b[None, :] - inter)


def iou_pairs(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Row-wise IoU of two equally long box sets: ``iou(a[i], b[i])`` for every ``i``."""
    aa, bb = as_xyxy(a), as_xyxy(b)
    if len(aa) != len(bb):
        raise ConsolidationError(f"iou_pairs needs equal lengths, got {len(aa)} and {len(bb)}")
    return iou_columns(aa.T, bb.T)


Columns = tuple[FloatArray, FloatArray, FloatArray, FloatArray] | FloatArray
"""Boxes as four arrays ``x1, y1, x2, y2``: a tuple of them or a ``(4, N)`` array."""


def iou_columns(a: Columns, b: Columns) -> FloatArray:
    """Row-wise IoU of boxes given as ``x1, y1, x2, y2`` arrays (see :data:`Columns`)."""
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    iw = np.maximum(np.minimum(ax2, bx2) - np.maximum(ax1, bx1), 0.0)
    ih = np.maximum(np.minimum(ay2, by2) - np.maximum(ay1, by1), 0.0)
    inter = iw * ih
    area_a = np.maximum(ax2 - ax1, 0.0) * np.maximum(ay2 - ay1, 0.0)
    area_b = np.maximum(bx2 - bx1, 0.0) * np.maximum(by2 - by1, 0.0)
    return _ratio(inter, area_a + area_b - inter)


def _ratio(inter: FloatArray, union: FloatArray) -> FloatArray:
    """``inter / union`` where the union is positive, else 0, within ``[0, 1]``."""
    out = np.zeros(np.shape(inter))
    np.divide(inter, union, out=out, where=union > 0)
    result: FloatArray = np.minimum(out, 1.0)
    return result


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xyxy boxes in plain Python: one pair costs far less than a numpy call.

    Same arithmetic as :func:`iou_matrix`; for the engine's few one-pair questions.
    """
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return min(inter / union, 1.0) if union > 0 else 0.0


def candidate_pairs(xyxy: FloatArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """All index pairs ``i < j`` whose boxes overlap with positive area.

    Works on the columns (see :func:`overlap_pairs`), so it stays near-linear for
    hundreds of small boxes, where an ``(N, N)`` matrix would dominate the run time.
    """
    arr = as_xyxy(xyxy)
    x1, y1, x2, y2 = (np.ascontiguousarray(arr[:, k]) for k in range(4))
    return overlap_pairs(x1, y1, x2, y2)


_EMPTY_PAIRS = np.zeros(0, dtype=np.intp)


@overload
def overlap_pairs(
    x1: FloatArray, y1: FloatArray, x2: FloatArray, y2: FloatArray, *, x_sorted: bool = False
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]: ...


@overload
def overlap_pairs(
    x1: FloatArray,
    y1: FloatArray,
    x2: FloatArray,
    y2: FloatArray,
    *,
    x_sorted: bool = False,
    with_iou: Literal[True],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]: ...


def overlap_pairs(
    x1: FloatArray,
    y1: FloatArray,
    x2: FloatArray,
    y2: FloatArray,
    *,
    x_sorted: bool = False,
    with_iou: bool = False,
) -> (
    tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]
    | tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]
):
    """All index pairs ``i < j`` of boxes (given as columns) that overlap with positive area.

    Small sets compare every pair. Larger sets use a band sweep: boxes are cut into
    horizontal bands one "ordinary" box high and sorted by band, then left edge, so the
    partners of a box are two contiguous ranges of that order (its own band to the right,
    the next band within one box width), found with ``searchsorted`` for all boxes at
    once. Boxes much larger than the median are few and are compared with every box.
    Only numpy calls over whole arrays, no per-box Python: about 20 calls per image.
    When the boxes are already sorted by left edge (``x_sorted=True``), a plain x-sweep
    (each box against the boxes that start before its right edge) is tried first: one
    ``searchsorted`` and an expansion, cheaper than the bands while it yields at most
    a dozen candidates per box (few boxes, or a wide image). ``with_iou=True`` also
    returns each pair's IoU (computed with the overlap test).
    """
    n = len(x1)
    if x_sorted and n > 40:
        end = np.searchsorted(x1, x2, side="left")
        count = np.maximum(end - np.arange(1, n + 1), 0)
        if int(count.sum()) <= 12 * n:
            lo = np.arange(n).repeat(count)
            hi = np.arange(len(lo)) + np.repeat(
                np.arange(1, n + 1) - (np.cumsum(count) - count), count
            )
            return _exact(x1, y1, x2, y2, lo, hi, with_iou, ordered=True)
    lo, hi = _candidates(x1, y1, x2, y2)
    return _exact(x1, y1, x2, y2, lo, hi, with_iou)


@lru_cache(maxsize=64)
def _all_pairs(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Every pair ``i < j`` of ``n`` boxes, cached: read the arrays, never write them.

    ``np.triu_indices`` costs more than the whole overlap test at a few boxes.
    """
    lo, hi = np.triu_indices(n, 1)
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


def _candidates(
    x1: FloatArray, y1: FloatArray, x2: FloatArray, y2: FloatArray
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Index pairs ``i != j`` (each unordered pair once) that include every overlapping pair."""
    n = len(x1)
    if n < 2:
        return _EMPTY_PAIRS, _EMPTY_PAIRS
    if n <= 40:
        return _all_pairs(n)
    w, h = x2 - x1, y2 - y1
    half = n // 2
    mw = float(np.partition(w, half)[half])
    mh = float(np.partition(h, half)[half])
    big = (w > 2.5 * mw) | (h > 2.5 * mh) | (w <= 0) | (h <= 0)
    small = np.flatnonzero(~big)
    if len(small) < 2 or mw <= 0 or mh <= 0:
        lo, hi = np.triu_indices(n, 1)
        return lo, hi
    sx1, sy1, sx2 = x1[small], y1[small], x2[small]
    band_h = float(h[small].max())
    max_w = float(w[small].max())
    xmin = float(sx1.min())
    span = float(sx2.max()) - xmin + 2.0 * max_w + 2.0
    eps = 1e-9 * span
    band = np.floor((sy1 - float(sy1.min())) / band_h)
    key = band * span + (sx1 - xmin)
    order = np.argsort(key, kind="stable")
    key, band, sx1, sx2 = key[order], band[order], sx1[order], sx2[order]
    m = len(key)
    pos = np.arange(m)
    # same band: boxes after p that start left of p's right edge; next band: boxes that
    # start within one box width left of p's left edge up to p's right edge.
    same_end = np.searchsorted(key, band * span + (sx2 - xmin) + eps, side="right")
    next_base = (band + 1.0) * span - xmin
    next_start = np.searchsorted(key, next_base + sx1 - max_w - eps, side="right")
    next_end = np.searchsorted(key, next_base + sx2 + eps, side="right")
    starts = np.concatenate([pos + 1, next_start])
    count = np.maximum(np.concatenate([same_end, next_end]) - starts, 0)
    owner = np.repeat(np.concatenate([pos, pos]), count)
    partner = np.arange(len(owner)) + np.repeat(starts - (np.cumsum(count) - count), count)
    sorted_index = small[order]
    lo, hi = sorted_index[owner], sorted_index[partner]
    bigs = np.flatnonzero(big)
    if len(bigs):
        b_lo = np.repeat(bigs, n)
        b_hi = np.tile(np.arange(n), len(bigs))
        keep = (b_hi != b_lo) & (~big[b_hi] | (b_hi > b_lo))
        lo = np.concatenate([lo, b_lo[keep]])
        hi = np.concatenate([hi, b_hi[keep]])
    return lo, hi


def _exact(
    x1: FloatArray,
    y1: FloatArray,
    x2: FloatArray,
    y2: FloatArray,
    lo: npt.NDArray[np.intp],
    hi: npt.NDArray[np.intp],
    with_iou: bool,
    ordered: bool = False,
) -> (
    tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]
    | tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], FloatArray]
):
    """Keep the candidate pairs that overlap with positive area, as ``lo < hi``.

    ``ordered``: the candidates come from the x-sweep (``lo < hi`` in left-edge order, so
    ``x1[hi] >= x1[lo]`` and most overlap in x): the y test runs first, and the x test
    only on the few that pass it (the sweep's candidates are mostly other rows).
    """
    if ordered:
        ih = np.minimum(y2[lo], y2[hi]) - np.maximum(y1[lo], y1[hi])
        rows = ih > 0
        lo, hi, ih = lo[rows], hi[rows], ih[rows]
        iw = np.minimum(x2[lo], x2[hi]) - x1[hi]
        keep = iw > 0
    else:
        iw = np.minimum(x2[lo], x2[hi]) - np.maximum(x1[lo], x1[hi])
        ih = np.minimum(y2[lo], y2[hi]) - np.maximum(y1[lo], y1[hi])
        keep = (iw > 0) & (ih > 0)
    a, b = lo[keep].astype(np.intp, copy=False), hi[keep].astype(np.intp, copy=False)
    first, second = (a, b) if ordered else (np.minimum(a, b), np.maximum(a, b))
    if not with_iou:
        return first, second
    inter = iw[keep] * ih[keep]
    area = (x2 - x1) * (y2 - y1)  # per box, then gathered: fewer calls than per pair
    iou: FloatArray = np.minimum(inter / (area[a] + area[b] - inter), 1.0)
    return first, second, iou
