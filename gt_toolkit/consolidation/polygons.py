"""Consolidate several workers' polygons (crowd-polygon answers) on one image.

The rules are those of ``docs/consolidation.md`` for boxes: clusters by IoU that never
hold two polygons of one worker (greedy complete linkage over pairs by descending IoU),
label voted inside the cluster, a strict-majority quorum by default, and a deterministic
canonical order. Two differences: IoU comes from shapely (invalid, self-intersecting
polygons are repaired with ``make_valid`` first), and the fused polygon is the *member*
with the highest mean IoU to the others (a medoid; averaging vertices of polygons with
different vertex counts has no meaning). Confidence is the box formula:
``support share x mean pairwise IoU x label share``, 0.0 for one worker.

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

from gt_toolkit.consolidation.settings import DropReason, default_min_support
from gt_toolkit.errors import ConsolidationError
from gt_toolkit.types import ImageSize

__all__ = ["PolygonConsolidation", "consolidate_polygons", "polygon_iou"]


@dataclass
class PolygonConsolidation:
    """The result for one image (same meaning as :class:`~gt_toolkit.ImageConsolidation`).

    ``polygons`` items are ``{"label", "vertices": [{"x", "y"}, ...], "confidence"}``.
    """

    polygons: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0
    clusters: list[list[tuple[int, int]]] = field(default_factory=list)


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a geometry (``make_valid`` may add lines or points)."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def polygon_iou(a: BaseGeometry, b: BaseGeometry) -> float:
    """IoU of two (valid) geometries; 0.0 when both are empty."""
    union = shapely.union(a, b).area
    return float(shapely.intersection(a, b).area / union) if union > 0 else 0.0


def _read(
    w: int,
    b: int,
    raw: Any,
    labels: frozenset[str] | None,
    frame: BaseGeometry | None,
) -> tuple[BaseGeometry, str] | tuple[DropReason, str]:
    if not isinstance(raw, Mapping):
        return DropReason.MALFORMED, "not an object"
    label = raw.get("label")
    if not isinstance(label, str) or not label:
        return DropReason.MISSING_LABEL, f"label {label!r}"
    if labels is not None and label not in labels:
        return DropReason.UNKNOWN_LABEL, f"label {label!r} not in the label list"
    vertices = raw.get("vertices")
    try:
        points = [(float(v["x"]), float(v["y"])) for v in vertices or ()]
    except (KeyError, TypeError, ValueError):
        return DropReason.MALFORMED, "vertices must be a list of {x, y} numbers"
    if not all(math.isfinite(c) for p in points for c in p):
        return DropReason.NON_FINITE, "NaN or infinite vertex"
    if len(points) < 3:
        return DropReason.NON_POSITIVE_SIZE, f"{len(points)} vertices"
    geom = _polygonal(shapely.make_valid(shapely.Polygon(points)))
    if frame is not None:
        geom = _polygonal(shapely.intersection(geom, frame))
    if geom.is_empty or geom.area <= 0:
        return DropReason.NON_POSITIVE_SIZE if frame is None else DropReason.OUTSIDE_IMAGE, (
            "no area after repair" + (" and clipping" if frame is not None else "")
        )
    return geom, label


def _vertices(geom: BaseGeometry) -> list[dict[str, float]]:
    """Exterior of the largest polygon part, without the closing vertex."""
    largest = max(shapely.get_parts(geom), key=lambda g: g.area)
    coords = list(largest.exterior.coords)[:-1]
    return [{"x": float(x), "y": float(y)} for x, y in coords]


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
) -> PolygonConsolidation:
    """Consolidate one image's polygon answers (one list per worker who answered).

    Raises:
        ConsolidationError: ``iou_threshold`` outside ``(0, 1]`` or ``min_support < 1``.
            Dirty polygons never raise; they are listed in ``dropped``.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ConsolidationError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if min_support is not None and min_support < 1:
        raise ConsolidationError(f"min_support must be >= 1, got {min_support}")
    n = len(answers)
    result = PolygonConsolidation(workers=n)
    items = _read_all(answers, labels, image_size, result.dropped)
    if items:
        groups, ious = _cluster(items, iou_threshold)
        need = min(min_support or default_min_support(n), n)
        kept = []
        for group in groups:
            if len(group) >= need:
                kept.append(_fuse(items, group, ious, n, labels))
                continue
            detail = f"{len(group)} of {n} workers drew it; {need} needed"
            result.dropped += [
                _drop(items[k].worker, items[k].box, DropReason.BELOW_MIN_SUPPORT, detail)
                for k in group
            ]
        kept.sort(key=lambda it: it[0])
        result.polygons = [it[1] for it in kept]
        result.clusters = [it[2] for it in kept]
    result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return result


def _drop(worker: int, index: int, reason: DropReason, detail: str) -> dict[str, Any]:
    return {"worker": worker, "box": index, "reason": reason.value, "detail": detail}


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
    frame = shapely.box(0, 0, image_size["width"], image_size["height"]) if image_size else None
    items: list[_Item] = []
    for w, polys in enumerate(answers):
        for b, raw in enumerate(polys):
            got = _read(w, b, raw, known, frame)
            if isinstance(got[0], DropReason):
                dropped.append(_drop(w, b, got[0], got[1]))
                continue
            geom, label = got[0], got[1]
            assert isinstance(geom, BaseGeometry)  # narrowed by the branch above
            key = (tuple(round(v, 6) for v in geom.bounds), round(geom.area, 6), label, geom.wkt)
            items.append(_Item(key, w, b, geom, label))
    worker_key = {w: sorted(it.key for it in items if it.worker == w) for w in range(len(answers))}
    rank = {w: r for r, w in enumerate(sorted(worker_key, key=worker_key.__getitem__))}
    items.sort(key=lambda it: (it.key, rank[it.worker], it.box))
    return items


def _cluster(
    items: list[_Item], threshold: float
) -> tuple[list[list[int]], dict[tuple[int, int], float]]:
    """Greedy complete linkage by descending IoU; never two polygons of one worker.

    Returns the groups (item indices, sorted) and the IoU of every overlapping pair of
    different workers' polygons.
    """
    geoms = [it.geom for it in items]
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    pairs = [(int(i), int(j)) for i, j in zip(left, right, strict=True) if i < j]
    pairs = [(i, j) for i, j in pairs if items[i].worker != items[j].worker]
    ious = {(i, j): polygon_iou(geoms[i], geoms[j]) for i, j in pairs}
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
    return [sorted(group) for group in members.values()], ious


def _fuse(
    items: list[_Item],
    group: list[int],
    ious: dict[tuple[int, int], float],
    answered: int,
    labels: Sequence[str] | None,
) -> tuple[tuple[Any, ...], dict[str, Any], list[tuple[int, int]]]:
    """A kept group's output: sort key, ``{label, vertices, confidence}``, members.

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
    confidence = 0.0
    if answered > 1 and k > 1:
        agreement = float(pair_iou[np.triu_indices(k, 1)].mean())
        confidence = (k / answered) * agreement * (votes[label] / k)
    geom = items[medoid].geom
    polygon = {"label": label, "vertices": _vertices(geom), "confidence": confidence}
    return (
        (geom.bounds[1], geom.bounds[0], label),
        polygon,
        sorted((items[g].worker, items[g].box) for g in group),
    )
