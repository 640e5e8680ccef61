"""Phase 2 of the engine: cluster the clean boxes, never two boxes of one worker together.

Rule 3 of ``docs/consolidation.md``. Vectorised: a connected
component of the IoU >= threshold graph (pairs of *different* workers) is one cluster when
it is a clique of distinct workers, or when it is coherent: each worker keeps its box
nearest the component's mean box, every kept box reaches the threshold with the kept boxes'
mean box, and the extra boxes are at most half as many as the kept ones (each extra box
becomes a singleton). Only the remaining components go through a greedy merge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from gt_toolkit.consolidation.clean import BoolArray, CleanBoxes, IntArray, Pairs
from gt_toolkit.consolidation.geometry import FloatArray, box_iou, iou_columns

__all__ = ["Clusters", "cluster_boxes", "row_sums"]

_NONE: IntArray = np.zeros(0, dtype=np.intp)
_NO_PAIRS = Pairs(_NONE, _NONE, np.zeros(0))
_CORNERS: IntArray = np.arange(4)
_CORNER: IntArray = _CORNERS[:, None]  # a column: corner k's bins start at k * m


@dataclass(frozen=True, slots=True)
class Clusters:
    """Which cluster each clean box is in, with what later phases need to know about them.

    Attributes:
        of: cluster id per box, compact (``0 .. count - 1``).
        size: members per cluster.
        means: each cluster's mean box, one row per corner (``x1, y1, x2, y2`` by cluster).
        component: per box, its connected component of links (a box index); a lone box
            linked into a component it lost its place in still shares its ``component``.
        links: the linked pairs (different workers, IoU >= threshold).
        own: the overlapping pairs of one worker's boxes.
    """

    of: IntArray
    size: IntArray
    means: FloatArray
    component: IntArray
    links: Pairs
    own: Pairs

    @property
    def count(self) -> int:
        """The number of clusters."""
        return len(self.size)


def cluster_boxes(clean: CleanBoxes, threshold: float) -> Clusters:
    """Cluster boxes of different workers: one box per worker per cluster.

    Components that are neither cliques nor coherent go through :func:`_greedy_merge`.
    """
    n = len(clean)
    lo, hi, iou = clean.overlaps
    own = clean.own
    linked = iou >= threshold
    own_pairs = _NO_PAIRS
    if np.count_nonzero(own):  # count_nonzero: a fifth of the cost of .any()
        own_pairs = Pairs(lo.compress(own), hi.compress(own), iou.compress(own))
        np.greater(linked, own, out=linked)  # bools: ``>`` is ``& ~``, one call instead of two
    links = clean.overlaps  # all of them (most images of few boxes): no copies to make
    if np.count_nonzero(linked) < len(linked):
        links = Pairs(lo.compress(linked), hi.compress(linked), iou.compress(linked))
    if 2 * len(links.lo) == n * (n - 1):  # every pair linked (most images of one box)
        # one clique, its labels known: ~10 us of component search skipped at 1 box
        # row_sums for one group, its bins the corner of each coordinate: 4.9 -> 3 us
        sums = np.bincount(_CORNERS.repeat(n), weights=clean.xyxy.ravel(), minlength=4)
        # np.array, not np.full (twice the cost)
        size = np.array((n,), np.intp)
        of = np.zeros(n, np.intp)
        return Clusters(of, size, sums.reshape(4, 1) / size, np.zeros(n, np.intp), links, own_pairs)
    comp = _components(n, links.lo, links.hi)
    size = np.bincount(comp, minlength=n)
    # A component of s boxes has at most s(s-1)/2 links, so the links number sum(s^2 - s)/2
    # exactly when every component is a clique (one dot product instead of six calls).
    if 2 * len(links.lo) == int(size @ size) - n:  # every component is a cluster
        root = size > 0
        # add.accumulate: half the cost of np.cumsum's wrapper
        of = np.add.accumulate(root, dtype=np.intp).take(comp) - 1
        size = size.compress(root)
        count = len(size)
    else:
        cluster = _resolve(clean, comp, size, links, threshold)
        present = np.zeros(int(cluster[cluster.argmax()]) + 1, dtype=np.intp)  # argmax: see _kept
        present[cluster] = 1
        rank = np.add.accumulate(present)  # its last entry is the count: no .sum() call
        count = int(rank[-1])
        of = rank.take(cluster) - 1
        size = np.bincount(of, minlength=count)
    return Clusters(of, size, row_sums(of, clean.xyxy, count) / size, comp, links, own_pairs)


def _resolve(
    clean: CleanBoxes,
    comp: IntArray,
    size: IntArray,
    links: Pairs,
    threshold: float,
) -> IntArray:
    """A cluster label per box where some components are not cliques (see the module)."""
    cluster = comp.copy()
    nodes = _coherent(clean, comp, size, links, threshold, cluster)
    if len(nodes):  # a component of several boxes: it has links
        alone = np.zeros(len(clean), dtype=bool)
        alone[nodes] = True
        messy = alone.take(links.lo)
        m_lo, m_hi, m_iou = links.lo[messy], links.hi[messy], links.iou[messy]
        order = np.lexsort((m_hi, m_lo, -m_iou))
        root = _greedy_merge(clean, nodes, m_lo[order].tolist(), m_hi[order].tolist(), threshold)
        cluster[nodes] = root
    return cluster


def row_sums(group: IntArray, rows: FloatArray, groups: int) -> FloatArray:
    """Per-group sums of each row of ``rows`` ``(r, n)``: ``(r, groups)``, one bincount."""
    r = len(rows)
    cell = (np.arange(0, r * groups, groups)[:, None] + group).ravel()
    # cast, not np.asarray: weighted bincount is float64 already (asarray cost a call)
    sums = cast(FloatArray, np.bincount(cell, weights=rows.ravel(), minlength=r * groups))
    return sums.reshape(r, groups)


def _components(n: int, lo: IntArray, hi: IntArray) -> IntArray:
    """Connected components of an undirected graph: each node gets its component's min node.

    Labels only decrease and always name a node of the same component, so once every edge
    joins equal labels they are constant per component, and each is its component's
    minimum (the minimum node's label cannot go lower): no confirming pass is needed.
    """
    comp = np.arange(n, dtype=np.intp)
    np.minimum.at(comp, hi, lo)  # the first round: ``lo < hi`` and every label is its node
    # and back down the links: spares a second round on most non-clique images (a third
    # of _components' time at 100 boxes)
    np.minimum.at(comp, lo, comp.take(hi))
    while True:
        comp = comp[comp]  # pointer jumping halves the remaining depth
        a, b = comp.take(lo), comp.take(hi)
        if not np.count_nonzero(a != b):
            return comp
        low = np.minimum(a, b)
        np.minimum.at(comp, lo, low)
        np.minimum.at(comp, hi, low)


def _coherent(
    clean: CleanBoxes,
    comp: IntArray,
    size: IntArray,
    links: Pairs,
    threshold: float,
    cluster: IntArray,
) -> IntArray:
    """The boxes of the components that are neither cliques nor coherent, in box order.

    Each worker keeps the member nearest the component's mean box; when every kept member
    reaches the threshold with the kept members' mean box and the extra boxes are a small
    minority, the kept members are one cluster and each extra box (a worker's second box on
    the object, or a stray one) is made a singleton in ``cluster`` (label ``n + box``).
    """
    n = len(clean)
    edges = np.bincount(comp[links.lo], minlength=n)
    # not all pairs linked (all linked: distinct workers too, one worker's boxes never are)
    # per component id (ids naming none are cliques); 2e != s^2 - s: integer // cost 0.8 us
    other = edges + edges != size * size - size
    sub = other[comp].nonzero()[0]  # the members of the other components
    # compact ids 0 .. m - 1: every count below is over m components, not n boxes
    rank = np.add.accumulate(other, dtype=np.intp)
    m = int(rank[-1])
    c_sub, w_sub = rank[comp[sub]] - 1, clean.worker[sub]
    boxes = clean.xyxy.take(sub, axis=1)
    count = np.bincount(c_sub, minlength=m)  # members per component, at least two
    # one bin per corner and component, shared by both mean boxes below
    cell = (_CORNER * m + c_sub).ravel()
    sums = np.bincount(cell, weights=boxes.ravel(), minlength=4 * m).reshape(4, m)
    near = iou_columns((sums / count).take(c_sub, axis=1), boxes)
    group = w_sub * m + c_sub  # a worker in a component
    if np.count_nonzero(np.bincount(group)) < len(sub):  # a worker twice in a component
        keep = _kept(clean.code[sub], c_sub, group, near, m)
        # integer counts: the comparison below is then integer, not float (-0.6 us); as a
        # divisor each converts to float exactly
        kept = np.bincount(c_sub[keep], minlength=m)
        # the kept members' sums: an extra box adds 0.0, which leaves every sum's bits alone
        sums = np.bincount(cell, weights=(boxes * keep).ravel(), minlength=4 * m).reshape(4, m)
        near = iou_columns((sums / kept).take(c_sub, axis=1), boxes)
        far = keep & (near < threshold)
    else:  # one box per worker in every component: all are kept, ``near`` stands
        keep, kept, far = np.ones(len(sub), dtype=bool), count, near < threshold
    # coherent: no kept member far from the kept mean, extras at most half the kept ones
    # an unweighted bincount of the far members: cheaper than one weighted by ``far``
    coherent = (np.bincount(c_sub[far], minlength=m) == 0) & (2 * (count - kept) <= kept)
    member = coherent[c_sub]
    leave = sub[member > keep]  # the extras of coherent components (bools: ``>`` is ``& ~``)
    cluster[leave] = n + leave
    nodes: IntArray = sub[~member]
    return nodes


def _kept(code: IntArray, comp: IntArray, group: IntArray, near: FloatArray, m: int) -> BoolArray:
    """Which box each worker keeps in each of ``m`` components (ids in ``comp``).

    A worker with two boxes (one ``group``) keeps the one whose label agrees with the
    component's most common label (a second box with another label is the usual crowd
    slip), then the one nearest the mean box (``near``, its IoU with it).
    """
    span = int(code[code.argmax()]) + 1  # argmax: a sixth of the cost of .max()
    key = code * m + comp  # label-major: the max over labels runs down contiguous rows
    votes = np.bincount(key, minlength=span * m)
    odd = votes[key] < np.maximum.reduce(votes.reshape(span, m))[comp]
    order = np.lexsort((-near, odd, group))
    g = group[order]
    first = np.empty(len(g), dtype=bool)
    first[0] = True
    np.not_equal(g[1:], g[:-1], out=first[1:])
    keep = np.empty(len(g), dtype=bool)
    keep[order] = first
    return keep


def _greedy_merge(
    clean: CleanBoxes, nodes: IntArray, m_lo: list[int], m_hi: list[int], threshold: float
) -> list[int]:
    """The greedy agglomeration of the components that are neither cliques nor coherent.

    Linked pairs come by descending IoU (ties by canonical order): two clusters merge when
    every cross pair is linked (complete linkage) or their mean boxes reach the threshold
    (centroid linkage, which tolerates one jittery or loose member); and either they share
    no worker, or the shared workers are fewer than the smaller cluster's members. Then each
    shared worker keeps the box nearer the merged mean box and the other box leaves as a
    singleton: a worker who drew two boxes on one object must not split the other workers'
    cluster in two. Returns a cluster label per box of ``nodes`` (the boxes the links
    join); an ejected box gets a fresh label ``>= 2n`` (labels ``n .. 2n - 1`` are the
    coherent components' singletons).
    """
    n = len(clean)
    link = set(zip(m_lo, m_hi, strict=True))
    # keyed by box over the linked boxes only: listing all n boxes was most of the time
    node = nodes.tolist()
    root = dict(zip(node, node, strict=True))
    members: dict[int, list[int]] = {}
    by_worker: dict[int, dict[int, int]] = {}  # label -> {worker: member}
    sums: dict[int, list[float]] = {}  # label -> summed x1, y1, x2, y2 of the members
    wk = dict(zip(node, clean.worker.take(nodes).tolist(), strict=True))
    boxes = dict(zip(node, clean.xyxy.take(nodes, axis=1).T.tolist(), strict=True))
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
            if box_iou(mean_a, mean_b) < threshold:
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
            ix, iy = box_iou(boxes[x], mean), box_iou(boxes[y], mean)
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
    return [root[k] for k in node]
