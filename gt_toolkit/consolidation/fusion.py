"""Phase 5 of the engine: place each kept cluster's box from its members' edges.

Step 6 of the rules in :mod:`gt_toolkit.consolidation.engine`: the (weighted) mean or median
of the member edges, per edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from gt_toolkit.consolidation.clean import BoolArray, CleanBoxes
from gt_toolkit.consolidation.clusters import Clusters
from gt_toolkit.consolidation.geometry import Columns, FloatArray
from gt_toolkit.consolidation.settings import Fusion

__all__ = ["MemberWeights", "fuse_clusters", "member_weights"]


class MemberWeights(NamedTuple):
    """Each box's worker weight, and their sum per cluster."""

    per_box: FloatArray
    per_cluster: FloatArray


def member_weights(
    clean: CleanBoxes, clusters: Clusters, weights: Sequence[float] | None
) -> MemberWeights:
    """Worker weights gathered per box; ``None`` = equal weights.

    A cluster whose members all have weight 0 falls back to equal weights.
    """
    cl, count = clusters.of, clusters.count
    if weights is None:
        sizes: FloatArray = clusters.size.astype(np.float64)
        return MemberWeights(np.ones(len(cl)), sizes)
    per_box = np.asarray(weights, dtype=np.float64)[clean.worker]
    per_cluster = _weight_sums(cl, per_box, count)
    zero = per_cluster <= 0
    if zero.any():
        per_box = np.where(zero[cl], 1.0, per_box)
        per_cluster = _weight_sums(cl, per_box, count)
    return MemberWeights(per_box, per_cluster)


def _weight_sums(cl: npt.NDArray[np.intp], per_box: FloatArray, count: int) -> FloatArray:
    sums = np.bincount(cl, weights=per_box, minlength=count)
    return sums.astype(np.float64, copy=False)


def fuse_clusters(
    clean: CleanBoxes,
    clusters: Clusters,
    kept: BoolArray,
    weights: MemberWeights,
    fusion: Fusion,
    weighted: bool,
) -> Columns:
    """Each cluster's fused box as ``x1, y1, x2, y2`` columns (only ``kept`` ones for median)."""
    cl, size, count = clusters.of, clusters.size, clusters.count
    if fusion == "median":
        fused = np.zeros((count, 4))
        by_cluster = np.argsort(cl, kind="stable")
        xyxy = np.column_stack(clean.corners)
        for c, idx in enumerate(np.split(by_cluster, np.cumsum(size)[:-1])):
            if kept[c]:
                fused[c] = _weighted_median(xyxy[idx], weights.per_box[idx])
        return fused[:, 0], fused[:, 1], fused[:, 2], fused[:, 3]
    if weighted:
        x1, y1, x2, y2 = (
            np.bincount(cl, weights=weights.per_box * v, minlength=count) / weights.per_cluster
            for v in clean.corners
        )
        return x1, y1, x2, y2
    return clusters.means


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
