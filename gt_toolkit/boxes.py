"""Box geometry on ``(N, 4)`` numpy arrays of ``x1, y1, x2, y2`` pixels (xyxy).

Ground Truth speaks ``{left, top, width, height}``; the toolkit converts to xyxy at the parse
edge (:func:`xyxy_from_gt`) and back at the serialise edge (:func:`gt_from_xyxy`), so every
computation in between is vectorised. IoU uses safe division: two empty boxes have IoU 0,
never NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FloatArray",
    "area",
    "as_xyxy",
    "candidate_pairs",
    "clip_xyxy",
    "gt_from_xyxy",
    "iou_matrix",
    "iou_pairs",
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
        raise ValueError(f"expected an (N, 4) xyxy array, got shape {arr.shape}")
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


def iou_matrix(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """The ``(N, M)`` intersection-over-union matrix of two box sets.

    Safe division: where the union is 0 (two empty boxes) the IoU is 0, so the result is
    always in ``[0, 1]`` and never NaN for finite input.

    Examples:
        >>> iou_matrix([[0, 0, 2, 2]], [[1, 0, 3, 2], [0, 0, 2, 2]]).round(3).tolist()
        [[0.333, 1.0]]
    """
    aa, bb = as_xyxy(a), as_xyxy(b)
    if len(aa) == 0 or len(bb) == 0:
        return np.zeros((len(aa), len(bb)), dtype=np.float64)
    ix = np.minimum(aa[:, None, 2], bb[None, :, 2]) - np.maximum(aa[:, None, 0], bb[None, :, 0])
    iy = np.minimum(aa[:, None, 3], bb[None, :, 3]) - np.maximum(aa[:, None, 1], bb[None, :, 1])
    inter = np.clip(ix, 0.0, None) * np.clip(iy, 0.0, None)
    union = area(aa)[:, None] + area(bb)[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    result: FloatArray = np.clip(out, 0.0, 1.0)
    return result


def iou_pairs(a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
    """Row-wise IoU of two equally long box sets: ``iou(a[i], b[i])`` for every ``i``."""
    aa, bb = as_xyxy(a), as_xyxy(b)
    if len(aa) != len(bb):
        raise ValueError(f"iou_pairs needs equal lengths, got {len(aa)} and {len(bb)}")
    ix = np.minimum(aa[:, 2], bb[:, 2]) - np.maximum(aa[:, 0], bb[:, 0])
    iy = np.minimum(aa[:, 3], bb[:, 3]) - np.maximum(aa[:, 1], bb[:, 1])
    inter = np.clip(ix, 0.0, None) * np.clip(iy, 0.0, None)
    union = area(aa) + area(bb) - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    result: FloatArray = np.clip(out, 0.0, 1.0)
    return result


def candidate_pairs(xyxy: FloatArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """All index pairs ``i < j`` whose boxes overlap with positive area.

    Small sets use every pair. Larger sets hash boxes into a uniform grid whose cell is the
    median box size, so only boxes sharing a cell are compared; a pair is reported once, in
    the cell holding the top-left corner of its intersection. This keeps consolidation
    near-linear for hundreds of small boxes, where an ``(N, N)`` matrix (or an x-sweep on a
    tall image) would dominate the run time.
    """
    n = len(xyxy)
    empty = np.zeros(0, dtype=np.intp)
    if n < 2:
        return empty, empty
    x1, y1, x2, y2 = (np.ascontiguousarray(xyxy[:, k]) for k in range(4))
    if n <= 48:
        lo, hi = np.triu_indices(n, 1)
    else:
        lo, hi = _grid_pairs(x1, y1, x2, y2)
    keep = (np.minimum(x2[lo], x2[hi]) > np.maximum(x1[lo], x1[hi])) & (
        np.minimum(y2[lo], y2[hi]) > np.maximum(y1[lo], y1[hi])
    )
    return lo[keep].astype(np.intp), hi[keep].astype(np.intp)


def _expand(counts: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For each ``k``, ``counts[k]`` entries: (owner ``k``, local index ``0..counts[k]-1``)."""
    owner = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, local


def _grid_pairs(
    x1: FloatArray, y1: FloatArray, x2: FloatArray, y2: FloatArray
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    n = len(x1)
    cell = max(float(np.median(np.concatenate([x2 - x1, y2 - y1]))) * 1.5, 1e-6)
    cx0, cy0 = (x1 // cell).astype(np.int64), (y1 // cell).astype(np.int64)
    nx = (x2 // cell).astype(np.int64) - cx0 + 1
    per_box = nx * ((y2 // cell).astype(np.int64) - cy0 + 1)
    if int(per_box.sum()) > 64 * n:  # a few huge boxes: every pair is cheaper
        lo, hi = np.triu_indices(n, 1)
        return lo.astype(np.int64), hi.astype(np.int64)
    box, local = _expand(per_box)
    row = int(cx0.min()), int(cy0.min())
    width = int((cx0 + nx).max()) - row[0] + 1
    bx = nx[box]
    cx = cx0[box] + local % bx
    cy = cy0[box] + local // bx
    key = (cy - row[1]) * width + (cx - row[0])
    order = np.argsort(key)
    key, box = key[order], box[order]
    first, offset = _expand(np.searchsorted(key, key, side="right") - np.arange(len(key)) - 1)
    second = first + 1 + offset
    i, j = box[first], box[second]
    # Report each pair only in the cell of its intersection's top-left corner.
    own_key = (np.maximum(cy0[i], cy0[j]) - row[1]) * width + (np.maximum(cx0[i], cx0[j]) - row[0])
    own = key[first] == own_key
    i, j = i[own], j[own]
    return np.minimum(i, j), np.maximum(i, j)
