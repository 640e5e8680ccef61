"""Worker quality measured against the consensus, usable as consolidation weights.

Consensus is not truth, but a worker who keeps disagreeing with the majority is either
careless or confused by the instructions; either way their boxes deserve less weight and
their work a look. Figures per worker (Hata et al. 2017 found quality stable over time, so
a few images already predict it):

- ``mean_iou``: mean IoU of their matched boxes to the consolidated box they joined;
- ``recall``: consolidated objects they drew / consolidated objects on images they answered
  (an object kept with two labels counts once, however many of their boxes joined it);
- ``precision``: their boxes that joined a kept cluster / all boxes they submitted;
- ``label_agreement``: matched boxes whose label equals the consensus label;
- ``size_bias``: mean of ``sqrt(their area / consensus area) - 1`` (> 0 loose, < 0 tight);
- ``mean_time_spent``: seconds per image, when known;
- with a worker model (:mod:`gt_toolkit.consolidation.worker_model`), its fitted
  ``miss_rate``, ``false_boxes`` (per image), ``box_noise`` and ``bias_left``, ``bias_top``,
  ``bias_right``, ``bias_bottom`` (``WorkerSkill.box_bias``, the edge offsets fusion takes
  out): the same worker seen across the whole job rather than against each image's
  consensus (absent without a model).

Streaming: :class:`QualityAccumulator` keeps only per-worker sums, so a 100,000-image job
costs constant memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from itertools import chain
from operator import eq, itemgetter
from typing import Any

import numpy as np

from gt_toolkit.consolidation.engine import ImageConsolidation
from gt_toolkit.consolidation.geometry import clip_xyxy, iou_pairs
from gt_toolkit.consolidation.worker_model import WorkerModel
from gt_toolkit.types import ImageSize, WorkerBox

__all__ = ["QualityAccumulator", "WorkerQuality", "quality_weights"]

_BIAS_COLUMNS = ("bias_left", "bias_top", "bias_right", "bias_bottom")  # box_bias's order
_MODEL_COLUMNS = ("miss_rate", "false_boxes", "box_noise", *_BIAS_COLUMNS)  # with a model


@dataclass
class WorkerQuality:
    """One worker's figures (see the module docstring)."""

    worker_id: str
    images: int = 0
    boxes: int = 0
    matched: int = 0
    consensus_boxes: int = 0
    mean_iou: float = 0.0
    recall: float = 0.0
    precision: float = 0.0
    label_agreement: float = 0.0
    size_bias: float = 0.0
    mean_time_spent: float | None = None
    miss_rate: float | None = None
    false_boxes: float | None = None
    box_noise: float | None = None
    bias_left: float | None = None
    bias_top: float | None = None
    bias_right: float | None = None
    bias_bottom: float | None = None

    @staticmethod
    def columns(*, with_model: bool) -> list[str]:
        """The table's columns: the model's only when a model was used."""
        return [f.name for f in fields(WorkerQuality) if with_model or f.name not in _MODEL_COLUMNS]

    def to_json(self) -> dict[str, Any]:
        """A plain dict for the JSON and CSV quality tables (:meth:`columns`)."""
        row = asdict(self)
        return {k: row[k] for k in self.columns(with_model=self.miss_rate is not None)}


class ExactSum:
    """A sum of floats that is the same in any order of its terms.

    The exact sum, rounded once when read: every finite double is an integer multiple of
    ``2**-1074``, so the sum is kept as that integer (Python's ints do not overflow) and
    read by one correctly rounded division. A plain ``+=`` rounds at every step, so the
    same crowd read in another order of images, annotators or boxes gave figures that
    differed in their last digits, and reports that differed byte for byte. Non-finite
    terms are summed apart (as ``fsum``); a sum beyond the largest float reads as an
    infinity. (Shewchuk's float partials, kept before, overflowed on finite terms: two times
    spent of 1e308 left partials of -inf and inf, and reading them raised ValueError, a
    traceback in ``gt-convert agreement`` and ``consolidate``; a third term made them NaN.)
    """

    __slots__ = ("_scaled", "_special")

    def __init__(self) -> None:
        self._scaled = 0  # the finite terms' exact sum, in units of 2**-1074
        self._special = 0.0

    def add(self, x: float) -> None:
        """Add one term."""
        if not math.isfinite(x):
            self._special += x
            return
        self._scaled += _units(x)

    def extend(self, terms: Iterable[float]) -> None:
        """Add the terms' sum, rounded once (``math.fsum``: the same in any order of them).

        One image's terms come together: one exact addition per image, not per box
        (``add`` runs in Python, about 0.5 us a term; the worker table's sums took a
        box's share of the engine's time). Non-finite terms go one by one, as ``add``.
        """
        part = list(terms)
        try:
            total = math.fsum(part)
        except (ValueError, OverflowError):  # inf - inf, or partials that overflowed
            total = math.nan
        if math.isfinite(total):  # every term finite: their exact sum, correctly rounded
            self.add(total)
            return
        # Past here fsum's answer depends on the terms' order: its partials overflow on
        # some orders of finite terms and not on others ([1, M, M, -M] raised, [-M, M, M, 1]
        # gave M), and it drops the finite terms beside an infinity where it does not raise.
        # So as fsum where it gives a figure, in any order: the finite terms' exact sum
        # rounded once (kept exact where it is beyond the largest float), the non-finite
        # ones one by one.
        scaled = 0
        for x in part:
            if math.isfinite(x):
                scaled += _units(x)
            else:
                self._special += x
        try:
            self._scaled += _units(scaled / _ONE)  # int / int: correctly rounded
        except OverflowError:
            self._scaled += scaled

    def __float__(self) -> float:
        try:
            total = self._scaled / _ONE  # int / int: correctly rounded, as fsum
        except OverflowError:  # beyond the largest float: as the running sum would read
            total = math.inf if self._scaled > 0 else -math.inf
        if not self._special:
            return total
        total += self._special
        # one NaN: inf - inf and nan + x carry a sign bit that depends on the terms' order
        return math.nan if math.isnan(total) else total

    def mean(self, count: int) -> float:
        """The sum over ``count`` (> 0), as ``float(self) / count``.

        Except where the sum overflows and the mean does not: two times spent of 1e308 have
        a mean of 1e308, not an infinity.
        """
        total = float(self)
        if math.isinf(total) and not self._special:
            try:
                return self._scaled / (_ONE * count)  # correctly rounded
            except OverflowError:
                return total
        return total / count


_SCALE = 1074  # the smallest float is 2**-1074: every finite float is a multiple of it
_ONE = 1 << _SCALE


def _units(x: float) -> int:
    """A finite float as an integer count of ``2**-1074`` (exact)."""
    numerator, denominator = x.as_integer_ratio()  # denominator: 2**k, k <= 1074
    return numerator << (_SCALE + 1 - denominator.bit_length())


@dataclass
class _Sums:
    images: int = 0
    boxes: int = 0
    matched: int = 0
    found: int = 0  # consensus objects they drew (two boxes on one object count once)
    consensus: int = 0
    iou: ExactSum = field(default_factory=ExactSum)
    same_label: int = 0
    size: ExactSum = field(default_factory=ExactSum)
    time: ExactSum = field(default_factory=ExactSum)
    timed: int = 0


# Where a consolidated box is: one object's boxes (one per kept label) share it.
_PLACE = itemgetter("left", "top", "width", "height")
_LABEL = itemgetter("label")


def _usable_time(t: float) -> bool:
    """Whether a time spent counts: a finite number (an int past the float range is not)."""
    try:
        return math.isfinite(t)
    except OverflowError:  # math.isfinite(10**400): no float holds it, as an infinity
        return False


def _label_of(answers: Sequence[Sequence[WorkerBox]], member: tuple[int, int]) -> Any:
    w, b = member
    return answers[w][b].get("label")


@dataclass
class QualityAccumulator:
    """Add images one by one; :meth:`result` gives one :class:`WorkerQuality` per worker."""

    _sums: dict[str, _Sums] = field(default_factory=dict)

    def add(
        self,
        worker_ids: Sequence[str],
        answers: Sequence[Sequence[WorkerBox]],
        consolidation: ImageConsolidation,
        *,
        image_size: ImageSize | None = None,
        time_spent: Sequence[float | None] | None = None,
    ) -> None:
        """Account one image: ``answers[i]`` is worker ``worker_ids[i]``'s boxes.

        ``consolidation`` must come from the same ``answers`` (its clusters index them).
        """
        # objects, not boxes: with quorum="label" one object can carry a box per label
        total = len(set(map(_PLACE, consolidation.boxes)))
        member_of: dict[tuple[int, int], int] = {}
        for c, members in enumerate(consolidation.clusters):
            for m in members:
                # with quorum="label" a cluster can give several boxes (one per label):
                # a worker's box counts towards the one with its own label
                if m not in member_of or consolidation.boxes[c]["label"] == _label_of(answers, m):
                    member_of[m] = c
        # each worker's (box, cluster) pairs, in one pass (a filter per worker was W x M)
        by_worker: dict[int, list[tuple[int, int]]] = {}
        for (w, b), c in member_of.items():
            by_worker.setdefault(w, []).append((b, c))
        for w, wid in enumerate(worker_ids):
            s = self._sums.setdefault(wid, _Sums())
            s.images += 1
            s.boxes += len(answers[w])
            s.consensus += total
            if time_spent is not None and w < len(time_spent):
                t = time_spent[w]
                if t is not None and _usable_time(t):
                    s.time.add(t)
                    s.timed += 1
            mine = by_worker.get(w)
            if not mine:
                continue
            theirs = [answers[w][b] for b, _ in mine]
            fused = [consolidation.boxes[c] for _, c in mine]
            a = _xyxy(theirs, image_size)
            f = _xyxy(fused, None)
            s.matched += len(mine)
            s.found += len(set(map(_PLACE, fused)))
            s.iou.extend(iou_pairs(a, f).tolist())
            area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
            area_f = (f[:, 2] - f[:, 0]) * (f[:, 3] - f[:, 1])
            ratio = np.divide(area_a, area_f, out=np.ones_like(area_a), where=area_f > 0)
            s.size.extend((np.sqrt(ratio) - 1.0).tolist())
            s.same_label += sum(map(eq, map(_LABEL, theirs), map(_LABEL, fused)))

    def result(self, worker_model: WorkerModel | None = None) -> list[WorkerQuality]:
        """Figures per worker, sorted by worker id, with ``worker_model``'s skills if given."""
        out = []
        for wid in sorted(self._sums):
            s = self._sums[wid]
            skill = worker_model.skill(wid) if worker_model is not None else None
            bias = (
                dict(zip(_BIAS_COLUMNS, skill.box_bias, strict=True)) if skill is not None else {}
            )
            out.append(
                WorkerQuality(
                    worker_id=wid,
                    images=s.images,
                    boxes=s.boxes,
                    matched=s.matched,
                    consensus_boxes=s.consensus,
                    mean_iou=s.iou.mean(s.matched) if s.matched else 0.0,
                    recall=s.found / s.consensus if s.consensus else 1.0,
                    precision=s.matched / s.boxes if s.boxes else 1.0,
                    label_agreement=s.same_label / s.matched if s.matched else 0.0,
                    size_bias=s.size.mean(s.matched) if s.matched else 0.0,
                    mean_time_spent=s.time.mean(s.timed) if s.timed else None,
                    miss_rate=skill.miss_rate if skill is not None else None,
                    false_boxes=skill.false_boxes if skill is not None else None,
                    box_noise=skill.box_noise if skill is not None else None,
                    **bias,
                )
            )
        return out


def _xyxy(boxes: Sequence[Mapping[str, Any]], image_size: ImageSize | None) -> np.ndarray[Any, Any]:
    # one flat fromiter, as the engine reads the same boxes (a float() per number cost 3x)
    flat = chain.from_iterable(map(_PLACE, boxes))
    arr = np.fromiter(flat, dtype=np.float64, count=4 * len(boxes)).reshape(-1, 4)
    arr[:, 2:] += arr[:, :2]
    if image_size is not None:
        arr = clip_xyxy(arr, image_size["width"], image_size["height"])
    return arr


def quality_weights(
    qualities: Sequence[WorkerQuality], *, floor: float = 0.1, min_images: int = 5
) -> dict[str, float]:
    """Fusion weights from quality: ``mean_iou x F1(recall, precision)``, at least ``floor``.

    Workers seen on fewer than ``min_images`` images get weight 1.0 (not enough evidence),
    and a worker with no box matched has no IoU to go by: their F1 alone weighs them (one
    who rightly drew nothing on empty images keeps 1.0; their ``mean_iou`` of 0 had put
    them at the floor). Pass the result to
    :func:`~gt_toolkit.consolidation.engine.consolidate_image` in worker order.
    """
    weights: dict[str, float] = {}
    for q in qualities:
        if q.images < min_images:
            weights[q.worker_id] = 1.0
            continue
        pr = q.precision + q.recall
        f1 = 2 * q.precision * q.recall / pr if pr > 0 else 0.0
        fit = q.mean_iou if q.matched else 1.0
        weights[q.worker_id] = max(floor, fit * f1)
    return weights
