"""Phase 5 of the engine: place each kept cluster's box from its members' edges.

Rule 6 of ``docs/consolidation.md``: per edge, Huber's M-estimate, the mean or the median
of the members' edges (weighted by worker weight); with a worker model (rule 8), each
member's bias taken out first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple, cast

import numpy as np
import numpy.typing as npt

from gt_toolkit.consolidation.clean import BoolArray, CleanBoxes, IntArray
from gt_toolkit.consolidation.clusters import Clusters, row_sums
from gt_toolkit.consolidation.geometry import FloatArray, clip_to
from gt_toolkit.consolidation.settings import Fusion

__all__ = [
    "Images",
    "InnerPairs",
    "MemberWeights",
    "fuse_clusters",
    "inner_pairs",
    "member_weights",
    "without_bias",
]


class InnerPairs(NamedTuple):
    """The overlapping pairs ``lo < hi`` of boxes in one cluster, with the cluster and IoU.

    Huber's scale (rule 6) and the agreement (rule 7) both read them: found once per image.
    """

    lo: IntArray
    hi: IntArray
    cluster: IntArray
    iou: FloatArray


def inner_pairs(clean: CleanBoxes, clusters: Clusters) -> InnerPairs:
    """The pairs of ``clean.overlaps`` whose two boxes share a cluster."""
    of = clusters.of
    lo, hi, iou = clean.overlaps
    lo_cl = of.take(lo)
    if clusters.count == 1:  # every pair is inside (most images of one box): 6 calls fewer
        return InnerPairs(lo, hi, lo_cl, iou)
    # nonzero and takes: a third of the cost of four compresses on a few pairs
    same = (lo_cl == of.take(hi)).nonzero()[0]
    return InnerPairs(lo.take(same), hi.take(same), lo_cl.take(same), iou.take(same))


class MemberWeights(NamedTuple):
    """Each box's worker weight (``None``: all 1.0), and their sum per cluster.

    ``void`` marks the clusters whose members all weigh 0: they fuse with equal weights,
    but their support (rule 7) stays 0.
    """

    per_box: FloatArray | None
    per_cluster: FloatArray | IntArray  # the sizes with equal weights: they divide alike
    void: BoolArray | None = None


def member_weights(
    clean: CleanBoxes, clusters: Clusters, weights: Sequence[float] | None
) -> MemberWeights:
    """Worker weights gathered per box; ``None`` = equal weights.

    A cluster whose members all have weight 0 falls back to equal weights.
    """
    cl, count = clusters.of, clusters.count
    if weights is None:  # no conversion to float: a division converts each size exactly
        return MemberWeights(None, clusters.size)
    per_box = np.asarray(weights, dtype=np.float64).take(clean.worker)
    per_cluster = _weight_sums(cl, per_box, count)
    zero = per_cluster <= 0
    if not np.count_nonzero(zero):  # a fifth of the cost of .any()
        return MemberWeights(per_box, per_cluster)
    per_box = np.where(zero[cl], 1.0, per_box)
    return MemberWeights(per_box, _weight_sums(cl, per_box, count), zero)


def _weight_sums(cl: npt.NDArray[np.intp], per_box: FloatArray, count: int) -> FloatArray:
    # cast, not astype: a weighted bincount is float64 already
    return cast(FloatArray, np.bincount(cl, weights=per_box, minlength=count))


HUBER_C = 1.345
"""Huber's tuning constant: 95% of the mean's efficiency when the edges are Gaussian."""
_HUBER_STEPS = 4
_LAST_STEP = _HUBER_STEPS - 1  # no settled-check after it: nothing would follow
_SORT_BELOW = 256
_SETTLED = 0.01  # pixels: an iteration that moves no edge further has converged
_SCALE_PAIRS = 512  # a median of this many gaps is within a few percent of all of them
_SCALE_FLOOR = 1e-3  # relative to the box size: identical members still get a finite limit


class Images(NamedTuple):
    """Where each of several images' clusters and inner pairs lie (image after image).

    Huber's scale and its stopping rule are each image's own.
    """

    clusters: list[int]  # image k's clusters: clusters[k]:clusters[k + 1]
    pairs: list[int]  # its inner pairs: pairs[k]:pairs[k + 1]
    of_cluster: IntArray  # the image of each cluster


def fuse_clusters(
    clean: CleanBoxes,
    clusters: Clusters,
    kept: BoolArray,
    weights: MemberWeights,
    fusion: Fusion,
    pairs: InnerPairs,
    images: Images | None = None,
) -> FloatArray:
    """Each cluster's fused box, one row per corner (``x1, y1, x2, y2`` by cluster).

    ``"median"`` fuses only the ``kept`` clusters (the others stay 0), the others all.
    ``"huber"``: per edge, Huber's M-estimate of location (:func:`_huber`), its scale from
    the ``pairs`` inside clusters (of each of ``images``).
    """
    cl, count = clusters.of, clusters.count
    if fusion == "median":
        return _median(clean, clusters, kept, weights.per_box)
    means = clusters.means
    if weights.per_box is not None:
        means = row_sums(cl, clean.xyxy * weights.per_box, count) / weights.per_cluster
    if fusion == "mean":
        return means
    return _huber(clean, clusters, weights, means, pairs, images)


def _huber(
    clean: CleanBoxes,
    clusters: Clusters,
    weights: MemberWeights,
    means: FloatArray,
    pairs: InnerPairs,
    images: Images | None = None,
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
    members keep their (weighted) mean. Several ``images``: each has its own scale and stops
    on its own; one without such pairs keeps its means.
    """
    of, count, xyxy = clusters.of, clusters.count, clean.xyxy
    if not len(pairs.lo):  # no cluster with two members: nothing to weigh
        return means
    n = len(of)
    # every (edge, box) as one flat cell of the (edge, cluster) table: each step is then
    # 1-D takes, bincounts and divisions, with no reshaping or broadcasting (~15% faster)
    cell = _one_cluster_cells(n) if count == 1 else (of + _edge_offsets(count)).ravel()
    at = means.take(cell)  # each box's cluster mean, edge by edge
    wh = at[2 * n :] - at[: 2 * n]  # its cluster's width, then height, per box
    size = np.concatenate((wh, wh))
    active: BoolArray | None = None
    if images is None:
        scale = _noise(xyxy, size.reshape(4, n), pairs.lo, pairs.hi)
        limit = (HUBER_C * max(scale, _SCALE_FLOOR)) * size
    else:
        factor, active = _image_scales(xyxy, size.reshape(4, n), pairs, images)
        limit = np.tile(factor.take(images.of_cluster.take(of)), 4) * size
    floor = -limit
    edges = xyxy.ravel()
    prior = None if weights.per_box is None else np.concatenate((weights.per_box,) * 4)
    per_cluster: FloatArray | float = (  # one cluster: its weight as a float divides alike
        float(weights.per_cluster[0])
        if count == 1
        else np.concatenate((weights.per_cluster,) * 4, dtype=np.float64)
    )
    mu = means.ravel()
    for step_no in range(_HUBER_STEPS):
        residual = edges - at
        # np.clip's wrapper costs more than the work: the two ufuncs it runs, in place
        np.minimum(np.maximum(residual, floor, out=residual), limit, out=residual)
        if prior is not None:
            residual *= prior
        step = np.bincount(cell, weights=residual, minlength=4 * count) / per_cluster
        if images is not None and active is not None:
            moving = np.tile(active.take(images.of_cluster), 4)
            mu = np.where(moving, mu + step, mu)
            active = active & ~_settled(np.abs(step, out=step), images)
            if step_no == _LAST_STEP or not np.count_nonzero(active):
                break
        else:
            mu = mu + step
            if step_no == _LAST_STEP or np.maximum.reduce(np.abs(step, out=step)) < _SETTLED:
                break
        at = mu.take(cell)
    return mu.reshape(4, count)


def _image_scales(
    xyxy: FloatArray, size: FloatArray, pairs: InnerPairs, images: Images
) -> tuple[FloatArray, BoolArray]:
    """Per image, ``HUBER_C x`` its scale and whether it has pairs to weigh.

    The scale is :func:`_noise` of the image's pairs; an image without any keeps its means,
    as it does alone.
    """
    factor = np.full(len(images.clusters) - 1, HUBER_C * _SCALE_FLOOR)
    active = np.zeros(len(factor), dtype=bool)
    bounds = images.pairs
    for k in range(len(factor)):
        a, b = bounds[k], bounds[k + 1]
        if a < b:
            scale = _noise(xyxy, size, pairs.lo[a:b], pairs.hi[a:b])
            factor[k] = HUBER_C * max(scale, _SCALE_FLOOR)
            active[k] = True
    return factor, active


def _settled(moved: FloatArray, images: Images) -> BoolArray:
    """Per image, whether no edge of it moved by :data:`_SETTLED` (``moved``: per cell)."""
    count = len(images.of_cluster)
    most = np.maximum.reduce(moved.reshape(4, count), axis=0)
    per_image = np.zeros(len(images.clusters) - 1)
    np.maximum.at(per_image, images.of_cluster, most)
    settled: BoolArray = per_image < _SETTLED
    return settled


@lru_cache(maxsize=64)
def _one_cluster_cells(n: int) -> IntArray:
    """The flat cells of ``n`` boxes in one cluster: ``0`` n times, then ``1`` n times, ...

    Cached: most images of one box have one cluster (1 box: fuse_clusters -1.3 us).
    """
    cells = np.arange(4).repeat(n)
    cells.flags.writeable = False  # shared by every image
    return cells


@lru_cache(maxsize=256)
def _edge_offsets(count: int) -> IntArray:
    """``0, count, 2 count, 3 count`` as a column: the first cell of each edge's row.

    Cached: an image of ``count`` clusters reuses it (arange and a new axis cost ~1 us).
    """
    offsets = np.arange(0, 4 * count, count)[:, None]
    offsets.flags.writeable = False  # shared by every image
    return offsets


def _noise(xyxy: FloatArray, size: FloatArray, lo: IntArray, hi: IntArray) -> float:
    """The edge noise relative to the box size, from the pairs ``lo``, ``hi`` of one cluster.

    ``size`` is each box's cluster's width or height per edge, like ``xyxy``.
    """
    if len(lo) > _SCALE_PAIRS:
        every = -(-len(lo) // _SCALE_PAIRS)
        lo, hi = lo[::every], hi[::every]
    gaps = (np.abs(xyxy.take(lo, axis=1) - xyxy.take(hi, axis=1)) / size.take(lo, axis=1)).ravel()
    middle = gaps.size // 2
    # in place; below a few hundred values a sort costs less than a selection's set-up
    if gaps.size < _SORT_BELOW:
        gaps.sort()
    else:
        gaps.partition(middle)
    return 1.4826 * float(gaps[middle]) / math.sqrt(2.0)


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


def without_bias(clean: CleanBoxes, bias: FloatArray, far: FloatArray | None) -> CleanBoxes:
    """The boxes with their workers' edge bias (``(workers, 4)``, ``box_bias``) taken out.

    Each edge moves back by its worker's bias times the box's own width or height (the
    object's size is not known before fusion; the box's own stands for it). The result is
    clipped to the image when its size is known (``far``: its far corner, or one per box):
    a correction never leaves the picture.
    """
    xyxy = clean.xyxy
    wh = xyxy[2:] - xyxy[:2]
    moved = xyxy - bias.take(clean.worker, axis=0).T * np.concatenate((wh, wh))
    if far is not None:
        clip_to(moved, far)
    # not dataclasses.replace: a third of this function's time
    return CleanBoxes(
        xyxy=moved,
        code=clean.code,
        worker=clean.worker,
        box=clean.box,
        labels=clean.labels,
        overlaps=clean.overlaps,
        own=clean.own,
    )
