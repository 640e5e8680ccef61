"""Phase 3 of the engine: find the clusters that are a worker drawing an object again.

Rule 4 of ``docs/consolidation.md``: a worker's second box on an
object is a duplicate, not another object (otherwise a low ``min_support``, or two workers
who both drew an object twice, would emit the object twice).
"""

from __future__ import annotations

import numpy as np

from gt_toolkit.consolidation.clean import CleanBoxes, IntArray
from gt_toolkit.consolidation.clusters import Clusters
from gt_toolkit.consolidation.geometry import box_iou

__all__ = ["find_repeats"]


def find_repeats(
    clean: CleanBoxes,
    clusters: Clusters,
    threshold: float,
    answered: int | IntArray,
    smallest: int | IntArray = 1,
) -> dict[int, int]:
    """Boxes of clusters that repeat other clusters, each mapped to its worker's box there.

    A box is covered by its worker's box in a *larger* cluster when it reaches the
    threshold with that box, or, for a lone box linked into the same component, with that
    cluster's mean box (a worker's tight second box next to their loose first one still
    lies on the object); a cluster is a repeat when all its members are covered. When
    several workers answered, one worker's two lone boxes that reach the threshold are
    one object drawn twice (nobody else corroborates a second object), so the later one
    (canonical order) is a repeat too. Of two equal clusters of the same workers,
    :func:`_repeat_of_twins` decides whether one repeats the other. Repeats smaller than
    ``smallest`` are not looked for (the quorum drops them anyway). Each box maps to a box
    that stays (a repeat of a repeat points past it). Several images at once: ``answered``
    and ``smallest`` per box.
    """
    a, b, ab = clusters.own
    if not len(a):
        return {}
    cl, size = clusters.of, clusters.size
    sa, sb = size[cl[a]], size[cl[b]]
    # a pair that does not reach the threshold is a lone box of an unequal pair tested
    # against the mean box: one that was linked into its worker's component and lost its
    # place there to the worker's other box (a stray box elsewhere is not); sizes are >= 1,
    # so exactly one size of 1 is "unequal, the smaller 1" (one call fewer)
    lone = ((sa == 1) != (sb == 1)) & (clusters.component[a] == clusters.component[b])
    candidate = (ab >= threshold) | lone
    # a pair is big enough when its smaller cluster has ``smallest`` members, and two equal
    # clusters may need more (``twins``); one count for one image, one per box for several
    least: int | IntArray
    twins_at: int | IntArray
    if isinstance(answered, int) and isinstance(smallest, int):
        least, twins_at = smallest, max(smallest, 1 if answered > 1 else 2)
    else:
        least = smallest if isinstance(smallest, int) else smallest.take(a)
        twins_at = np.maximum(least, np.where(np.asarray(answered).take(a) > 1, 1, 2))
    if not isinstance(twins_at, int) or twins_at > 1:  # else every pair is (a member each)
        small = np.minimum(sa, sb)
        candidate &= (small >= least) & ((sa != sb) | (small >= twins_at))
    if not np.count_nonzero(candidate):  # count_nonzero: a fifth of the cost of .any()
        return {}
    # Plain Python from here: an image has a handful of such pairs, and numpy's per-call
    # cost (np.unique, above all) was a tenth of the whole consolidation at 100 boxes.
    out: dict[int, int] = {}
    pending: dict[int, dict[int, int]] = {}  # cluster of several members -> covered ones
    twins: dict[tuple[int, int], dict[int, int]] = {}  # equal clusters -> member pairs
    for x, y, sx, sy, v in zip(
        a[candidate].tolist(),
        b[candidate].tolist(),
        sa[candidate].tolist(),
        sb[candidate].tolist(),
        ab[candidate].tolist(),
        strict=True,
    ):
        g, t, k = (x, y, sx) if sx < sy else (y, x, sy)
        if sx == sy and k > 1:  # one worker's boxes are never in one cluster
            cx, cy = int(cl[x]), int(cl[y])
            key, (p, q) = ((cx, cy), (x, y)) if cx < cy else ((cy, cx), (y, x))
            twins.setdefault(key, {}).setdefault(p, q)
            continue
        if v < threshold:  # a lone box may still lie on the larger cluster's object
            c = cl[t]
            if box_iou(clean.xyxy[:, g].tolist(), clusters.means[:, c].tolist()) < threshold:
                continue
        if k == 1:
            out.setdefault(g, t)
        else:
            pending.setdefault(int(cl[g]), {}).setdefault(g, t)
    for c, covered in pending.items():
        if len(covered) == size[c]:
            out.update(covered)
    for (c1, c2), pairing in twins.items():
        if len(pairing) == size[c1] and len(set(pairing.values())) == size[c2]:
            repeat = _repeat_of_twins(clean, clusters, c1, c2)
            if repeat is not None:
                out.update(pairing if repeat == c1 else {q: p for p, q in pairing.items()})
    for g, t in out.items():  # point at a box that stays (a repeat of a repeat)
        if t in out:
            while t in out:
                t = out[t]
            out[g] = t
    return out


def _repeat_of_twins(clean: CleanBoxes, clusters: Clusters, c1: int, c2: int) -> int | None:
    """Which of two equal clusters of the same workers repeats the other, if either does.

    They are two objects when their mean boxes are further apart than their own members
    are from each other (every worker drew both of two overlapping objects); they are
    one object drawn twice by everyone when the means are closer than the members are
    (IoU of the means > the lower mean pairwise IoU inside a cluster; identical workers,
    whose members agree perfectly, keep every box they drew). The cluster drawn with
    less agreement is then the repeat (ties: the later one).
    """
    boxes = clean.xyxy.T
    agreement = []
    for c in (c1, c2):
        members = boxes[clusters.of == c].tolist()
        ious = [
            box_iou(members[i], members[j])
            for i in range(len(members))
            for j in range(i + 1, len(members))
        ]
        agreement.append(sum(ious) / len(ious))
    means = clusters.means
    between = box_iou(means[:, c1].tolist(), means[:, c2].tolist())
    if between <= min(agreement):  # identical workers' answers are kept as they are
        return None
    return c1 if agreement[0] < agreement[1] else c2
