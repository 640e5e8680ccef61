"""Consolidate several workers' polygons (crowd-polygon answers) on one image.

The rules are those of ``docs/consolidation.md`` for boxes: clusters by IoU that never
hold two polygons of one worker (greedy complete linkage over pairs by descending IoU),
label voted inside the cluster, a strict-majority quorum by default, and a deterministic
canonical order. Two differences: IoU comes from shapely (invalid, self-intersecting
polygons are repaired with ``make_valid`` first), and the fused polygon is the *member*
with the highest mean IoU to the others (a medoid; averaging vertices of polygons with
different vertex counts has no meaning). Confidence is the box formula (rule 7, as with
``quorum="box"``: the agreement is the mean pairwise IoU times the label share). Dirty input is
recorded, never fatal, with the box reasons (a worker's repeated polygon is a ``duplicate``).

The output keeps the crowd-polygon shape, one simple ring per polygon; a kept shape that
``make_valid`` or clipping to the image split into parts is written as one polygon per part.

Input shape per polygon: ``{"label": str, "vertices": [{"x": float, "y": float}, ...]}``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gt_toolkit.consolidation.clean import drop_record
from gt_toolkit.consolidation.geometry import image_extent
from gt_toolkit.consolidation.settings import (
    ConsolidationSettings,
    DropReason,
    default_min_support,
)
from gt_toolkit.consolidation.votes import support_confidence
from gt_toolkit.errors import ConsolidationError
from gt_toolkit.types import ImageSize

__all__ = ["PolygonConsolidation", "consolidate_polygons", "polygon_iou"]

_DUPLICATE_IOU = ConsolidationSettings().duplicate_iou  # the same default as for boxes


@dataclass
class PolygonConsolidation:
    """The result for one image (same meaning as :class:`~gt_toolkit.ImageConsolidation`).

    ``polygons`` items are ``{"label", "vertices": [{"x", "y"}, ...], "confidence"}``;
    ``clusters[i]`` lists the ``(worker, index)`` members of ``polygons[i]`` (the same members
    for each part of a split shape).
    """

    polygons: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0
    clusters: list[list[tuple[int, int]]] = field(default_factory=list)


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a geometry (``make_valid`` may add lines or points)."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


# Decimals of a pixel. GEOS's repair and overlay can fail on a nearly degenerate shape (a
# vertex 5e-16 off a line: "TopologyException: side location conflict"); with its vertices
# rounded to this many decimals, it is tried again.
_DECIMALS = 6


def polygon_iou(a: BaseGeometry, b: BaseGeometry) -> float:
    """IoU of two (valid) geometries; 0.0 when both are empty."""
    try:
        union, inter = _overlaid(a, b)
    except shapely.errors.GEOSException:  # snapped to a grid: what GEOS can overlay
        grid = 10.0**-_DECIMALS
        union, inter = _overlaid(shapely.set_precision(a, grid), shapely.set_precision(b, grid))
    return float(inter / union) if union > 0 else 0.0


def _overlaid(a: BaseGeometry, b: BaseGeometry) -> tuple[float, float]:
    """The areas of the union and of the intersection of two geometries."""
    return float(shapely.union(a, b).area), float(shapely.intersection(a, b).area)


def _repaired(points: list[tuple[float, float]], frame: BaseGeometry | None) -> BaseGeometry:
    """The polygon of ``points`` made valid, its polygonal part, clipped to ``frame``."""
    with np.errstate(over="ignore", invalid="ignore"):  # huge coordinates: the caller's check
        geom = _polygonal(shapely.make_valid(shapely.Polygon(points)))
        return geom if frame is None else _polygonal(shapely.intersection(geom, frame))


def _read(
    raw: Any, labels: frozenset[str] | None, frame: BaseGeometry | None
) -> tuple[BaseGeometry, str] | tuple[DropReason, str]:
    """One answer's repaired (and clipped) shape and label, or why it is dropped."""
    if not isinstance(raw, Mapping):
        return DropReason.MALFORMED, "not an object"
    label = raw.get("label")
    if not isinstance(label, str) or not label:
        return DropReason.MISSING_LABEL, f"label {label!r}"
    if labels is not None and label not in labels:
        return DropReason.UNKNOWN_LABEL, f"label {label!r} not in the label list"
    vertices = raw.get("vertices")
    if not isinstance(vertices, Sequence) or isinstance(vertices, str):
        return DropReason.MALFORMED, f"vertices must be a list, got {type(vertices).__name__}"
    try:
        points = [(float(v["x"]), float(v["y"])) for v in vertices]
    except OverflowError:  # an int beyond the float range
        return DropReason.NON_FINITE, "a vertex too large for a float"
    except (KeyError, TypeError, ValueError):
        return DropReason.MALFORMED, "vertices must be a list of {x, y} numbers"
    if not all(math.isfinite(c) for p in points for c in p):
        return DropReason.NON_FINITE, "NaN or infinite vertex"
    if len(points) < 3:
        return DropReason.NON_POSITIVE_SIZE, f"{len(points)} vertices"
    try:
        geom = _repaired(points, frame)
    except shapely.errors.GEOSException:
        try:
            geom = _repaired([(round(x, _DECIMALS), round(y, _DECIMALS)) for x, y in points], frame)
        except shapely.errors.GEOSException as exc:
            return DropReason.MALFORMED, f"a shape GEOS cannot repair: {str(exc)[:120]}"
    with np.errstate(over="ignore", invalid="ignore"):  # huge coordinates: caught below
        area = geom.area
    if not math.isfinite(area):
        return DropReason.NON_FINITE, "area too large for a float"
    if geom.is_empty or area <= 0:
        return DropReason.NON_POSITIVE_SIZE if frame is None else DropReason.OUTSIDE_IMAGE, (
            "no area after repair" + (" and clipping" if frame is not None else "")
        )
    return geom, label


def _parts(geom: BaseGeometry) -> list[BaseGeometry]:
    """A shape's polygon parts, top-left first.

    The crowd-polygon shape is one simple ring, so a shape that repair or clipping split
    into parts is written as one ring per part; a hole (only a ring that touches itself makes
    one, and crowd-polygon does not let a worker draw that) is filled.
    """
    return sorted(shapely.get_parts(geom), key=lambda g: (g.bounds[1], g.bounds[0], -g.area))


class _Item(NamedTuple):
    """One valid polygon: its canonical sort key, worker, index in their answer, shape, label."""

    key: tuple[Any, ...]
    worker: int
    box: int
    geom: BaseGeometry
    label: str


def consolidate_polygons(
    answers: Sequence[Sequence[Mapping[str, Any]]],
    *,
    iou_threshold: float = 0.5,
    min_support: int | None = None,
    labels: Sequence[str] | None = None,
    image_size: ImageSize | None = None,
    duplicate_iou: float = _DUPLICATE_IOU,
) -> PolygonConsolidation:
    """Consolidate one image's polygon answers (one list per worker who answered).

    ``duplicate_iou``: the IoU at which a worker's later same-label polygon (canonical order)
    repeats an earlier one and is dropped as ``duplicate``, as for boxes. A kept shape that
    repair or clipping split into parts gives one output polygon per part (see
    :func:`_parts`), each with the cluster's label, confidence and members.

    Raises:
        ConsolidationError: ``iou_threshold`` or ``duplicate_iou`` outside ``(0, 1]``, or
            ``min_support < 1``. Dirty polygons never raise; they are listed in ``dropped``.
    """
    for name, value in (("iou_threshold", iou_threshold), ("duplicate_iou", duplicate_iou)):
        if not 0.0 < value <= 1.0:
            raise ConsolidationError(f"{name} must be in (0, 1], got {value}")
    if min_support is not None and min_support < 1:
        raise ConsolidationError(f"min_support must be >= 1, got {min_support}")
    n = len(answers)
    result = PolygonConsolidation(workers=n)
    items = _read_all(answers, labels, image_size, result.dropped)
    items, ious = _drop_repeats(items, _overlaps(items), duplicate_iou, result.dropped)
    need = min(min_support or default_min_support(n), n)
    kept = []
    for group in _cluster(items, ious, iou_threshold):
        if len(group) >= need:
            kept += _fuse(items, group, ious, n, labels)
            continue
        detail = f"{len(group)} of {n} workers drew it; {need} needed"
        result.dropped += [
            drop_record(items[k].worker, items[k].box, DropReason.BELOW_MIN_SUPPORT, detail)
            for k in group
        ]
    kept.sort(key=lambda it: it[0])
    for _key, polygon, members in kept:
        result.polygons.append(polygon)
        result.clusters.append(members)
    result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return result


def _read_all(
    answers: Sequence[Sequence[Mapping[str, Any]]],
    labels: Sequence[str] | None,
    image_size: ImageSize | None,
    dropped: list[dict[str, Any]],
) -> list[_Item]:
    """The valid polygons in canonical order; a drop record per invalid one in ``dropped``.

    Canonical order: geometry and label, then a worker rank from the worker's own items.
    """
    known = frozenset(labels) if labels is not None else None
    frame = shapely.box(0, 0, *image_extent(image_size)) if image_size else None
    items: list[_Item] = []
    for w, polys in enumerate(answers):
        for b, raw in enumerate(polys):
            got = _read(raw, known, frame)
            if isinstance(got[0], DropReason):
                dropped.append(drop_record(w, b, got[0], got[1]))
                continue
            geom, label = got[0], got[1]
            assert isinstance(geom, BaseGeometry)  # narrowed by the branch above
            key = (tuple(round(v, 6) for v in geom.bounds), round(geom.area, 6), label, geom.wkt)
            items.append(_Item(key, w, b, geom, label))
    worker_key = {w: sorted(it.key for it in items if it.worker == w) for w in range(len(answers))}
    rank = {w: r for r, w in enumerate(sorted(worker_key, key=worker_key.__getitem__))}
    items.sort(key=lambda it: (it.key, rank[it.worker], it.box))
    return items


def _overlaps(items: list[_Item]) -> dict[tuple[int, int], float]:
    """The IoU of every intersecting pair ``i < j`` of items (one worker's pairs included)."""
    if not items:
        return {}
    geoms = [it.geom for it in items]
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    return {
        (i, j): polygon_iou(geoms[i], geoms[j])
        for i, j in zip(left.tolist(), right.tolist(), strict=True)
        if i < j
    }


def _drop_repeats(
    items: list[_Item],
    ious: dict[tuple[int, int], float],
    duplicate_iou: float,
    dropped: list[dict[str, Any]],
) -> tuple[list[_Item], dict[tuple[int, int], float]]:
    """Drop a worker's later same-label polygons that repeat an earlier one (the box rule).

    Returns the items left and the IoU of their pairs of *different* workers, re-indexed.
    """
    removed: set[int] = set()
    for (i, j), v in sorted(ious.items()):
        a, b = items[i], items[j]
        if a.worker != b.worker or a.label != b.label or v < duplicate_iou:
            continue
        if i in removed or j in removed:
            continue
        removed.add(j)
        detail = f"repeats polygon {a.box} of the same worker (IoU {v:.2f})"
        dropped.append(drop_record(b.worker, b.box, DropReason.DUPLICATE, detail))
    new = {old: k for k, old in enumerate(i for i in range(len(items)) if i not in removed)}
    pairs = {
        (new[i], new[j]): v
        for (i, j), v in ious.items()
        if i in new and j in new and items[i].worker != items[j].worker
    }
    return [items[i] for i in new], pairs


def _cluster(
    items: list[_Item], ious: dict[tuple[int, int], float], threshold: float
) -> list[list[int]]:
    """Greedy complete linkage by descending IoU; never two polygons of one worker.

    ``ious`` holds the IoU of every overlapping pair of different workers' polygons.
    Returns the groups (item indices, sorted).
    """
    edges = sorted(
        ((v, i, j) for (i, j), v in ious.items() if v >= threshold),
        key=lambda e: (-e[0], e[1], e[2]),
    )
    root = list(range(len(items)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(items))}
    mask = {i: 1 << items[i].worker for i in range(len(items))}
    for _iou, i, j in edges:
        ri, rj = root[i], root[j]
        if ri == rj or mask[ri] & mask[rj]:
            continue
        a, c = members[ri], members[rj]
        if not all(ious.get((min(x, y), max(x, y)), 0.0) >= threshold for x in a for y in c):
            continue
        a.extend(c)
        for k in c:
            root[k] = ri
        mask[ri] |= mask.pop(rj)
        del members[rj]
    return [sorted(group) for group in members.values()]


def _fuse(
    items: list[_Item],
    group: list[int],
    ious: dict[tuple[int, int], float],
    answered: int,
    labels: Sequence[str] | None,
) -> list[tuple[tuple[Any, ...], dict[str, Any], list[tuple[int, int]]]]:
    """A kept group's outputs, one per part (:func:`_parts`): sort key, polygon, members.

    The polygon is the medoid (highest mean IoU to the others, first in canonical order on a
    tie); the label is voted, ties to the label listed first, then alphabetically.
    """
    k = len(group)
    pair_iou = np.zeros((k, k))
    for x in range(k):
        for y in range(x + 1, k):
            pair_iou[x, y] = pair_iou[y, x] = ious.get((group[x], group[y]), 0.0)
    medoid = group[int(np.argmax(pair_iou.sum(axis=1) / max(1, k - 1)))]
    votes = Counter(items[g].label for g in group)
    order_of_label = {name: i for i, name in enumerate(labels or ())}
    label = min(votes, key=lambda s: (-votes[s], order_of_label.get(s, len(order_of_label)), s))
    agreement = float(pair_iou[np.triu_indices(k, 1)].mean()) if k > 1 else 0.0
    quality = np.array([agreement * votes[label] / k])  # the box rule without a label quorum
    confidence = float(
        support_confidence(np.array([k / answered]), quality, np.array([k]), answered)[0]
    )
    members = sorted((items[g].worker, items[g].box) for g in group)
    return [
        (
            (part.bounds[1], part.bounds[0], label),
            {"label": label, "vertices": _ring(part), "confidence": confidence},
            list(members),
        )
        for part in _parts(items[medoid].geom)
    ]


def _ring(part: BaseGeometry) -> list[dict[str, float]]:
    """A polygon's exterior as crowd-polygon vertices, without the closing vertex."""
    return [{"x": float(x), "y": float(y)} for x, y in list(part.exterior.coords)[:-1]]
