"""Phase 5 of the engine: place each kept cluster's box from its members' edges.

Rule 6 of ``docs/consolidation.md``: per edge, Huber's M-estimate, the mean or the median
of the members' edges (weighted by worker weight); with a worker model (rule 8), each
member's bias taken out first.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from gt_toolkit.consolidation.clean import BoolArray, CleanBoxes
from gt_toolkit.consolidation.clusters import Clusters, row_sums
from gt_toolkit.consolidation.geometry import FloatArray
from gt_toolkit.consolidation.settings import Fusion
from gt_toolkit.types import ImageSize

__all__ = ["MemberWeights", "fuse_clusters", "member_weights", "without_bias"]


class MemberWeights(NamedTuple):
    """Each box's worker weight, and their sum per cluster (``weighted``: not all 1.0).

    ``void`` marks the clusters whose members all weigh 0: they fuse with equal weights,
    but their support (rule 7) stays 0.
    """

    per_box: FloatArray
    per_cluster: FloatArray
    weighted: bool
    void: BoolArray | None = None


def member_weights(
    clean: CleanBoxes, clusters: Clusters, weights: Sequence[float] | None
) -> MemberWeights:
    """Worker weights gathered per box; ``None`` = equal weights.

    A cluster whose members all have weight 0 falls back to equal weights.
    """
    cl, count = clusters.of, clusters.count
    if weights is None:
        sizes: FloatArray = clusters.size.astype(np.float64)
        return MemberWeights(np.full(len(cl), 1.0), sizes, False)
    per_box = np.asarray(weights, dtype=np.float64)[clean.worker]
    per_cluster = _weight_sums(cl, per_box, count)
    zero = per_cluster <= 0
    if not zero.any():
        return MemberWeights(per_box, per_cluster, True)
    per_box = np.where(zero[cl], 1.0, per_box)
    return MemberWeights(per_box, _weight_sums(cl, per_box, count), True, zero)


def _weight_sums(cl: npt.NDArray[np.intp], per_box: FloatArray, count: int) -> FloatArray:
    sums = np.bincount(cl, weights=per_box, minlength=count)
    return sums.astype(np.float64, copy=False)


HUBER_C = 1.345
"""Huber's tuning constant: 95% of the mean's efficiency when the edges are Gaussian."""
_HUBER_STEPS = 4
_SETTLED = 0.01  # pixels: an iteration that moves no edge further has converged
_SCALE_PAIRS = 512  # a median of this many gaps is within a few percent of all of them
_SCALE_FLOOR = 1e-3  # relative to the box size: identical members still get a finite limit


def fuse_clusters(
    clean: CleanBoxes,
    clusters: Clusters,
    kept: BoolArray,
    weights: MemberWeights,
    fusion: Fusion,
    weighted: bool,
) -> FloatArray:
    """Each cluster's fused box, one row per corner (``x1, y1, x2, y2`` by cluster).

    ``"median"`` fuses only the ``kept`` clusters (the others stay 0), the others all.
    ``"huber"``: per edge, Huber's M-estimate of location (:func:`_huber`).
    """
    cl, count = clusters.of, clusters.count
    if fusion == "median":
        return _median(clean, clusters, kept, weights.per_box if weighted else None)
    means = clusters.means
    if weighted:
        means = row_sums(cl, clean.xyxy * weights.per_box, count) / weights.per_cluster
    if fusion == "mean":
        return means
    return _huber(clean, clusters, weights, means)


def _huber(
    clean: CleanBoxes, clusters: Clusters, weights: MemberWeights, means: FloatArray
) -> FloatArray:
    """Huber's M-estimate of every cluster's edges, iterated from the (weighted) mean.

    A member's edge within ``limit = HUBER_C x scale x size`` of the estimate counts fully,
    a farther one as if it lay at the limit: a sloppy box on an object pulls little, and
    Gaussian edges keep 95% of the mean's precision. ``scale`` is the image's edge noise
    relative to the box size, a robust standard deviation pooled over pairs of members of a
    cluster: ``1.4826 x median(|a - b| / size) / sqrt(2)`` (over at most ``_SCALE_PAIRS``
    pairs, evenly spaced in canonical order). Each step moves the estimate by the mean of
    the clipped residuals (Huber's modified-residuals iteration); the loss is convex, so it
    converges from the mean, and it stops once no edge moves by ``_SETTLED`` pixels. Two
    members keep their (weighted) mean.
    """
    of, count, xyxy = clusters.of, clusters.count, clean.xyxy
    lo, hi, _ = clean.overlaps
    same = (of.take(lo) == of.take(hi)).nonzero()[0]
    if not len(same):  # no cluster with two members: nothing to weigh
        return means
    if len(same) > _SCALE_PAIRS:
        same = same[:: -(-len(same) // _SCALE_PAIRS)]
    lo, hi = lo.take(same), hi.take(same)
    w, h = means[2] - means[0], means[3] - means[1]
    size = np.array((w, h, w, h))
    gaps = np.abs(xyxy.take(lo, axis=1) - xyxy.take(hi, axis=1)) / size.take(of[lo], axis=1)
    middle = gaps.size // 2
    scale = 1.4826 * float(np.partition(gaps.ravel(), middle)[middle]) / math.sqrt(2.0)
    limit = (HUBER_C * max(scale, _SCALE_FLOOR)) * size.take(of, axis=1)
    floor = -limit
    cell = np.add.outer(np.arange(0, 4 * count, count), of).ravel()
    prior = weights.per_box if weights.weighted else None
    mu = means
    for _ in range(_HUBER_STEPS):
        residual = xyxy - mu.take(of, axis=1)
        # np.clip's wrapper costs more than the work: the two ufuncs it runs, in place
        np.minimum(np.maximum(residual, floor, out=residual), limit, out=residual)
        if prior is not None:
            residual *= prior
        sums = np.bincount(cell, weights=residual.ravel(), minlength=4 * count)
        step = sums.reshape(4, count) / weights.per_cluster
        mu = mu + step
        if float(np.maximum.reduce(np.abs(step, out=step), axis=None)) < _SETTLED:
            break
    return mu


def _median(
    clean: CleanBoxes, clusters: Clusters, kept: BoolArray, member_weight: FloatArray | None
) -> FloatArray:
    """Per edge, the (weighted) median of each kept cluster's members."""
    size = clusters.size
    fused = np.zeros((clusters.count, 4))
    xyxy = clean.xyxy.T
    order = np.argsort(clusters.of, kind="stable")
    starts = np.cumsum(size) - size
    for k in np.unique(size[kept]).tolist():  # clusters of one size at once
        ids = np.flatnonzero(kept & (size == k))
        members = order[starts[ids][:, None] + np.arange(k)]
        if member_weight is None:
            fused[ids] = np.median(xyxy[members], axis=1)
        else:
            fused[ids] = [_weighted_median(xyxy[m], member_weight[m]) for m in members]
    return fused.T


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


def without_bias(clean: CleanBoxes, bias: FloatArray, image_size: ImageSize | None) -> CleanBoxes:
    """The boxes with their workers' edge bias (``(workers, 4)``, ``box_bias``) taken out.

    Each edge moves back by its worker's bias times the box's own width or height (the
    object's size is not known before fusion; the box's own stands for it). The result is
    clipped to the image when its size is known: a correction never leaves the picture.
    """
    xyxy = clean.xyxy
    w, h = xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]
    moved = xyxy - bias[clean.worker].T * np.vstack((w, h, w, h))
    if image_size is not None:
        np.clip(moved[0::2], 0.0, float(image_size["width"]), out=moved[0::2])
        np.clip(moved[1::2], 0.0, float(image_size["height"]), out=moved[1::2])
    return dataclasses.replace(clean, xyxy=moved)
