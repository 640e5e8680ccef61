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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    known = frozenset(labels) if labels is not None else None
    frame = shapely.box(0, 0, image_size["width"], image_size["height"]) if image_size else None
    items: list[tuple[tuple[Any, ...], int, int, BaseGeometry, str]] = []
    for w, polys in enumerate(answers):
        for b, raw in enumerate(polys):
            got = _read(w, b, raw, known, frame)
            if isinstance(got[0], DropReason):
                result.dropped.append(
                    {"worker": w, "box": b, "reason": got[0].value, "detail": got[1]}
                )
                continue
            geom, label = got[0], got[1]
            assert isinstance(geom, BaseGeometry)  # narrowed by the branch above
            key = (tuple(round(v, 6) for v in geom.bounds), round(geom.area, 6), label, geom.wkt)
            items.append((key, w, b, geom, label))
    # Canonical order: geometry and label, then a worker rank from the worker's own items.
    worker_key = {w: sorted(it[0] for it in items if it[1] == w) for w in range(n)}
    rank = {w: r for r, w in enumerate(sorted(range(n), key=lambda w: worker_key[w]))}
    items.sort(key=lambda it: (it[0], rank[it[1]], it[2]))
    geoms = [it[3] for it in items]
    if not geoms:
        return result
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = [(int(i), int(j)) for i, j in zip(left, right, strict=True) if i < j]
    pairs = [(i, j) for i, j in pairs if items[i][1] != items[j][1]]
    ious = {(i, j): polygon_iou(geoms[i], geoms[j]) for i, j in pairs}
    edges = sorted(
        ((v, i, j) for (i, j), v in ious.items() if v >= iou_threshold),
        key=lambda e: (-e[0], e[1], e[2]),
    )
    root = list(range(len(items)))
    members: dict[int, list[int]] = {i: [i] for i in range(len(items))}
    mask = {i: 1 << items[i][1] for i in range(len(items))}
    for _iou, i, j in edges:
        ri, rj = root[i], root[j]
        if ri == rj or mask[ri] & mask[rj]:
            continue
        a, c = members[ri], members[rj]
        if not all(ious.get((min(x, y), max(x, y)), 0.0) >= iou_threshold for x in a for y in c):
            continue
        a.extend(c)
        for k in c:
            root[k] = ri
        mask[ri] |= mask.pop(rj)
        del members[rj]
    need = min(min_support or default_min_support(n), n)
    order_of_label = {name: i for i, name in enumerate(labels or ())}
    kept = []
    for group in members.values():
        group.sort()
        if len(group) < need:
            for k in group:
                result.dropped.append(
                    {
                        "worker": items[k][1],
                        "box": items[k][2],
                        "reason": DropReason.BELOW_MIN_SUPPORT.value,
                        "detail": f"{len(group)} of {n} workers drew it; {need} needed",
                    }
                )
            continue
        pair_iou = np.zeros((len(group), len(group)))
        for x in range(len(group)):
            for y in range(x + 1, len(group)):
                pair_iou[x, y] = pair_iou[y, x] = ious.get((group[x], group[y]), 0.0)
        mean_to_others = pair_iou.sum(axis=1) / max(1, len(group) - 1)
        medoid = group[int(np.argmax(mean_to_others))]  # first maximum: canonical order
        votes: dict[str, int] = {}
        for k in group:
            votes[items[k][4]] = votes.get(items[k][4], 0) + 1
        label = min(
            votes,
            key=lambda s: (-votes[s], order_of_label.get(s, len(order_of_label)), s),
        )
        if n == 1 or len(group) == 1:
            confidence = 0.0
        else:
            agreement = float(pair_iou[np.triu_indices(len(group), 1)].mean())
            confidence = (len(group) / n) * agreement * (votes[label] / len(group))
        geom = geoms[medoid]
        kept.append(
            (
                (geom.bounds[1], geom.bounds[0], label),
                {"label": label, "vertices": _vertices(geom), "confidence": confidence},
                sorted((items[k][1], items[k][2]) for k in group),
            )
        )
    kept.sort(key=lambda it: it[0])
    result.polygons = [it[1] for it in kept]
    result.clusters = [it[2] for it in kept]
    result.dropped.sort(key=lambda d: (d["worker"], d["box"]))
    return result
