"""Phase 4 of the engine: the quorum, the label vote and the confidence of each output box.

Rules 5, 7 and 8 of ``docs/consolidation.md``: who reached the quorum (or, with a worker
model, which clusters are likelier objects than not), and the confidence of each box.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from gt_toolkit.consolidation.clean import BoolArray, CleanBoxes, IntArray, drop_record
from gt_toolkit.consolidation.clusters import Clusters
from gt_toolkit.consolidation.fusion import InnerPairs
from gt_toolkit.consolidation.geometry import FloatArray
from gt_toolkit.consolidation.settings import DropReason

__all__ = [
    "LEAST_WEIGHT",
    "Ballot",
    "Evidence",
    "Verdict",
    "below_quorum_records",
    "count_votes",
    "score_boxes",
    "support_confidence",
]

_NONE: IntArray = np.zeros(0, dtype=np.intp)

LEAST_WEIGHT = 2.0**-100
"""A weight under this share of the largest counts as 0 (given weights and a worker
model's alike): as a near-subnormal, its products with small edges fell to 0 (a fused
box of width 0), and scaled by a power of two it lost bits."""


class Evidence(NamedTuple):
    """What a worker model says about the workers who answered one image, in log-odds.

    A cluster's log-odds of being a real object is ``silent`` (the prior, plus every
    answering worker's log-likelihood ratio for *not* drawing it) plus ``drawn[w]`` for
    each worker ``w`` who drew it (their ratio for drawing it, minus the one for not).
    Built by :meth:`gt_toolkit.consolidation.worker_model.WorkerModel.evidence`.

    Attributes:
        drawn: per answer (worker index), the log-odds a box of theirs adds.
        silent: the log-odds of an object nobody drew.
        weights: per answer, the worker's weight in fusion and the label vote (only
            their ratios count: over a power of two that puts the largest in [0.5, 1), and
            0 under :data:`LEAST_WEIGHT` of it).
        bias: per answer, the worker's edge offsets ``(answers, 4)`` (``box_bias``),
            taken out of their boxes before fusion.
    """

    drawn: FloatArray
    silent: float | FloatArray  # one per cluster where several images are counted at once
    weights: FloatArray
    bias: FloatArray


class Ballot(NamedTuple):
    """Who gave which label to which cluster, and what reached the quorum.

    Attributes:
        kept: per cluster, whether it gives at least one output box.
        rows: the cluster of each output box: the kept clusters, or with the per-label
            quorum one per kept ``(cluster, label)`` cell, in cell order.
        codes: with the per-label quorum, the label of each output box; ``None`` with the
            per-box quorum (the label vote decides it).
        box_cells: with the per-label quorum, the cell of each output box.
        cells: with the per-label quorum, the ``(cluster, label)`` cell every box votes
            for (``cluster * labels + code``), then every ``extra`` box's; ``None`` with the
            per-box quorum.
        voters: with the per-label quorum, the ``(clusters, labels)`` table of workers who
            gave each label; ``label_kept`` marks the cells that reached the quorum.
        extra: second boxes (repeats) that give their worker's object another label: with
            the per-label quorum they vote for it, in ``extra_cells``, but do not place it.
        voted: the ``extra`` boxes whose label reached the quorum (they join that box).
        log_odds: with a worker model, the log-odds of each cluster (per-box quorum) or
            of each ``(cluster, label)`` cell (per-label quorum) being a real object.
    """

    kept: BoolArray
    rows: IntArray
    codes: IntArray | None = None
    box_cells: IntArray | None = None
    cells: IntArray | None = None
    voters: IntArray | None = None
    label_kept: BoolArray | None = None
    extra: IntArray = _NONE
    extra_cells: IntArray = _NONE
    voted: frozenset[int] = frozenset()
    log_odds: FloatArray | None = None


class Verdict(NamedTuple):
    """The output boxes, before fusion places them: one row per box.

    Attributes:
        rows: the cluster of each output box.
        labels: its label code.
        confidence: its confidence, in ``[0, 1]``.
    """

    rows: IntArray
    labels: IntArray
    confidence: FloatArray


def count_votes(
    clean: CleanBoxes,
    clusters: Clusters,
    repeats: dict[int, int],
    need: int | IntArray,
    by_label: bool,
    evidence: Evidence | None = None,
) -> Ballot:
    """Apply the quorum: ``need`` workers per cluster, or per label with ``by_label``.

    ``need``: one count, or one per cluster (several images at once).

    With ``evidence`` a cluster (or label) is kept when its log-odds of being a real
    object is positive (posterior above one half) and ``need`` workers gave it. Clusters
    that repeat others (see :mod:`~gt_toolkit.consolidation.repeats`) never count.
    """
    cl, count = clusters.of, clusters.count
    seconds = sorted(repeats) if repeats else []
    both = both_cl = gone = _NONE
    if seconds:  # one array and one take for both ends of every repeat
        both = np.array(seconds + [repeats[g] for g in seconds], dtype=np.intp)
        both_cl = cl.take(both)
        gone = both_cl[: len(seconds)]
    if not by_label:
        enough: BoolArray = clusters.size >= need
        log_odds: FloatArray | None = None
        if evidence is not None:
            by_cluster = np.bincount(cl, weights=evidence.drawn[clean.worker], minlength=count)
            log_odds = np.asarray(evidence.silent + by_cluster, dtype=np.float64)
            enough &= log_odds > 0
        if seconds:
            enough[gone] = False
        return Ballot(enough, enough.nonzero()[0], log_odds=log_odds)
    labels_n = len(clean.labels)
    cells = cl * labels_n + clean.code
    extra, extra_cells = _NONE, _NONE
    voting = cells
    if seconds:
        extra, extra_cells = _extra_votes(clean, seconds, both, both_cl, labels_n)
    if len(extra):  # their votes after the members': one bincount instead of np.add.at
        voting = np.concatenate((cells, extra_cells))
    voters = np.bincount(voting, minlength=count * labels_n).reshape(count, labels_n)
    label_kept = voters >= (need if isinstance(need, int) else need[:, None])
    log_odds = None
    if evidence is not None:
        worker = clean.worker
        if len(extra):
            worker = np.concatenate((worker, worker.take(extra)))
        by_cell = np.bincount(voting, weights=evidence.drawn[worker], minlength=count * labels_n)
        silent = evidence.silent
        if not isinstance(silent, float):  # one per cluster
            silent = silent[:, None]
        log_odds = np.asarray(silent + by_cell.reshape(count, labels_n), np.float64)
        label_kept &= (log_odds > 0) & (voters > 0)
    voted: frozenset[int] = frozenset()
    if seconds:
        label_kept[gone] = False
    if len(extra):
        voted = frozenset(extra.compress(label_kept.ravel().take(extra_cells)).tolist())
    # the kept cells on the flat table: 2-D nonzero and a reduction along rows cost more
    box_cells = label_kept.ravel().nonzero()[0]
    rows, codes = np.divmod(box_cells, labels_n)
    kept = np.zeros(count, dtype=bool)
    kept[rows] = True
    votes = (voting, voters, label_kept, extra, extra_cells, voted, log_odds)
    return Ballot(kept, rows, codes, box_cells, *votes)


def _extra_votes(
    clean: CleanBoxes, seconds: list[int], both: IntArray, both_cl: IntArray, labels_n: int
) -> tuple[IntArray, IntArray]:
    """Second boxes that give their worker's object another label (one per worker and label).

    ``both`` holds the ``seconds`` (sorted), then the first box each repeats; ``both_cl``
    their clusters. Returns the voting second boxes and the ``(cluster, label)`` cell each
    votes for.
    """
    m = len(seconds)
    code = clean.code.take(both).tolist()
    # the labels compared as one list first: most images have no such box, and the
    # clusters and workers are then never gathered (count_votes, 100 boxes: 24.7 -> 23 us)
    other = [i for i in range(m) if code[i] != code[m + i]]
    if not other:
        return _NONE, _NONE
    first_cl = both_cl.tolist()
    worker = clean.worker.take(both[:m]).tolist()
    out, cells, seen = [], [], set()
    for i in other:
        c, w, k = first_cl[m + i], worker[i], code[i]
        if (c, w, k) not in seen:
            seen.add((c, w, k))
            out.append(seconds[i])
            cells.append(c * labels_n + k)
    return np.array(out, dtype=np.intp), np.array(cells, dtype=np.intp)


def below_quorum_records(
    clean: CleanBoxes,
    clusters: Clusters,
    ballot: Ballot,
    repeats: dict[int, int],
    answered: int | Sequence[int],
    need: int | Sequence[int],
    image: IntArray | None = None,
) -> list[dict[str, Any]]:
    """One drop record per box that is not part of an output box, with the reason.

    Several images at once: ``answered`` and ``need`` per image, ``image`` per box.
    """
    out = []
    cl, size = clusters.of, clusters.size
    below = (~ballot.kept[cl]).nonzero()[0]
    images = image.take(below).tolist() if image is not None else [0] * len(below)
    answers = [answered] if isinstance(answered, int) else answered
    needs = [need] if isinstance(need, int) else need
    for g, wk, b, k_image in zip(
        below.tolist(),
        clean.worker[below].tolist(),
        clean.box[below].tolist(),
        images,
        strict=True,
    ):
        if g in ballot.voted:
            continue
        n_answered, n_need = answers[k_image], needs[k_image]
        if g in repeats:
            detail = f"a second box on the object of this worker's box {int(clean.box[repeats[g]])}"
            out.append(drop_record(wk, b, DropReason.DUPLICATE, detail))
            continue
        k = int(size[cl[g]])
        drew = f"{k} of {n_answered} workers drew it"
        if k < n_need:
            out.append(drop_record(wk, b, DropReason.BELOW_MIN_SUPPORT, f"{drew}; {n_need} needed"))
        elif ballot.log_odds is not None:
            cell = ballot.log_odds[cl[g]]
            p = float(_posterior(np.asarray(cell if np.ndim(cell) == 0 else cell.max())))
            detail = f"{drew}; the worker model gives it {p:.2f}, 0.5 needed"
            out.append(drop_record(wk, b, DropReason.UNLIKELY, detail))
        else:
            detail = f"{drew}, but no label was given by {n_need}"
            out.append(drop_record(wk, b, DropReason.BELOW_MIN_SUPPORT, detail))
    return out


def score_boxes(
    clean: CleanBoxes,
    clusters: Clusters,
    ballot: Ballot,
    pairs: InnerPairs,
    member_weight: FloatArray | None,
    cluster_weight: FloatArray | IntArray,
    total_weight: float | FloatArray,
    answered: int | IntArray,
    *,
    void: BoolArray | None = None,
) -> Verdict:
    """The output boxes (``ballot.rows``) and their confidence.

    Several images at once: ``total_weight`` and ``answered`` per cluster.

    ``pairs`` are the overlapping pairs inside a cluster (for the agreement);
    ``member_weight`` is each box's worker weight (``None``: all 1), ``cluster_weight``
    their sum per cluster and ``total_weight`` the sum over the workers who answered;
    ``void`` marks the clusters whose members all weigh 0 (given equal weights to fuse):
    their support is 0.
    With a worker model (``ballot.log_odds``) the confidence is the posterior probability
    of the object.
    """
    rows, codes, cell = ballot.rows, ballot.codes, ballot.box_cells
    if codes is None or cell is None or ballot.voters is None or ballot.cells is None:
        weights = (member_weight, cluster_weight, total_weight)
        return _score_clusters(clean, clusters, ballot, pairs, *weights, answered, void)
    if ballot.log_odds is not None:
        return Verdict(rows, codes, _posterior(ballot.log_odds.take(cell)))
    k_box = ballot.voters.take(cell)
    box_votes = k_box  # with equal weights the votes are the head counts
    if member_weight is not None:  # second boxes' votes come after the members' weight
        if len(ballot.extra):
            member_weight = np.concatenate((member_weight, member_weight.take(ballot.extra)))
        votes = np.bincount(ballot.cells, member_weight, clusters.count * len(clean.labels))
        box_votes = votes.take(cell)
    total = total_weight if isinstance(total_weight, float) else total_weight.take(rows)
    support = box_votes / total
    if void is not None:
        support[void.take(rows)] = 0.0
    label_share = np.minimum(box_votes / cluster_weight.take(rows), 1.0)
    # the members who gave another label dissent: a contested label ranks below a
    # box nobody contradicts (workers miss objects more often than they mislabel them)
    agreement = _agreement(pairs, clusters, answered).take(rows)
    quality = agreement * label_share - (1.0 - label_share)
    answered_at = answered if isinstance(answered, int) else answered.take(rows)
    return Verdict(rows, codes, support_confidence(support, quality, k_box, answered_at))


def _score_clusters(
    clean: CleanBoxes,
    clusters: Clusters,
    ballot: Ballot,
    pairs: InnerPairs,
    member_weight: FloatArray | None,
    cluster_weight: FloatArray | IntArray,
    total_weight: float | FloatArray,
    answered: int | IntArray,
    void: BoolArray | None,
) -> Verdict:
    """:func:`score_boxes` with the per-box quorum: the label vote picks each box's label."""
    cl, count, rows = clusters.of, clusters.count, ballot.rows
    labels_n = len(clean.labels)
    tally = winner_all = None
    if labels_n > 1:
        tally = np.bincount(
            cl * labels_n + clean.code, weights=member_weight, minlength=count * labels_n
        ).reshape(count, labels_n)
        winner_all = np.argmax(tally, axis=1)  # first maximum = highest priority on a tie
        winner = winner_all.take(rows)
    else:
        winner = _first_codes(len(rows))
    if ballot.log_odds is not None:
        return Verdict(rows, winner, _posterior(ballot.log_odds.take(rows)))
    quality = _agreement(pairs, clusters, answered)
    if tally is not None and winner_all is not None:
        quality = quality * (tally[np.arange(count), winner_all] / cluster_weight)
    support_all = cluster_weight / total_weight
    if void is not None:
        support_all[void] = 0.0
    confidence = support_confidence(support_all, quality, clusters.size, answered)
    if len(rows) < count:  # else every cluster is kept, in order
        confidence = confidence.take(rows)
    return Verdict(rows, winner, confidence)


def _agreement(pairs: InnerPairs, clusters: Clusters, answered: int | IntArray) -> FloatArray:
    """Mean pairwise IoU of each cluster's members (0 for a single member).

    Over every overlapping pair in a cluster, also those below the IoU threshold (a
    cluster formed around its mean box can hold them); pairs that do not overlap add 0.
    A cluster has at most one box per worker: at most ``answered`` members.
    """
    iou_sum = np.bincount(pairs.cluster, pairs.iou, clusters.count)
    most = answered if isinstance(answered, int) else int(answered.max())
    agreement: FloatArray = iou_sum / _pair_counts(most).take(clusters.size)
    return agreement


@lru_cache(maxsize=64)
def _first_codes(boxes: int) -> IntArray:
    """Label code 0 for ``boxes`` boxes: cached, read-only (one label: 1 box -0.3 us)."""
    codes = np.zeros(boxes, dtype=np.intp)
    codes.flags.writeable = False  # shared by every image
    return codes


@lru_cache(maxsize=16)
def _pair_counts(workers: int) -> FloatArray:
    """``k (k - 1) / 2`` pairs of ``k`` members, at least 1, for ``k`` up to ``workers``.

    A table: one take per image instead of four array operations on the sizes.
    A single member has no pair and an IoU sum of 0: its 1 keeps the mean 0.
    """
    k = np.arange(workers + 1)
    pairs: FloatArray = np.maximum(k * (k - 1) / 2, 1.0)
    pairs.flags.writeable = False  # shared by every image
    return pairs


def support_confidence(
    support: FloatArray, quality: FloatArray, k: IntArray, answered: int | IntArray
) -> FloatArray:
    """``support x (1 - (1 - quality) / (2k))`` within ``[0, 1]``; 0 when one worker answered.

    Rule 7 of ``docs/consolidation.md``, for boxes and polygons alike. ``answered``: one
    count, or one per box (several images at once).
    """
    confidence: FloatArray = np.minimum(
        np.maximum(support * (1.0 - (1.0 - quality) / (2.0 * k)), 0.0), 1.0
    )
    if isinstance(answered, int):
        if answered == 1:
            confidence[:] = 0.0
    else:
        confidence[answered == 1] = 0.0
    return confidence


def _posterior(log_odds: FloatArray) -> FloatArray:
    """The probability of a log-odds, computed without overflow."""
    p: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * log_odds))
    return p
