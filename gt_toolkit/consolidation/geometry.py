"""Box geometry on ``(N, 4)`` numpy arrays of ``x1, y1, x2, y2`` pixels (xyxy).

Ground Truth speaks ``{left, top, width, height}``; the toolkit converts to xyxy at the parse
edge (:func:`xyxy_from_gt`) and back at the serialise edge (:func:`gt_from_xyxy`), so every
computation in between is vectorised. IoU is computed here and nowhere else in the
package (the engine, worker quality and evaluation call it), with safe division: two empty
boxes have IoU 0, never NaN.
"""

from __future__ import annotations

import math
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
    "clip_rows",
    "clip_to",
    "clip_xyxy",
    "far_corner",
    "gt_from_xyxy",
    "image_extent",
    "iou_columns",
    "iou_matrix",
    "iou_pairs",
    "overlap_pairs",
    "sorted_overlaps",
    "xyxy_from_gt",
]

FloatArray = npt.NDArray[np.float64]
_EMPTY = np.zeros((0, 4), dtype=np.float64)
_ZERO = np.zeros(())
"""A 0-d zero operand: a Python ``0.0`` costs a conversion (~0.25 us) in every numpy call."""
_ZERO.setflags(write=False)


def image_extent(image_size: Mapping[str, Any]) -> tuple[float, float]:
    """An image size's width and height as floats.

    Raises:
        ConsolidationError: not a positive, finite size: against a 0-wide image every box
            would be dropped as outside it, a caller's mistake turned into lost labels.
    """
    width, height = float(image_size["width"]), float(image_size["height"])
    if not (0 < width < math.inf and 0 < height < math.inf):
        raise ConsolidationError(f"image size must be positive and finite, got {image_size}")
    return width, height


def clip_rows(rows: FloatArray, width: float, height: float) -> FloatArray:
    """Clip corner rows ``x1, y1, x2, y2`` (``(4, n)``) to the image, in place; NaN stays.

    Plain ufuncs: ``np.clip``'s wrapper costs more than the work on one image's boxes.
    """
    return clip_to(rows, _far_corner(width, height))


def clip_to(rows: FloatArray, far: FloatArray) -> FloatArray:
    """Clip corner rows to ``[0, far]`` in place.

    ``far``: a column ``x, y, x, y`` (:func:`far_corner`), or one such column per box.
    """
    return np.minimum(np.maximum(rows, _ZERO, out=rows), far, out=rows)


def far_corner(image_size: Mapping[str, Any]) -> FloatArray:
    """The image's far corner as a read-only ``(4, 1)`` column ``x, y, x, y``.

    Checked as :func:`image_extent` checks it.
    """
    return _far_corner(*image_extent(image_size))


@lru_cache(maxsize=64)
def _far_corner(width: float, height: float) -> FloatArray:
    """The image's far corner as a ``(4, 1)`` column ``x, y, x, y``.

    Cached (read only): a job has a few image sizes, and building it costs a numpy call.
    """
    far = np.array([[width], [height], [width], [height]])
    far.setflags(write=False)
    return far


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
    clip_rows(arr.T, float(width), float(height))
    return arr


def iou_matrix(
    a: npt.ArrayLike, b: npt.ArrayLike, *, xywh: bool = False, crowd: npt.ArrayLike | None = None
) -> FloatArray:
    """The ``(N, M)`` intersection-over-union matrix of two box sets.

    Safe division: where the union is 0 (two empty boxes) the IoU is 0, so the result is
    always in ``[0, 1]`` and never NaN for finite input. ``xywh=True`` reads ``left, top,
    width, height`` rows and takes each area as ``width x height``, which is pycocotools'
    ``bbIou`` arithmetic to the last bit, so threshold decisions match COCO's. Columns
    flagged in ``crowd`` (``M`` booleans) divide by the ``a`` box's area instead of the
    union, as ``bbIou`` does for an ``iscrowd`` region: the share of the box inside it.

    Examples:
        >>> iou_matrix([[0, 0, 2, 2]], [[1, 0, 3, 2], [0, 0, 2, 2]]).round(3).tolist()
        [[0.333, 1.0]]
        >>> iou_matrix([[0, 0, 2, 2]], [[1, 0, 2, 2]], xywh=True).round(3).tolist()
        [[0.333]]
        >>> iou_matrix([[0, 0, 2, 2]], [[1, 0, 9, 9]], xywh=True, crowd=[True]).tolist()
        [[0.5]]
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
    union = area_a[:, None] + area_b[None, :] - inter
    if crowd is not None and np.any(crowd):
        union = np.where(np.asarray(crowd, dtype=bool)[None, :], area_a[:, None], union)
    return _ratio(inter, union)


def iou_pairs(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Row-wise IoU of two equally long box sets: ``iou(a[i], b[i])`` for every ``i``."""
    aa, bb = as_xyxy(a), as_xyxy(b)
    if len(aa) != len(bb):
        raise ConsolidationError(f"iou_pairs needs equal lengths, got {len(aa)} and {len(bb)}")
    return iou_columns(aa.T, bb.T)


Columns = tuple[FloatArray, FloatArray, FloatArray, FloatArray] | FloatArray
"""Boxes as four arrays ``x1, y1, x2, y2``: a tuple of them or a ``(4, N)`` array."""


def iou_columns(a: Columns, b: Columns) -> FloatArray:
    """Row-wise IoU of boxes given as ``x1, y1, x2, y2`` arrays (see :data:`Columns`).

    Works on the ``(2, N)`` halves: half the numpy calls of a column at a time.
    """
    aa, bb = np.asarray(a), np.asarray(b)
    # min and max of all 4 rows, then sliced: cheaper than on the halves (no slicing of operands)
    wh = np.minimum(aa, bb)[2:] - np.maximum(aa, bb)[:2]
    np.maximum(wh, _ZERO, out=wh)
    inter = wh[0] * wh[1]
    size_a, size_b = aa[2:] - aa[:2], bb[2:] - bb[:2]
    np.maximum(size_a, _ZERO, out=size_a)
    np.maximum(size_b, _ZERO, out=size_b)
    union = size_a[0] * size_a[1] + size_b[0] * size_b[1]
    union -= inter
    # no clip to 1: rounding is monotone, so inter <= each area and union >= inter
    return _quotient(inter, union)


def _quotient(inter: FloatArray, union: FloatArray) -> FloatArray:
    """``inter / union`` where the union is positive, else 0."""
    if np.count_nonzero(union > _ZERO) == union.size:  # the usual case: where= costs 1.5 us more
        quotient: FloatArray = inter / union
        return quotient
    out = np.zeros(np.shape(inter))
    np.divide(inter, union, out=out, where=union > 0)
    return out


def _ratio(inter: FloatArray, union: FloatArray) -> FloatArray:
    """``inter / union`` where the union is positive, else 0, within ``[0, 1]``."""
    result = _quotient(inter, union)
    return np.minimum(result, 1.0, out=result)


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
    return overlap_pairs(np.ascontiguousarray(as_xyxy(xyxy).T))


IntArray = npt.NDArray[np.intp]
_Overlaps = tuple[IntArray, IntArray, FloatArray]  # lo, hi, intersection area


@overload
def overlap_pairs(xyxy: FloatArray, *, x_sorted: bool = False) -> tuple[IntArray, IntArray]: ...


@overload
def overlap_pairs(
    xyxy: FloatArray, *, x_sorted: bool = False, with_iou: Literal[True]
) -> tuple[IntArray, IntArray, FloatArray]: ...


def overlap_pairs(
    xyxy: FloatArray, *, x_sorted: bool = False, with_iou: bool = False
) -> tuple[IntArray, IntArray] | tuple[IntArray, IntArray, FloatArray]:
    """All index pairs ``i < j`` of boxes (``xyxy``: one row per corner) that overlap.

    Overlap means positive area. Small sets compare every pair, larger ones sweep
    (:func:`_bands`). When the boxes are already sorted by left edge (``x_sorted=True``),
    a plain x-sweep (each box against the boxes that start before its right edge) is
    tried first: cheaper than the bands while it yields at most a dozen candidates per
    box (few boxes, or a wide image). Only numpy calls over whole arrays (or blocks of
    them), no per-box Python. ``with_iou=True`` also returns each pair's IoU.
    """
    n = xyxy.shape[1]
    if n <= 40:
        lo, hi, inter_areas = _few(xyxy)
        if not with_iou:
            return lo, hi
        inter = inter_areas[0]
        union = inter_areas[1] + inter_areas[2]
    else:
        lo, hi, inter = _sweep_or_bands(xyxy, x_sorted)
        if not with_iou:
            return lo, hi
        wh = xyxy[2:] - xyxy[:2]
        area = wh[0] * wh[1]  # per box, then gathered: fewer calls than per pair
        union = area.take(lo) + area.take(hi)
    union -= inter
    # no clip to 1 and no zero test: each area >= inter > 0 (rounding is monotone), so
    # union >= inter; the rare 0 / 0 of underflowed areas is NaN, as it always was
    iou: FloatArray = inter / union
    return lo, hi, iou


def _sweep_or_bands(xyxy: FloatArray, x_sorted: bool) -> _Overlaps:
    """The overlapping pairs of over 40 boxes: an x-sweep or bands (see :func:`overlap_pairs`)."""
    n = xyxy.shape[1]
    if not x_sorted or (n > _BOUND_FROM and _many_candidates(xyxy[0], xyxy[2], n)):
        return _bands(xyxy, x_sorted)
    end = xyxy[0].searchsorted(xyxy[2], side="left")  # the method: np.searchsorted costs 1 us more
    count = end - _arange(n + 1)[1:]
    np.maximum(count, 0, out=count)
    ends = np.add.accumulate(count)  # np.cumsum costs 1.4 us more (276 boxes)
    if int(ends[-1]) > 12 * n:
        return _bands(xyxy, x_sorted)
    return _sweep(xyxy, _arange(n), end, count, ends, True)


def sorted_overlaps(
    xyxy: FloatArray, image: IntArray, bounds: Sequence[int]
) -> tuple[IntArray, IntArray, FloatArray, list[int]]:
    """:func:`overlap_pairs` (``x_sorted=True, with_iou=True``) of several images at once.

    The boxes of image ``i`` are columns ``bounds[i]:bounds[i + 1]`` of ``xyxy``, sorted
    by left edge; ``image`` is each box's image. One x-sweep serves every image whose
    :func:`overlap_pairs` sweeps or tests every pair (both give the pairs by ``lo``, then
    ``hi``, and the same IoU bits); the images it would cut into bands are returned, for
    :func:`overlap_pairs` to do one by one. Pairs are global indices, image after image.
    """
    m = xyxy.shape[1]
    # (image, left edge) as one complex key: numpy orders complex numbers by their real,
    # then imaginary part, so a search never leaves the box's own image
    keys = image + 1j * xyxy[0]
    end = keys.searchsorted(image + 1j * xyxy[2], side="left")
    count = end - _arange(m + 1)[1:]
    np.maximum(count, 0, out=count)
    sizes = np.diff(bounds)
    starts = np.asarray(bounds[:-1])
    filled = sizes > 0
    per_image = np.zeros(len(sizes), dtype=np.intp)
    per_image[filled] = np.add.reduceat(count, starts[filled])
    dense = (sizes > 40) & (per_image > 12 * sizes)
    for i in (sizes > _BOUND_FROM).nonzero()[0].tolist():
        a, b = bounds[i], bounds[i + 1]
        dense[i] |= _many_candidates(xyxy[0, a:b], xyxy[2, a:b], b - a)
    bands = dense.nonzero()[0].tolist()
    for i in bands:  # left to overlap_pairs: no candidates here
        count[bounds[i] : bounds[i + 1]] = 0
    ends = np.add.accumulate(count)
    lo, hi, inter = _sweep(xyxy, _arange(m), end, count, ends, True)
    wh = xyxy[2:] - xyxy[:2]
    area = wh[0] * wh[1]
    union = area.take(lo) + area.take(hi)
    union -= inter
    iou: FloatArray = inter / union
    return lo, hi, iou, bands


_INDICES = np.arange(8192)
_INDICES.setflags(write=False)


def _arange(n: int) -> IntArray:
    """``np.arange(n)``, read only: a slice of a constant where it fits (0.1 us, not 1.4)."""
    return _INDICES[:n] if n <= len(_INDICES) else np.arange(n)


_BOUND_FROM = 384
"""Boxes from which :func:`_many_candidates` runs first: below, a full search costs little."""


def _many_candidates(x1: FloatArray, x2: FloatArray, n: int) -> bool:
    """Whether the x-sweep of left-sorted boxes surely has over a dozen candidates per box.

    A lower bound on the count of boxes starting after ``i`` and before ``x2[i]``: if the
    box ``k`` places after ``i`` does, at least ``k`` do (the ``x1`` are sorted). Three
    compares of slices: 8 us where the ``searchsorted`` they spare takes 83 (2,300 boxes).
    """
    bound = sum(np.count_nonzero(x1[k:] < x2[:-k]) for k in (12, 24, 36))
    return int(bound) > n  # 12 boxes more for each k passed: 12 * bound > 12 * n


@lru_cache(maxsize=64)
def _all_pairs(n: int) -> tuple[IntArray, IntArray]:
    """Every pair ``i < j`` of ``n`` boxes, and where their corners lie, cached: read only.

    Returns the ``(2, P)`` pairs and a ``(4, 2, 3, P)`` index into the flattened ``(4, n)``
    boxes, so one ``take`` gathers every operand of :func:`_few`: for x then y, the far
    edges ``hi, hi, hi'`` and ``hi', hi, hi'``, the near ones ``lo, lo, lo'`` and ``lo',
    lo, lo'`` (``lo``, ``hi`` of box ``i``; ``lo'``, ``hi'`` of ``j``); ``min(hi, hi) =
    hi``, so one ``min - max`` gives the intersection and both boxes' sizes. Coordinates
    on the second axis: each is one integer index away, cheaper than slicing.
    ``np.triu_indices`` costs more than the whole test.
    """
    pairs = np.stack(np.triu_indices(n, 1))
    i, j = pairs
    lo_i, lo_j = np.stack([i, n + i]), np.stack([j, n + j])  # x then y
    hi_i, hi_j = 2 * n + lo_i, 2 * n + lo_j
    where = np.stack(
        [
            np.stack([hi_i, hi_i, hi_j], axis=1),
            np.stack([hi_j, hi_i, hi_j], axis=1),
            np.stack([lo_i, lo_i, lo_j], axis=1),
            np.stack([lo_j, lo_i, lo_j], axis=1),
        ]
    )
    pairs.setflags(write=False)
    where.setflags(write=False)
    return pairs, where


def _few(xyxy: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
    """The overlapping pairs of a few boxes, by testing every pair, and ``(3, P)`` areas.

    The rows: each pair's intersection, the area of its first box, of its second. One
    gather and one ``min - max`` for the intersection and the sizes: at a handful of boxes
    numpy's per-call cost is the run time.
    """
    pairs, where = _all_pairs(xyxy.shape[1])
    corner = xyxy.take(where)
    wh = np.minimum(corner[0], corner[1]) - np.maximum(corner[2], corner[3])  # (2, 3, P)
    keep = np.minimum(wh[0, 0], wh[1, 0]) > _ZERO  # both sides positive, NaN not
    inter_areas = wh[0] * wh[1]  # the intersection, the area of i, of j
    if np.count_nonzero(keep) < pairs.shape[1]:
        rows = keep.nonzero()[0]  # and 2 takes: 2/3 of the cost of 2 compress
        pairs, inter_areas = pairs.take(rows, axis=1), inter_areas.take(rows, axis=1)
    else:  # the usual case at one object per image: no filtering
        pairs = pairs.copy()
    return pairs[0], pairs[1], inter_areas


def _bands(xyxy: FloatArray, x_sorted: bool) -> _Overlaps:
    """The overlapping pairs of a large set of boxes, by a band sweep.

    Boxes are cut into horizontal bands one "ordinary" box high and sorted by band, then
    left edge, so the partners of a box are two contiguous ranges of that order (its own
    band to the right, the next band within one box width), found with ``searchsorted``
    for all boxes at once. Boxes much larger than the median are few and are compared
    with every box.
    """
    n = xyxy.shape[1]
    x1, y1, x2, y2 = xyxy
    wh = xyxy[2:] - xyxy[:2]
    w, h = wh
    half = n // 2
    mw, mh = np.partition(wh, half, axis=1)[:, half].tolist()  # both medians in one call
    # fmin skips a NaN: not positive means a side <= 0, as (w <= 0) | (h <= 0)
    big = (w > 2.5 * mw) | (h > 2.5 * mh) | (np.fmin(w, h) <= _ZERO)
    small = (~big).nonzero()[0]
    if len(small) < 2 or mw <= 0 or mh <= 0:  # no ordinary size: every pair
        first = np.arange(n)
        count = n - 1 - first
        return _sweep(xyxy, first, np.full(n, n), count, count.cumsum(), False)
    sx1, sy1, sx2 = x1.take(small), y1.take(small), x2.take(small)  # take: half of x1[small]
    band_h = float(h.take(small).max())
    max_w = float(w.take(small).max())
    xmin, ymin = float(sx1.min()), float(sy1.min())
    span = float(sx2.max()) - xmin + 2.0 * max_w + 2.0
    eps = 1e-9 * span
    band = np.floor((sy1 - ymin) / band_h)
    key = band * span + (sx1 - xmin)
    last = float(band.max())
    exact = (last + 2.0) * span < 2.0**50  # keys of different bands never round together
    if x_sorted and exact and last < 2**15:  # then key order is band order: a radix sort
        order = band.astype(np.int16).argsort(kind="stable")  # a third of argsort(key)
    else:
        order = key.argsort(kind="stable")
    perm = small.take(order)  # the test reads the boxes in band order: nearby in memory
    key, band, sx1, sx2 = key.take(order), band.take(order), sx1.take(order), sx2.take(order)
    pos = _arange(len(key))
    # same band: boxes after p that start left of p's right edge; next band: boxes that
    # start within one box width left of p's left edge up to p's right edge.
    same_end = key.searchsorted(band * span + (sx2 - xmin) + eps, side="right")
    near, next_base = pos, (band + 1.0) * span - xmin
    if exact:  # a box ending above the next band has no partner there: half the searches
        near = (np.floor((y2.take(perm) - ymin) / band_h) > band).nonzero()[0]
        next_base, sx1, sx2 = next_base.take(near), sx1.take(near), sx2.take(near)
    next_start = key.searchsorted(next_base + sx1 - max_w - eps, side="right")
    next_end = key.searchsorted(next_base + sx2 + eps, side="right")
    stop = np.concatenate([same_end, next_end])
    count = np.maximum(stop - np.concatenate([pos + 1, next_start]), 0)
    ends = np.add.accumulate(count)  # np.cumsum costs 1.4 us more
    owner = np.concatenate([pos, near])
    # four rows, not xyxy.take(perm, axis=1): a 74 KiB block (2,300 boxes) freed next to
    # the heap top let glibc trim it and fault it back in each image (160 faults per image)
    boxes = (x1.take(perm), y1.take(perm), x2.take(perm), y2.take(perm))
    lo, hi, inter = _sweep(boxes, owner, stop, count, ends, False)
    lo, hi = perm.take(lo), perm.take(hi)
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    bigs = big.nonzero()[0]
    if not len(bigs):
        return lo, hi, inter
    b_lo = np.repeat(bigs, n)
    b_hi = np.tile(np.arange(n), len(bigs))
    keep = (b_hi != b_lo) & (~big[b_hi] | (b_hi > b_lo))
    m_lo, m_hi, m_inter = _overlapping(xyxy, b_lo.compress(keep), b_hi.compress(keep), False)
    return (
        np.concatenate([lo, np.minimum(m_lo, m_hi)]),
        np.concatenate([hi, np.maximum(m_lo, m_hi)]),
        np.concatenate([inter, m_inter]),
    )


_BLOCK = 6144
"""Candidate pairs tested at once: a block's temporaries (48 KiB each) stay in the cache and
well under glibc's 128 KiB ``mmap`` threshold, so the allocator reuses them. At 16,384
(128 KiB each) 5 workers x 500 boxes took about 250 page faults per image and 4.7 ms
instead of 4.2; at 4,096 the 5,400 candidates of 3 x 500 took two blocks (about 20
numpy calls more) where 6,144 takes one."""


def _sweep(
    boxes: Columns,
    owner: IntArray,
    stop: IntArray,
    count: IntArray,
    ends: IntArray,
    x_sorted: bool,
) -> _Overlaps:
    """The overlapping pairs of each box ``owner[i]`` and the ``count[i]`` before ``stop[i]``.

    Blocks of about ``_BLOCK`` candidates are expanded and tested one after the other, in
    order. The ``k``-th candidate (counting over all boxes) of box ``i`` is ``k + stop[i]
    - ends[i]`` (``ends``: the running count): one subtraction per box. ``x_sorted``: the
    x-sweep, whose owners are all boxes in order (``owner[i] = i``).
    """
    total = int(ends[-1]) if len(ends) else 0
    base = stop - ends
    if total <= _BLOCK:  # one block (every image of up to ~100 objects): no cuts to find
        hi = _arange(total) + base.repeat(count)
        lo_y = _lo_y(boxes, count, x_sorted)
        return _overlapping(boxes, owner.repeat(count), hi, x_sorted, lo_y)
    cuts = ends.searchsorted(np.arange(_BLOCK, total, _BLOCK), side="right").tolist()
    parts = []
    for i0, i1 in zip([0, *cuts], [*cuts, len(count)], strict=True):
        if i1 <= i0:
            continue
        c = count[i0:i1]
        lo = owner[i0:i1].repeat(c)
        done = int(ends[i0 - 1]) if i0 else 0
        hi = _arange(len(lo)) + (base[i0:i1] + done).repeat(c)
        lo_y = _lo_y(boxes, c, x_sorted, slice(i0, i1))
        parts.append(_overlapping(boxes, lo, hi, x_sorted, lo_y))
    los, his, inters = zip(*parts, strict=True)
    return np.concatenate(los), np.concatenate(his), np.concatenate(inters)


def _lo_y(
    boxes: Columns, count: IntArray, x_sorted: bool, part: slice = slice(None)
) -> tuple[FloatArray, FloatArray] | None:
    """The x-sweep owners' top and bottom edges, each repeated ``count`` times, else None.

    The x-sweep's owners are the boxes in order, so a repeat gives what a ``take`` of
    ``lo`` would, at 2/3 of its cost (1.6 against 2.3 us at 3,000 candidates).
    """
    if not x_sorted:
        return None
    _, y1, _, y2 = boxes
    return y1[part].repeat(count), y2[part].repeat(count)


def _overlapping(
    boxes: Columns,
    lo: IntArray,
    hi: IntArray,
    x_sorted: bool,
    lo_y: tuple[FloatArray, FloatArray] | None = None,
) -> _Overlaps:
    """The candidate pairs (columns of ``boxes``) that overlap, and their intersection area.

    Among many candidates the x test runs only on the pairs that pass the y test (a
    sweep's candidates mostly overlap in x, and a quarter in y). ``x_sorted``: ``x1[hi]
    >= x1[lo]``, so the left edge of the intersection is ``x1[hi]``. Gathers are
    ``take`` and filters ``compress``, several times faster than fancy and boolean
    indexing on many pairs. ``lo_y``: the top and bottom edges of the ``lo`` boxes where
    already known (see :func:`_lo_y`).
    """
    x1, y1, x2, y2 = boxes
    top, bottom = (y1.take(lo), y2.take(lo)) if lo_y is None else lo_y
    ih = np.minimum(bottom, y2.take(hi)) - np.maximum(top, y1.take(hi))
    if len(lo) > 256:  # the indices of a quarter, then 3 takes: half the cost of 3 compress
        rows = (ih > _ZERO).nonzero()[0]
        lo, hi, ih = lo.take(rows), hi.take(rows), ih.take(rows)
    left = x1.take(hi) if x_sorted else np.maximum(x1.take(lo), x1.take(hi))
    iw = np.minimum(x2.take(lo), x2.take(hi)) - left
    keep = np.minimum(iw, ih) > _ZERO  # both positive, NaN not: one call fewer than 2 tests
    inter = iw * ih
    if np.count_nonzero(keep) == len(keep):  # x-sweep: every y survivor overlaps in x
        return lo, hi, inter
    rows = keep.nonzero()[0]  # and 3 takes: 2/3 of the cost of 3 compress, from 10 pairs up
    return lo.take(rows), hi.take(rows), inter.take(rows)
