"""How much annotators agree on boxes: Krippendorff's alpha after matching, and who drifts.

Matching first (as KaLOS and CVAT's consensus do): on each image the boxes of different
annotators that show the same object are grouped by the consolidation engine's clustering
(one box per annotator per cluster, IoU >= ``iou_threshold``; rules in
:mod:`gt_toolkit.consolidation.engine`), every cluster kept. Each cluster is a *unit*; each
annotator who saw the image gives it one *value*: their box, or "nothing" when they drew
none there. A worker's second box on an object and broken boxes are not values (the engine
drops them with a reason).

Distance between two values: ``1 - IoU`` for two boxes of one label, 1 for boxes of
different labels and for a box against nothing, 0 for nothing against nothing. Then, with
``n`` pairable values (units seen by at least two annotators),

    D_o = 1/n x sum over units u of  sum_{i != j in u} d(v_i, v_j) / (m_u - 1)
    D_e = mean of d over all ordered pairs of distinct pairable values
    alpha = 1 - D_o / D_e

which is Krippendorff's alpha with this distance (cross-checked against the ``krippendorff``
package in the tests). ``D_e`` compares boxes across images by their position relative to
the image size (where it is unknown, to the far corner of the image's boxes); it is computed
from every value up to ``sample_size`` values and from a uniform (seeded) sample beyond, so
its cost is bounded on any job; the sample is chosen by the values' names (image, unit,
annotator), so the same crowd in another order gives the same figures.

Reported: alpha overall, per class (the units whose consensus label it is, with their own
``D_e``), per image (``1 - D_o(image) / D_e``: the job's ``D_e`` makes images comparable and
gives one-unit images a value), for each pair of annotators who shared a unit (``1 - mean
d over the units either drew / D_e``; only those pairs are kept), and per annotator the
precision, recall, mean IoU and size bias against the consensus
(:mod:`gt_toolkit.consolidation.worker_quality`), joined, when a worker model is given, by its
fitted miss rate, false boxes per image and box noise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from gt_toolkit.consolidation.engine import ConsolidationSettings, consolidate_image
from gt_toolkit.consolidation.geometry import box_iou, clip_xyxy, iou_matrix
from gt_toolkit.consolidation.label_check import label_mismatch
from gt_toolkit.consolidation.worker_model import WorkerModel
from gt_toolkit.consolidation.worker_quality import ExactSum, QualityAccumulator, WorkerQuality
from gt_toolkit.errors import ConsolidationError
from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.formats.crowd.base import CrowdItem
from gt_toolkit.storage.files import AllOrNone, Location, join_location, json_bytes
from gt_toolkit.storage.s3 import S3Store
from gt_toolkit.templating import render_page
from gt_toolkit.types import ImageSize, WorkerBox

__all__ = [
    "AgreementReport",
    "ClassAgreement",
    "ImageAgreement",
    "Value",
    "agreement_files",
    "match_units",
    "measure_agreement",
    "page_context",
    "value_distance",
    "write_agreement",
]

Value = tuple[str, float, float, float, float] | None
"""One annotator's value in a unit: ``(label, x1, y1, x2, y2)``, or ``None`` (drew nothing)."""


def value_distance(a: Value, b: Value) -> float:
    """The distance between two values (module docstring), in plain Python for one pair."""
    if a is None or b is None:
        return 0.0 if a is b else 1.0
    if a[0] != b[0]:
        return 1.0
    return 1.0 - box_iou(a[1:], b[1:])


def _corners(box: WorkerBox) -> list[float]:
    """The box's corners in pixels."""
    left, top = float(box["left"]), float(box["top"])
    return [left, top, left + float(box["width"]), top + float(box["height"])]


def _frame(size: ImageSize | None, boxes: Iterable[Sequence[float]]) -> tuple[float, float]:
    """The width and height that make an image's corners relative.

    Its size when known; else the far corner of its boxes (the image holds them all), so
    that ``D_e`` never compares one image's pixels with another's fractions. Pixels (1, 1)
    where the boxes give no positive extent.
    """
    if size is not None:
        return float(size["width"]), float(size["height"])
    far_x = far_y = 0.0
    for b in boxes:
        far_x, far_y = max(far_x, b[2]), max(far_y, b[3])
    return (far_x if far_x > 0 else 1.0), (far_y if far_y > 0 else 1.0)


def match_units(
    image: CrowdImage,
    *,
    iou_threshold: float = 0.5,
    labels: Sequence[str] | None = None,
) -> tuple[list[list[Value]], list[str]]:
    """The image's units (one value per annotator, in order) and each unit's consensus label.

    Coordinates are relative to the image size, or where it is not known to the far
    corner of the image's boxes (:func:`_frame`).
    """
    # one output box per cluster (its voted label): per label, one object seen as a car by
    # two and a truck by one would be two units
    settings = ConsolidationSettings(iou_threshold=iou_threshold, min_support=1, quorum="box")
    result = consolidate_image(
        image.boxes, settings=settings, labels=labels, image_size=image.image_size
    )
    corners = {m: _corners(image.boxes[m[0]][m[1]]) for ms in result.clusters for m in ms}
    width, height = _frame(image.image_size, corners.values())
    units: list[list[Value]] = []
    for members in result.clusters:
        values: list[Value] = [None] * len(image.annotators)
        for worker, index in members:
            xyxy = corners[worker, index]
            if image.image_size is not None:
                xyxy = clip_xyxy([xyxy], width, height)[0].tolist()
            x1, y1, x2, y2 = xyxy
            label = image.boxes[worker][index]["label"]
            values[worker] = (label, x1 / width, y1 / height, x2 / width, y2 / height)
        units.append(values)
    return units, [b["label"] for b in result.boxes]


def _pair_sum(values: Sequence[Value]) -> float:
    """Sum of d over ordered pairs of distinct values, vectorised over the boxes."""
    boxes = [v for v in values if v is not None]
    empties = len(values) - len(boxes)
    total = 2.0 * empties * len(boxes) + len(boxes) * (len(boxes) - 1)
    by_label: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for v in boxes:
        by_label[v[0]].append(v[1:])
    for _, coords in sorted(by_label.items()):  # labels, then boxes, in one order
        if len(coords) > 1:
            coords.sort()
            arr = np.array(coords, dtype=np.float64)
            for start in range(0, len(arr), 512):  # bounded memory for big samples
                block = iou_matrix(arr[start : start + 512], arr)
                total -= float(block.sum())
            total += len(coords)  # the diagonal: a value against itself
    return total


class _Reservoir:
    """Every value up to ``size``, then the ``size`` values whose names hash lowest.

    A bottom-k sample: uniform, like Algorithm R, but chosen by each value's name (its
    image, unit and annotator) under the seed, never by when it came: Algorithm R's sample,
    drawn in reading order, gave the same crowd another alpha when its images or annotators
    came in another order (-0.0085 and -0.0102 on one 6,000-value crowd).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: list[tuple[int, int, Value]] = []  # a heap of (-hash, arrival, value)
        self.seen = 0

    def add(self, value: Value, rank: int) -> None:
        """Add ``value``, its name's :func:`_rank` given (one hash serves every sample)."""
        self.seen += 1
        entry = (-rank, self.seen, value)
        if len(self._kept) < self.size:
            heapq.heappush(self._kept, entry)
        elif entry[0] > self._kept[0][0]:  # hashes lower than the highest kept one
            heapq.heapreplace(self._kept, entry)

    @property
    def values(self) -> list[Value]:
        """The kept values, by their hashes (the sums over them add up in one order)."""
        return [value for _, _, value in sorted(self._kept, key=lambda e: (-e[0], e[1]))]

    def expected(self) -> float | None:
        values = self.values
        n = len(values)
        return _pair_sum(values) / (n * (n - 1)) if n > 1 else None


@dataclass
class _Disagreement:
    """Observed disagreement sums for one slice of the units (exact: any order, one sum)."""

    weighted: ExactSum = field(default_factory=ExactSum)  # of pair sum / (m_u - 1) per unit
    values: int = 0
    units: int = 0

    def add(self, pair_sum: float, values: int) -> None:
        self.weighted.add(pair_sum / (values - 1))
        self.values += values
        self.units += 1

    def observed(self) -> float | None:
        return float(self.weighted) / self.values if self.values else None


def _alpha(observed: float | None, expected: float | None) -> float | None:
    if observed is None or expected is None or expected <= 0:
        return None
    return 1.0 - observed / expected


@dataclass(frozen=True, slots=True)
class ClassAgreement:
    """Alpha over the units whose consensus label is ``label``."""

    label: str
    alpha: float | None
    units: int
    boxes: int


@dataclass(frozen=True, slots=True)
class ImageAgreement:
    """Alpha of one image against the job's expected disagreement."""

    key: str
    alpha: float | None
    units: int
    annotators: int
    boxes: int


@dataclass
class AgreementReport:
    """What :func:`measure_agreement` found; :meth:`to_json` is the JSON file's content."""

    alpha: float | None
    observed_disagreement: float | None
    expected_disagreement: float | None
    units: int
    values: int
    sampled_values: int
    iou_threshold: float
    per_class: list[ClassAgreement]
    per_image: list[ImageAgreement]
    per_annotator: list[WorkerQuality]
    annotators: list[str]
    pairs: dict[tuple[int, int], tuple[float | None, int]]
    """Per pair of annotators ``(i, j)``, ``i < j`` indexes into ``annotators``, who shared
    a unit: their alpha and units. Only those pairs: a job of 5,000 annotators, each on a few
    images, has 12.5 million pairs, nearly all of whom never met (as a full matrix its JSON
    took 569 MB and the run 1.6 GB)."""
    extra: dict[str, Any] = field(default_factory=dict)
    unknown_workers: list[str] | None = None
    """With a worker model: the annotators it has not seen, whose model columns are the
    crowd's figures (:meth:`WorkerModel.skill`), not theirs; ``None`` without a model."""

    def pair(self, i: int, j: int) -> tuple[float | None, int]:
        """Alpha and units of annotators ``i`` and ``j``: ``(None, 0)`` when they never met."""
        return self.pairs.get((i, j) if i < j else (j, i), (None, 0))

    @property
    def pair_alpha(self) -> list[list[float | None]]:
        """Alpha of every pair as a full matrix (its size grows with the square of the crowd)."""
        n = len(self.annotators)
        return [[self.pair(i, j)[0] for j in range(n)] for i in range(n)]

    @property
    def pair_units(self) -> list[list[int]]:
        """Units of every pair as a full matrix (``0`` on the diagonal and for strangers)."""
        n = len(self.annotators)
        return [[self.pair(i, j)[1] for j in range(n)] for i in range(n)]

    def undefined_because(self) -> str | None:
        """Why ``alpha`` is ``None``, in words (``None`` when it is a number)."""
        if self.alpha is not None:
            return None
        if not self.units:
            return "no object was drawn on an image two annotators saw"
        # D_e = 0: every value alike; D_o is 0 too, but 0 / 0 is no figure
        return (
            "every annotator drew the same boxes and left none out: they agree fully, but "
            "alpha needs values that differ somewhere to measure agreement against chance"
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: images worst first (images without units last).

        ``matrix.pairs`` lists every pair that shared a unit as ``[i, j, alpha, units]``
        (``i < j``, indexes into ``matrix.annotators``); ``matrix.alpha`` and
        ``matrix.units`` are the full matrices up to :data:`JSON_MATRIX_ANNOTATORS`
        annotators, ``null`` beyond (they grow with the square of the crowd).
        """
        full = len(self.annotators) <= JSON_MATRIX_ANNOTATORS
        return {
            "alpha": self.alpha,
            "alpha_undefined": self.undefined_because(),
            "observed_disagreement": self.observed_disagreement,
            "expected_disagreement": self.expected_disagreement,
            "units": self.units,
            "values": self.values,
            "expected_from_values": self.sampled_values,
            "iou_threshold": self.iou_threshold,
            "per_class": [_plain(c) for c in self.per_class],
            "per_image": [_plain(i) for i in self.per_image],
            "per_annotator": [q.to_json() for q in self.per_annotator],
            "matrix": {
                "annotators": self.annotators,
                "pairs": [
                    [i, j, alpha, units] for (i, j), (alpha, units) in sorted(self.pairs.items())
                ],
                "alpha": self.pair_alpha if full else None,
                "units": self.pair_units if full else None,
            },
            "unknown_workers": self.unknown_workers,
            **self.extra,
        }


JSON_MATRIX_ANNOTATORS = 500
"""Annotators up to which the JSON report also holds the full pair matrices (250,000 cells);
its ``matrix.pairs`` holds every pair that met, however large the crowd."""


def _plain(row: ClassAgreement | ImageAgreement) -> dict[str, Any]:
    return {name: getattr(row, name) for name in row.__slots__}


@dataclass
class _Tally:
    """Everything :func:`measure_agreement` accumulates, image by image.

    Bounded by the sample size and the number of annotators (pairs), except one small row
    per image for the per-image table.
    """

    seed: bytes
    sample_size: int
    overall: _Disagreement = field(default_factory=_Disagreement)
    reservoir: _Reservoir = field(init=False)
    classes: dict[str, tuple[_Disagreement, _Reservoir]] = field(default_factory=dict)
    class_boxes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    images: list[tuple[str, _Disagreement, int, int]] = field(default_factory=list)
    pairs: dict[tuple[str, str], tuple[ExactSum, list[int]]] = field(default_factory=dict)
    quality: QualityAccumulator = field(default_factory=QualityAccumulator)

    def __post_init__(self) -> None:
        self.reservoir = _Reservoir(self.sample_size)

    def unit(
        self, image: CrowdImage, number: int, values: list[Value], label: str, mine: _Disagreement
    ) -> None:
        """Account the image's unit ``number`` (its place among the image's units)."""
        pair_sum = _pair_sum(values)
        for slice_ in (self.overall, mine):
            slice_.add(pair_sum, len(values))
        if label not in self.classes:
            self.classes[label] = (_Disagreement(), _Reservoir(self.sample_size))
        disagreement, reservoir = self.classes[label]
        disagreement.add(pair_sum, len(values))
        self.class_boxes[label] += sum(v is not None for v in values)
        for annotator, value in zip(image.annotators, values, strict=True):
            rank = _rank(_value_name(image.key, number, annotator, value), self.seed)
            self.reservoir.add(value, rank)
            reservoir.add(value, rank)
        for (i, a), (j, b) in combinations(enumerate(image.annotators), 2):
            if values[i] is None and values[j] is None:
                continue
            key = (a, b) if a < b else (b, a)
            if key not in self.pairs:
                self.pairs[key] = (ExactSum(), [0])
            distance, units = self.pairs[key]
            distance.add(value_distance(values[i], values[j]))
            units[0] += 1


def _rank(name: str, seed: bytes) -> int:
    """A value's place in every sample: its name's keyed hash (the lowest are kept)."""
    digest = hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8, key=seed)
    return int.from_bytes(digest.digest(), "big")


def _value_name(key: str, unit: int, annotator: str, value: Value) -> str:
    """The name a value is sampled by: one per value, whatever the order they come in.

    The image's key and the annotator go with their lengths, so no two of them join into
    one name around the NUL that parts them, and the value itself goes too: the
    same image listed twice (two lines of a Ground Truth manifest, one ``source-ref``) gave
    two different values one name, one hash, and the sample took whichever came first where
    the two straddled its cut (the same crowd in another order had another ``D_e``). Equal
    names now mean equal values, so which of them is kept changes no figure. Both as text,
    as the name always took them: an id given as a number (``annotators=(1, 2)``) was
    measured before the lengths came, and ``len(1)`` then raised TypeError.
    """
    key, annotator = str(key), str(annotator)
    return f"{len(key)}:{key}\0{unit}\0{len(annotator)}:{annotator}\0{value!r}"


def measure_agreement(
    images: Iterable[CrowdImage | CrowdItem],
    *,
    iou_threshold: float = 0.5,
    labels: Sequence[str] | None = None,
    consensus: ConsolidationSettings | None = None,
    sample_size: int = 2000,
    seed: int = 0,
    worker_model: WorkerModel | None = None,
) -> AgreementReport:
    """Agreement of a crowd, read image by image (definitions in the module docstring).

    Args:
        images: the crowd, from :func:`~gt_toolkit.formats.crowd.sources.iter_crowd_images`,
            or a source's items (``source.items()``), which also give each annotator's time
            spent where the tool records it (the per-annotator ``mean_time_spent``).
        iou_threshold: the IoU at which boxes of two annotators are matched.
        labels: the label list: boxes of other labels are left out of every figure (not
            values, not in the per-annotator counts); ``None`` accepts all. A listed label
            the crowd spelt otherwise more often (``Ball`` for the ``ball`` they drew) is an
            error, as in consolidation.
        consensus: the settings of the consensus each annotator is scored against
            (default: the engine's defaults at ``iou_threshold``).
        sample_size: values kept to compute the expected disagreement (exact below it).
        seed: the reservoir sample's seed (same input, same figures).
        worker_model: a worker model fitted on the job, whose per-worker skills join the
            per-annotator rows; it changes no other figure (alpha and the consensus are
            the crowd's own).

    Raises:
        ConsolidationError: a listed label is spelt otherwise (case, surrounding spaces)
            by more of the crowd's boxes
            (:func:`~gt_toolkit.consolidation.label_check.label_mismatch`): every one of
            its objects would be left out, and the report would say nobody drew them.
    """
    consensus = consensus or ConsolidationSettings(iou_threshold=iou_threshold)
    tally = _Tally(hashlib.blake2b(str(seed).encode(), digest_size=32).digest(), sample_size)
    wanted = None if labels is None else set(labels)
    drawn: Counter[str] = Counter()
    for entry in images:
        image = entry.image if isinstance(entry, CrowdItem) else entry
        if wanted is not None:
            drawn.update(
                b["label"]
                for answer in image.boxes
                for b in answer
                if isinstance(b.get("label"), str)
            )
            image = _only_labels(image, wanted)
        mine = _Disagreement()
        boxes = sum(len(b) for b in image.boxes)
        if len(image.annotators) > 1:
            units, unit_labels = match_units(image, iou_threshold=iou_threshold, labels=labels)
            for number, (values, label) in enumerate(zip(units, unit_labels, strict=True)):
                tally.unit(image, number, values, label, mine)
        tally.images.append((image.key, mine, len(image.annotators), boxes))
        if image.annotators:
            result = consolidate_image(
                image.boxes, settings=consensus, labels=labels, image_size=image.image_size
            )
            tally.quality.add(
                image.annotators,
                image.boxes,
                result,
                image_size=image.image_size,
                time_spent=entry.time_spent or None if isinstance(entry, CrowdItem) else None,
            )
    if labels is not None:
        _check_label_list(drawn, labels)
    return _report(tally, iou_threshold, worker_model)


def _check_label_list(drawn: Counter[str], labels: Sequence[str]) -> None:
    """Refuse a label list whose label the crowd spelt otherwise, mostly.

    Only that rule of :func:`~gt_toolkit.consolidation.label_check.label_mismatch`: here the
    list is a filter, and leaving most boxes out (``--labels car`` on a crowd of people) is
    what it is for. ``--labels Ball`` on a crowd that drew ``ball`` left every box out and
    exited 0, saying nobody drew anything on an image two annotators saw.

    Raises:
        ConsolidationError: with the label check's message.
    """
    wanted = set(labels)
    unknown = Counter({name: n for name, n in drawn.items() if name not in wanted})
    # misread=0 of answers=1: never "most boxes dropped", only a respelt listed label
    mismatch = label_mismatch(
        unknown, sum(drawn.values()), labels, answers=1, misread=0, drawn=drawn
    )
    if mismatch is not None:
        raise ConsolidationError(
            f"{mismatch.message} (agreement counts only the listed labels: fix --labels)"
        )


def _only_labels(image: CrowdImage, labels: set[str]) -> CrowdImage:
    """The image without the boxes of other labels: they are not counted anywhere.

    Left in, the consensus dropped them (``unknown-label``) and each one lowered its
    annotator's precision and swelled the box counts: ``--labels car`` scored annotators on
    the people they drew. A box whose label is not a name at all stays, a broken box.
    """
    kept = tuple(
        [b for b in answer if not isinstance(b.get("label"), str) or b["label"] in labels]
        for answer in image.boxes
    )
    return dataclasses.replace(image, boxes=kept)


def _report(
    tally: _Tally, iou_threshold: float, worker_model: WorkerModel | None
) -> AgreementReport:
    expected = tally.reservoir.expected()
    per_image = [
        ImageAgreement(key, _alpha(d.observed(), expected), d.units, annotators, boxes)
        for key, d, annotators, boxes in tally.images
    ]
    # ties by key, then the rest of the row (one image listed twice has two rows of one key):
    # the same crowd in another order lists its images in the same order
    per_image.sort(
        key=lambda r: (
            r.alpha is None,
            r.alpha if r.alpha is not None else 0.0,
            r.key,
            r.units,
            r.annotators,
            r.boxes,
        )
    )
    per_class = [
        ClassAgreement(label, _alpha(d.observed(), r.expected()), d.units, tally.class_boxes[label])
        for label, (d, r) in sorted(tally.classes.items())
    ]
    quality = tally.quality.result(worker_model)
    names = sorted({q.worker_id for q in quality})
    index = {name: i for i, name in enumerate(names)}
    pairs: dict[tuple[int, int], tuple[float | None, int]] = {}
    for (a, b), (distance, (units,)) in tally.pairs.items():  # a < b: index[a] < index[b]
        pairs[index[a], index[b]] = (_alpha(float(distance) / units, expected), units)
    return AgreementReport(
        alpha=_alpha(tally.overall.observed(), expected),
        observed_disagreement=tally.overall.observed(),
        expected_disagreement=expected,
        units=tally.overall.units,
        values=tally.overall.values,
        sampled_values=len(tally.reservoir.values),
        iou_threshold=iou_threshold,
        per_class=per_class,
        per_image=per_image,
        per_annotator=quality,
        annotators=names,
        pairs=pairs,
        unknown_workers=(
            None if worker_model is None else [n for n in names if n not in worker_model.workers]
        ),
    )


def _figure(value: float | None, digits: int = 3) -> str:
    """A figure for the page: ``-`` when undefined."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _colour(alpha: float | None) -> str:
    """Red at alpha <= 0 through yellow to green at 1; grey when undefined."""
    if alpha is None:
        return "#eeeeee"
    return f"hsl({round(120 * min(1.0, max(0.0, alpha)))}, 70%, 80%)"


_ANNOTATOR_KEYS = {
    "worker_id": "annotator",
    "images": "images",
    "boxes": "boxes",
    "precision": "precision",
    "recall": "recall",
    "mean_iou": "mean IoU",
    "size_bias": "size bias",
    "label_agreement": "label agreement",
    "miss_rate": "model: miss rate",  # the worker model's columns, when one was given
    "false_boxes": "model: false boxes / image",
    "box_noise": "model: box noise",
    "bias_left": "model: bias left",
    "bias_top": "model: bias top",
    "bias_right": "model: bias right",
    "bias_bottom": "model: bias bottom",
}


MATRIX_ANNOTATORS = 60
"""Annotators in the page's matrix at most: the cells grow with their square (1,500
annotators made a 128 MB page no browser opens); the JSON report holds every pair."""


def _matrix_rows(report: AgreementReport, most: int) -> list[int]:
    """Indexes into ``report.annotators`` of those the page's matrix shows, in name order.

    All of them, or the ``most`` who answered the most images (ties by name).
    """
    if len(report.annotators) <= most:
        return list(range(len(report.annotators)))
    images = {q.worker_id: q.images for q in report.per_annotator}
    busiest = sorted(
        range(len(report.annotators)),
        key=lambda i: (-images.get(report.annotators[i], 0), report.annotators[i]),
    )
    return sorted(busiest[:most])


def _cell(alpha: float | None, units: int) -> dict[str, Any]:
    """One cell of the page's matrix."""
    return {"alpha": _figure(alpha, 2), "units": units, "colour": _colour(alpha)}


def page_context(
    report: AgreementReport,
    *,
    title: str,
    notes: Sequence[str] = (),
    worst: int = 50,
    matrix_annotators: int = MATRIX_ANNOTATORS,
) -> dict[str, Any]:
    """The agreement page's values, formatted (the template only places them)."""
    shown = _matrix_rows(report, matrix_annotators)
    rows = [q.to_json() for q in report.per_annotator]
    keys = [k for k in _ANNOTATOR_KEYS if not rows or k in rows[0]]
    notes = list(notes)
    undefined = report.undefined_because()
    if undefined is not None:
        notes.insert(0, f"α is undefined: {undefined}.")
    if report.unknown_workers:
        listed = ", ".join(report.unknown_workers[:10])
        more = len(report.unknown_workers) - 10
        notes.append(
            f"{len(report.unknown_workers)} annotators are not in the worker model; their "
            f"model columns show the crowd's figures: {listed}"
            + (f" and {more} more (all in the JSON report)." if more > 0 else ".")
        )
    return {
        "title": title,
        "notes": notes,
        "alpha": _figure(report.alpha),
        "units": report.units,
        "values": report.values,
        "iou_threshold": report.iou_threshold,
        "classes": [
            {"label": c.label, "alpha": _figure(c.alpha), "units": c.units, "boxes": c.boxes}
            for c in report.per_class
        ],
        "annotator_keys": [_ANNOTATOR_KEYS[k] for k in keys],
        "annotators": [
            [r[k] if isinstance(r[k], str | int) else _figure(r[k]) for k in keys] for r in rows
        ],
        "matrix": [
            {
                "number": number,
                "name": report.annotators[i],
                "cells": [_cell(*report.pair(i, j)) for j in shown],
            }
            for number, i in enumerate(shown, start=1)
        ],
        "matrix_shown": len(shown),
        "matrix_total": len(report.annotators),
        "images": [
            {
                "key": r.key,
                "alpha": _figure(r.alpha),
                "units": r.units,
                "annotators": r.annotators,
                "boxes": r.boxes,
            }
            for r in report.per_image[:worst]
        ],
        "images_shown": min(worst, len(report.per_image)),
        "images_total": len(report.per_image),
    }


def write_agreement(
    report: AgreementReport,
    out_dir: Location,
    *,
    title: str = "Annotator agreement",
    notes: Sequence[str] = (),
    worst: int = 50,
    store: S3Store | None = None,
    together: AllOrNone | None = None,
) -> dict[str, str]:
    """Write ``agreement.json`` and ``agreement.html`` into ``out_dir`` (local or ``s3://``).

    Both files or neither: one that cannot be written takes the other back (a page beside
    an earlier run's JSON would describe another crowd), and an earlier run's local copies
    it replaced are put back (:meth:`~gt_toolkit.storage.files.AllOrNone.open` keeps them).
    ``together``: the caller's :class:`~gt_toolkit.storage.files.AllOrNone`, when more files
    must go with them.

    Returns:
        ``{"json": location, "html": location}`` (:func:`agreement_files`).
    """
    written = agreement_files(out_dir)
    context = page_context(report, title=title, notes=notes, worst=worst)
    page = render_page("agreement/report.html.j2", context).encode()
    data = json_bytes(report.to_json())
    with contextlib.ExitStack() as stack:
        group = together or stack.enter_context(AllOrNone(store=store))
        with group.open(written["json"]) as json_file, group.open(written["html"]) as html_file:
            json_file.write(data)
            html_file.write(page)
    return written


def agreement_files(out_dir: Location) -> dict[str, str]:
    """Where :func:`write_agreement` writes, known before it runs (a rejects file must not be)."""
    return {
        "json": join_location(out_dir, "agreement.json"),
        "html": join_location(out_dir, "agreement.html"),
    }
