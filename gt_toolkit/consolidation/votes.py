"""Phase 4 of the engine: the quorum, the label vote and the confidence of each output box.

Rules 5, 7 and 8 of ``docs/consolidation.md``: who reached the quorum (or, with a worker
model, which clusters are likelier objects than not), and the confidence of each box.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from gt_toolkit.consolidation.clean import BoolArray, CleanBoxes, IntArray, drop_record
from gt_toolkit.consolidation.clusters import Clusters
from gt_toolkit.consolidation.geometry import FloatArray
from gt_toolkit.consolidation.settings import DropReason

__all__ = [
    "Ballot",
    "Evidence",
    "Verdict",
    "below_quorum_records",
    "count_votes",
    "score_boxes",
    "support_confidence",
]

_NONE: IntArray = np.zeros(0, dtype=np.intp)


class Evidence(NamedTuple):
    """What a worker model says about the workers who answered one image, in log-odds.

    A cluster's log-odds of being a real object is ``silent`` (the prior, plus every
    answering worker's log-likelihood ratio for *not* drawing it) plus ``drawn[w]`` for
    each worker ``w`` who drew it (their ratio for drawing it, minus the one for not).
    Built by :meth:`gt_toolkit.consolidation.worker_model.WorkerModel.evidence`.

    Attributes:
        drawn: per answer (worker index), the log-odds a box of theirs adds.
        silent: the log-odds of an object nobody drew.
        weights: per answer, the worker's weight in fusion and the label vote.
        bias: per answer, the worker's edge offsets ``(answers, 4)`` (``box_bias``),
            taken out of their boxes before fusion.
    """

    drawn: FloatArray
    silent: float
    weights: FloatArray
    bias: FloatArray


class Ballot(NamedTuple):
    """Who gave which label to which cluster, and what reached the quorum.

    Attributes:
        kept: per cluster, whether it gives at least one output box.
        cells: with the per-label quorum, the ``(cluster, label)`` cell of every box
            (``cluster * labels + code``); ``None`` with the per-box quorum.
        voters: with the per-label quorum, the ``(clusters, labels)`` table of workers who
            gave each label; ``label_kept`` marks the cells that reached the quorum.
        extra: second boxes (repeats) that give their worker's object another label: with
            the per-label quorum they vote for it, in ``extra_cells``, but do not place it.
        voted: the ``extra`` boxes whose label reached the quorum (they join that box).
        log_odds: with a worker model, the log-odds of each cluster (per-box quorum) or
            of each ``(cluster, label)`` cell (per-label quorum) being a real object.
    """

    kept: BoolArray
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
    need: int,
    by_label: bool,
    evidence: Evidence | None = None,
) -> Ballot:
    """Apply the quorum: ``need`` workers per cluster, or per label with ``by_label``.

    With ``evidence`` a cluster (or label) is kept when its log-odds of being a real
    object is positive (posterior above one half) and ``need`` workers gave it. Clusters
    that repeat others (see :mod:`~gt_toolkit.consolidation.repeats`) never count.
    """
    cl, count = clusters.of, clusters.count
    gone = cl[np.fromiter(repeats, dtype=np.intp, count=len(repeats))] if repeats else _NONE
    drawn = evidence.drawn[clean.worker] if evidence is not None else None
    if not by_label:
        enough: BoolArray = np.asarray(clusters.size >= need)
        log_odds: FloatArray | None = None
        if evidence is not None:
            by_cluster = np.bincount(cl, weights=drawn, minlength=count)
            log_odds = np.asarray(evidence.silent + by_cluster, dtype=np.float64)
            enough &= log_odds > 0
        if repeats:
            enough[gone] = False
        return Ballot(enough, log_odds=log_odds)
    labels_n = len(clean.labels)
    extra, extra_cells = _NONE, _NONE
    cells = cl * labels_n + clean.code
    voters = np.bincount(cells, minlength=count * labels_n)
    if repeats:
        extra, extra_cells = _extra_votes(clean, cl, repeats, labels_n)
        np.add.at(voters, extra_cells, 1)
    voters = voters.reshape(count, labels_n)
    label_kept = voters >= need
    log_odds = None
    if evidence is not None:
        by_cell = np.bincount(cells, weights=drawn, minlength=count * labels_n)
        np.add.at(by_cell, extra_cells, evidence.drawn[clean.worker[extra]])
        log_odds = np.asarray(evidence.silent + by_cell.reshape(count, labels_n), np.float64)
        label_kept &= (log_odds > 0) & (voters > 0)
    voted: frozenset[int] = frozenset()
    if repeats:
        label_kept[gone] = False
        voted = frozenset(extra[label_kept.reshape(-1)[extra_cells]].tolist())
    # a row's any() by its kept cells: a reduction along rows of a few labels costs 3x more
    kept = np.zeros(count, dtype=bool)
    kept[label_kept.ravel().nonzero()[0] // labels_n] = True
    return Ballot(kept, cells, voters, label_kept, extra, extra_cells, voted, log_odds)


def _extra_votes(
    clean: CleanBoxes, cl: IntArray, spare: dict[int, int], labels_n: int
) -> tuple[IntArray, IntArray]:
    """Second boxes that give their worker's object another label (one per worker and label).

    Returns them and the ``(cluster, label)`` cell each votes for.
    """
    seconds = np.fromiter(sorted(spare), dtype=np.intp, count=len(spare))
    firsts = np.fromiter(map(spare.__getitem__, seconds.tolist()), dtype=np.intp, count=len(spare))
    # gathered as lists first: indexing arrays one element at a time costs 5x more
    rows = zip(
        seconds.tolist(),
        cl.take(firsts).tolist(),
        clean.worker.take(seconds).tolist(),
        clean.code.take(seconds).tolist(),
        clean.code.take(firsts).tolist(),
        strict=True,
    )
    out, cells, seen = [], [], set()
    for g, c, w, k, k_first in rows:
        if k != k_first and (c, w, k) not in seen:
            seen.add((c, w, k))
            out.append(g)
            cells.append(c * labels_n + k)
    return np.asarray(out, dtype=np.intp), np.asarray(cells, dtype=np.intp)


def below_quorum_records(
    clean: CleanBoxes,
    clusters: Clusters,
    ballot: Ballot,
    repeats: dict[int, int],
    answered: int,
    need: int,
) -> list[dict[str, Any]]:
    """One drop record per box that is not part of an output box, with the reason."""
    out = []
    cl, size = clusters.of, clusters.size
    below = (~ballot.kept[cl]).nonzero()[0]
    for g, wk, b in zip(
        below.tolist(), clean.worker[below].tolist(), clean.box[below].tolist(), strict=True
    ):
        if g in ballot.voted:
            continue
        if g in repeats:
            detail = f"a second box on the object of this worker's box {int(clean.box[repeats[g]])}"
            out.append(drop_record(wk, b, DropReason.DUPLICATE, detail))
            continue
        k = int(size[cl[g]])
        drew = f"{k} of {answered} workers drew it"
        if k < need:
            out.append(drop_record(wk, b, DropReason.BELOW_MIN_SUPPORT, f"{drew}; {need} needed"))
        elif ballot.log_odds is not None:
            cell = ballot.log_odds[cl[g]]
            p = float(_posterior(np.asarray(cell if np.ndim(cell) == 0 else cell.max())))
            detail = f"{drew}; the worker model gives it {p:.2f}, 0.5 needed"
            out.append(drop_record(wk, b, DropReason.UNLIKELY, detail))
        else:
            detail = f"{drew}, but no label was given by {need}"
            out.append(drop_record(wk, b, DropReason.BELOW_MIN_SUPPORT, detail))
    return out


def score_boxes(
    clean: CleanBoxes,
    clusters: Clusters,
    ballot: Ballot,
    member_weight: FloatArray | None,
    cluster_weight: FloatArray,
    total_weight: float,
    answered: int,
    *,
    void: BoolArray | None = None,
) -> Verdict:
    """The output boxes (one per kept cluster, or per kept label) and their confidence.

    ``member_weight`` is each box's worker weight (``None``: all 1), ``cluster_weight``
    their sum per cluster and ``total_weight`` the sum over the workers who answered;
    ``void`` marks the clusters whose members all weigh 0 (given equal weights to fuse):
    their support is 0.
    With a worker model (``ballot.log_odds``) the confidence is the posterior probability
    of the object.
    """
    cl, size, count = clusters.of, clusters.size, clusters.count
    labels_n = len(clean.labels)
    posterior = ballot.log_odds is not None
    agreement = _agreement(clean, clusters, answered) if not posterior else np.zeros(count)
    if ballot.label_kept is not None and ballot.voters is not None and ballot.cells is not None:
        # the kept cells on the flat table: 2-D nonzero and fancy indexing cost more
        cell = ballot.label_kept.ravel().nonzero()[0]
        rows, labs = np.divmod(cell, labels_n)
        if ballot.log_odds is not None:
            return Verdict(rows, labs, _posterior(ballot.log_odds.ravel().take(cell)))
        votes = ballot.voters.ravel()  # with equal weights the votes are the head counts
        if member_weight is not None:
            votes = np.bincount(ballot.cells, member_weight, count * labels_n)
            if len(ballot.extra):  # second boxes' votes come on top of the members' weight
                np.add.at(votes, ballot.extra_cells, member_weight[ballot.extra])
        k_box = ballot.voters.take(cell)
        box_votes = votes.take(cell)
        support = box_votes / total_weight
        if void is not None:
            support[void.take(rows)] = 0.0
        label_share = np.minimum(box_votes / cluster_weight.take(rows), 1.0)
        # the members who gave another label dissent: a contested label ranks below a
        # box nobody contradicts (workers miss objects more often than they mislabel them)
        quality = agreement[rows] * label_share - (1.0 - label_share)
        confidence = support_confidence(support, quality, k_box, answered)
        return Verdict(rows, labs, confidence)
    rows = ballot.kept.nonzero()[0]
    winner = np.zeros(len(rows), dtype=np.intp)
    quality = agreement
    if labels_n > 1:
        tally = np.bincount(
            cl * labels_n + clean.code, weights=member_weight, minlength=count * labels_n
        ).reshape(count, labels_n)
        winner_all = np.argmax(tally, axis=1)  # first maximum = highest priority on a tie
        quality = agreement * (tally[np.arange(count), winner_all] / cluster_weight)
        winner = winner_all[rows]
    if ballot.log_odds is not None:
        return Verdict(rows, winner, _posterior(ballot.log_odds[rows]))
    support_all = cluster_weight / total_weight
    if void is not None:
        support_all[void] = 0.0
    confidence_all = support_confidence(support_all, quality, size, answered)
    return Verdict(rows, winner, confidence_all[rows])


def _agreement(clean: CleanBoxes, clusters: Clusters, answered: int) -> FloatArray:
    """Mean pairwise IoU of each cluster's members (0 for a single member).

    Over every overlapping pair in a cluster, also those below the IoU threshold (a
    cluster formed around its mean box can hold them); pairs that do not overlap add 0.
    A cluster has at most one box per worker: at most ``answered`` members.
    """
    cl = clusters.of
    lo, hi, iou = clean.overlaps
    lo_cl = cl.take(lo)
    same = lo_cl == cl.take(hi)
    iou_sum = np.bincount(lo_cl.compress(same), iou.compress(same), clusters.count)
    agreement: FloatArray = iou_sum / _pair_counts(answered).take(clusters.size)
    return agreement


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
    support: FloatArray, quality: FloatArray, k: IntArray, answered: int
) -> FloatArray:
    """``support x (1 - (1 - quality) / (2k))`` within ``[0, 1]``; 0 when one worker answered.

    Rule 7 of ``docs/consolidation.md``, for boxes and polygons alike.
    """
    confidence: FloatArray = np.minimum(
        np.maximum(support * (1.0 - (1.0 - quality) / (2.0 * k)), 0.0), 1.0
    )
    if answered == 1:
        confidence[:] = 0.0
    return confidence


def _posterior(log_odds: FloatArray) -> FloatArray:
    """The probability of a log-odds, computed without overflow."""
    p: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * log_odds))
    return p
