"""A model of each worker, fitted over a whole job, to decide which clusters are objects.

After the box model of Branson, Van Horn and Perona, "Lean Crowdsourcing" (CVPR 2017): per
worker a miss rate, a false-box rate, a box noise and a box bias, fitted by
expectation-maximisation over the engine's clusters of the whole job, then used by
``consolidate_image(..., worker_model=...)`` to keep the clusters the model finds likelier
objects than not, to weight the fusion and to take each worker's bias out of their boxes
before it. The model, its fit and its use are told in ``docs/consolidation.md``
(rule 8 and "The worker model"); this module is the arithmetic.

Memory: the fit reads the images once, holding the candidates of at most ``chunk_images``
images at a time; across chunks it keeps a few sums per worker.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from gt_toolkit.consolidation.clean import IntArray, clean_boxes
from gt_toolkit.consolidation.clusters import cluster_boxes, row_sums
from gt_toolkit.consolidation.geometry import FloatArray
from gt_toolkit.consolidation.repeats import find_repeats
from gt_toolkit.consolidation.settings import ConsolidationSettings
from gt_toolkit.consolidation.votes import LEAST_WEIGHT, Evidence
from gt_toolkit.errors import ConsolidationError
from gt_toolkit.formats.crowd import CrowdImage, is_anonymous_worker
from gt_toolkit.storage.files import Location, read_bytes
from gt_toolkit.storage.s3 import S3Store

__all__ = ["WorkerModel", "WorkerSkill", "fit_worker_model", "read_worker_model"]

PRIOR_STRENGTH = 5.0
"""Pseudo-observations behind the crowd's rates in each worker's estimate (the paper's 5)."""
_RATE_FLOOR = 1e-3  # no rate is certain: one surprising answer must not give infinite odds
_NOISE_FLOOR = 0.01  # box sizes; keeps the weight of a worker who copies the others finite
_DEFAULT_SKILL = (0.2, 0.1, 0.05)  # miss rate, false boxes per image, noise: before evidence
_DEFAULT_PLACES = 100.0  # when no image has a size
# e^100: a 2^31-pixel-square image of 1-pixel boxes has e^43 places; past this, exp overflows
# soon after (e^710) and the prior's log(objects / places) has nothing more to say
_MOST_PLACES_LOG = 100.0
MAX_BIAS = 0.25
"""The largest edge bias, in box sizes: a corrected box keeps at least half its size."""
_NO_BIAS = (0.0, 0.0, 0.0, 0.0)
_EDGES = ("left", "top", "right", "bottom")
_DEFAULTS = ConsolidationSettings()
_EVIDENCE_GROUPS = 4096  # groups of annotators whose evidence a model remembers


@dataclass(frozen=True, slots=True)
class WorkerSkill:
    """One worker's fitted skills (see the module docstring), and what they rest on.

    Attributes:
        miss_rate: chance of drawing no box on a real object in an answered image.
        false_boxes: false boxes drawn per answered image, on average.
        box_noise: root mean square of the worker's edge offsets from the other workers'
            mean box (in its width or height, as ``box_bias``) once ``box_bias`` is taken
            out: how unsteady they are beyond the habit fusion corrects (the crowd's, which
            stands for workers never seen and so never corrected, keeps the bias in).
        images: images the worker answered in the fitted job.
        boxes: boxes of theirs that took part (valid, not a repeat).
        false_share: the expected share of those boxes that are not objects.
        box_bias: the mean offset of each edge (left, top, right, bottom) from the other
            workers' mean box on the same object, in box widths (left, right) or heights
            (top, bottom); > 0 to the right or down: ``(-0.1, 0, 0.1, 0)`` draws 10% too
            wide on each side. Taken out of their boxes before fusion.
    """

    miss_rate: float
    false_boxes: float
    box_noise: float
    images: int = 0
    boxes: int = 0
    false_share: float = 0.0
    box_bias: tuple[float, float, float, float] = _NO_BIAS

    @property
    def weight(self) -> float:
        """Fusion weight: the inverse variance of the worker's box edges."""
        return 1.0 / self.box_noise**2


@dataclass(frozen=True)
class WorkerModel:
    """Per-worker skills over a whole job, and the crowd's, for workers it has not seen.

    Attributes:
        workers: skills by worker id.
        crowd: the pooled skills of the whole crowd (used for unknown workers).
        objects: real objects per image (that at least one worker drew), on average.
        places: how many places a box can take in an image (image area over the
            geometric mean box area): two false boxes rarely fall on the same one.
    """

    workers: Mapping[str, WorkerSkill]
    crowd: WorkerSkill
    objects: float
    places: float
    _evidence: dict[tuple[str, ...], Evidence] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def skill(self, worker: str) -> WorkerSkill:
        """The worker's skills, or the crowd's for a worker the model has not seen."""
        return self.workers.get(worker, self.crowd)

    def evidence(self, annotators: Sequence[str]) -> Evidence:
        """The log-odds terms for one image answered by ``annotators`` (in answer order).

        Remembered per group of annotators (read only): the images of a job come back to
        the same few groups, and building the terms cost about 40 us an image.
        """
        key = tuple(annotators)
        found = self._evidence.get(key)
        if found is None:
            found = self._new_evidence(key)
            if len(self._evidence) >= _EVIDENCE_GROUPS:  # a job of ever-new groups: start over
                self._evidence.clear()
            self._evidence[key] = found
        return found

    def _new_evidence(self, annotators: Sequence[str]) -> Evidence:
        skills = [self.skill(w) for w in annotators]
        miss = np.array([s.miss_rate for s in skills], dtype=np.float64)
        false = np.array([s.false_boxes for s in skills], dtype=np.float64)
        drawn, silent = _log_odds_terms(miss, false, self.places)
        weights = _scaled(np.array([s.weight for s in skills], dtype=np.float64))
        bias = np.array([s.box_bias for s in skills], dtype=np.float64).reshape(-1, 4)
        for shared in (drawn, weights, bias):  # one image's terms serve the next ones too
            shared.setflags(write=False)
        # fsum: order-free
        return Evidence(
            drawn, math.log(self.objects / self.places) + math.fsum(silent.tolist()), weights, bias
        )

    def to_json(self) -> dict[str, Any]:
        """A plain dict (the worker table a Lambda or a later run reads back).

        Answers without a worker id (``anonymous-object4-0``, :func:`is_anonymous_worker`) are
        left out: each is one answer of one object of this job, fitted on that image alone,
        and in another job the same name is whoever answered its object 4 without an id. They
        count in the fit (the crowd's figures, the other workers' evidence) and in this
        run's consolidation, which uses the model in memory.
        """
        return {
            "model": MODEL_NAME,
            "objects": self.objects,
            "places": self.places,
            "crowd": _skill_json(self.crowd),
            "workers": {
                w: _skill_json(s)
                for w, s in sorted(self.workers.items())
                if not is_anonymous_worker(w)
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerModel:
        """Read back :meth:`to_json`'s dict.

        A worker named as an answer without a worker id (``anonymous-object4-0``, which
        :meth:`to_json` never writes; a table from an older version or edited by hand) is
        left out: such a name is one object of the job it came from, so a loaded model
        never matches it, and that answer takes the crowd's skills.

        Raises:
            ConsolidationError: the dict is not a worker model, or a figure is out of range.
        """
        try:
            if data.get("model") != MODEL_NAME:
                raise ValueError(f"not a worker model: model = {data.get('model')!r}")
            objects, places = float(data["objects"]), float(data["places"])
            if not (objects > 0 and places >= 1 and math.isfinite(objects * places)):
                raise ValueError(f"objects must be > 0 and places >= 1, got {objects}, {places}")
            if not objects / places > 0:  # the prior's log-odds: log(objects / places)
                raise ValueError(f"objects / places underflows: {objects} / {places}")
            crowd = _skill_from(data["crowd"])
            workers = {
                str(w): _skill_from(s)
                for w, s in dict(data["workers"]).items()
                if not is_anonymous_worker(str(w))
            }
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            # OverflowError: an integer of hundreds of digits, which float() cannot hold
            raise ConsolidationError(f"bad worker model: {exc}") from exc
        model = cls(workers, crowd, objects, places)
        model._check_usable()
        return model

    def _check_usable(self) -> None:
        """Every figure consolidation computes from the table is a finite number.

        Each value can be in range while what is made of it is not (a box noise of 1e-200
        has no finite weight, ``objects / places`` can underflow to a log of 0): such a table
        must fail where it is read, never on every image after.

        Raises:
            ConsolidationError: naming the first worker whose figures are not finite.
        """
        names = [*self.workers, ""]  # "": a worker the table does not know (the crowd)
        if self._finite(names):  # all at once; one by one only to name the culprit
            return
        name = next((n for n in names if not self._finite([n])), "")
        who = f"worker {name!r}" if name else "the crowd"
        raise ConsolidationError(
            f"bad worker model: the figures of {who} give no finite weight or log-odds"
        )

    def _finite(self, names: Sequence[str]) -> bool:
        """Whether the evidence for an image ``names`` answered is finite throughout."""
        try:
            with np.errstate(all="ignore"):
                e = self.evidence(names)
        except (ArithmeticError, ValueError):  # a log of 0, 1 / 0.0 in plain floats
            return False
        arrays = (e.drawn, e.weights, e.bias)
        return math.isfinite(e.silent) and all(bool(np.isfinite(a).all()) for a in arrays)


MODEL_NAME = "gt-toolkit-worker-model-1"


def _scaled(weights: FloatArray) -> FloatArray:
    """One image's fusion weights over a power of two that puts the largest in [0.5, 1).

    Only their ratios count (rule 8, as the engine's own ``weights``), and a power of two
    changes no ratio, no sum and no fused edge by a bit, once a weight under
    :data:`~gt_toolkit.consolidation.votes.LEAST_WEIGHT` of the largest counts as 0, as
    given weights do (scaled into the subnormals it lost bits and moved a fused edge).
    Unscaled, five workers of box noise 1.2e-154 (each weight finite, so the table was
    read) summed to an overflow and failed every image they answered together with an
    OverflowError; a weight of 1e200 times an edge of 1e150 overflowed in the fusion.
    Non-finite weights stay as they are (:meth:`WorkerModel._check_usable` refuses them).
    """
    top = float(weights.max(initial=0.0))
    if not (math.isfinite(top) and top > 0):
        return weights
    scaled: FloatArray = np.ldexp(weights, -math.frexp(top)[1])
    scaled[weights / top < LEAST_WEIGHT] = 0.0  # the engine's cut, to the bit
    return scaled


def _log_odds_terms(
    miss: FloatArray, false: FloatArray, places: float
) -> tuple[FloatArray, FloatArray]:
    """Per worker: what a box of theirs adds to a candidate's log-odds, and their silence.

    A real object drawn by the workers ``S`` of the image's answerers ``A`` is expected
    ``objects x prod_S (1 - miss) x prod_(A - S) miss`` times per image; false boxes of
    ``S`` falling on one place ``places x prod_S (false / places)`` times.
    """
    silent = np.log(miss)
    drawn = math.log(places) + np.log((1.0 - miss) / false) - silent
    return drawn, silent


def _skill_json(s: WorkerSkill) -> dict[str, Any]:
    return {
        "miss_rate": s.miss_rate,
        "false_boxes": s.false_boxes,
        "box_noise": s.box_noise,
        "images": s.images,
        "boxes": s.boxes,
        "false_share": s.false_share,
        "box_bias": dict(zip(_EDGES, s.box_bias, strict=True)),
    }


def _skill_from(raw: Mapping[str, Any]) -> WorkerSkill:
    miss, false, noise = (float(raw[k]) for k in ("miss_rate", "false_boxes", "box_noise"))
    if not (0.0 < miss < 1.0 and 0.0 < false < math.inf and 0.0 < noise < math.inf):
        raise ValueError(
            "miss_rate must be in (0, 1), false_boxes and box_noise finite and > 0, "
            f"got {dict(raw)}"
        )
    bias = dict(raw.get("box_bias", {}))  # a hand-written table may leave it out: no bias
    left, top, right, bottom = (float(bias.get(e, 0.0)) for e in _EDGES)
    if not all(abs(b) <= MAX_BIAS for b in (left, top, right, bottom)):
        raise ValueError(f"box_bias must be within +-{MAX_BIAS}, got {bias}")
    share = float(raw.get("false_share", 0.0))
    if not 0.0 <= share <= 1.0:  # NaN too
        raise ValueError(f"false_share must be in [0, 1], got {raw.get('false_share')!r}")
    return WorkerSkill(
        miss,
        false,
        noise,
        _count(raw, "images"),
        _count(raw, "boxes"),
        share,
        (left, top, right, bottom),
    )


def _count(raw: Mapping[str, Any], key: str) -> int:
    """A count of the table (``images``, ``boxes``): a whole number >= 0, 0 when left out.

    ``1e400`` reads as infinity, which ``int()`` refused with an OverflowError (a traceback
    where a bad table gets one error line).
    """
    value = raw.get(key, 0)
    if isinstance(value, float) and value.is_integer():  # 3.0; not inf or NaN
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a whole number >= 0, got {value!r}")
    return value


def read_worker_model(location: Location, *, store: S3Store | None = None) -> WorkerModel:
    """The worker table at a local path or ``s3://`` URI, as :meth:`WorkerModel.to_json` wrote it.

    Raises:
        ConsolidationError: the file is not JSON or not a worker model.
        StorageError: the file cannot be read.
    """
    raw = read_bytes(location, store=store)
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConsolidationError(f"{location}: bad worker model: not JSON ({exc})") from exc
    if not isinstance(data, Mapping):
        raise ConsolidationError(f"{location}: bad worker model: not a JSON object")
    return WorkerModel.from_json(data)


def fit_worker_model(
    images: Iterable[CrowdImage],
    *,
    settings: ConsolidationSettings = _DEFAULTS,
    labels: Sequence[str] | None = None,
    chunk_images: int = 20_000,
    max_rounds: int = 200,
) -> WorkerModel:
    """Fit every worker's skills over a job, reading ``images`` once (see the module docstring).

    Args:
        images: the job, one :class:`~gt_toolkit.formats.crowd.CrowdImage` per image; the
            annotators who drew nothing count (they are evidence of no object), an image
            nobody answered does not (it says nothing: counted as an image of no objects,
            it lowered ``objects``, the prior of every cluster under ``keep="model"``).
        settings: the engine settings the job will be consolidated with (clustering).
        labels: the job's label list (boxes with other labels are left out).
        chunk_images: images whose candidates are held at once.
        max_rounds: EM iterations per chunk at most (it stops when the posteriors settle).

    Raises:
        ConsolidationError: ``chunk_images`` or ``max_rounds`` below 1.
    """
    if chunk_images < 1 or max_rounds < 1:
        raise ConsolidationError("chunk_images and max_rounds must be >= 1")
    ids: dict[str, int] = {}
    sums = _Sums()
    chunk = _Chunk()
    for image in images:
        if not image.annotators:  # no evidence of anything: counted, it diluted `objects`
            continue
        chunk.add(image, ids, settings, labels)
        if chunk.images >= chunk_images:
            sums = sums.plus(_fit_chunk(chunk.arrays(), sums, len(ids), max_rounds))
            chunk = _Chunk()
    if chunk.images:
        sums = sums.plus(_fit_chunk(chunk.arrays(), sums, len(ids), max_rounds))
    return sums.model(ids)


@dataclass
class _Chunk:
    """The candidates of a run of images, as flat lists (arrays at fit time)."""

    images: int = 0
    seen_image: list[int] = field(default_factory=list)  # per (image, answering worker)
    seen_worker: list[int] = field(default_factory=list)
    item_image: list[int] = field(default_factory=list)  # per candidate
    item_majority: list[bool] = field(default_factory=list)
    member_item: list[int] = field(default_factory=list)  # per member box
    member_worker: list[int] = field(default_factory=list)
    member_offset: list[float] = field(default_factory=list)  # 4 per member: edge offsets
    place_log: float = 0.0  # sum of log(image area / box area) over boxes in sized images
    place_n: int = 0

    def add(
        self,
        image: CrowdImage,
        ids: dict[str, int],
        settings: ConsolidationSettings,
        labels: Sequence[str] | None,
    ) -> None:
        """Cluster one image as the engine does and keep its candidates."""
        index = self.images
        self.images += 1
        n = len(image.boxes)
        workers = [ids.setdefault(a, len(ids)) for a in image.annotators]
        self.seen_image.extend([index] * n)
        self.seen_worker.extend(workers)
        if n == 0:
            return
        clean, _ = clean_boxes(image.boxes, labels, image.image_size, [1.0] * n, settings)
        if not len(clean):
            return
        clusters = cluster_boxes(clean, settings.iou_threshold)
        repeats = find_repeats(clean, clusters, settings.iou_threshold, n)
        member = np.ones(len(clean), dtype=bool)
        member[list(repeats)] = False
        base = len(self.item_image)
        self.item_image.extend([index] * clusters.count)
        self.item_majority.extend((clusters.size >= n // 2 + 1).tolist())
        self.member_item.extend((base + clusters.of[member]).tolist())
        self.member_worker.extend(np.asarray(workers)[clean.worker[member]].tolist())
        offset = _to_others(clean.xyxy, clusters.of, clusters.size)
        self.member_offset.extend(offset[:, member].T.ravel().tolist())
        if image.image_size is not None:
            x1, y1, x2, y2 = clean.xyxy
            area = (x2 - x1) * (y2 - y1)
            width, height = float(image.image_size["width"]), float(image.image_size["height"])
            with np.errstate(over="ignore"):
                ratio = (width * height) / area
            if np.isfinite(ratio).all():
                self.place_log += float(np.log(ratio).sum())
            else:  # a 1e155-pixel frame's area overflows: log(inf) made the model fail
                logs = math.log(width) + math.log(height) - np.log(area)
                self.place_log += float(logs.sum())
            self.place_n += len(area)

    def arrays(self) -> _ChunkArrays:
        def ints(v: list[int]) -> IntArray:
            return np.asarray(v, dtype=np.intp)

        return _ChunkArrays(
            self.images,
            ints(self.seen_image),
            ints(self.seen_worker),
            ints(self.item_image),
            np.asarray(self.item_majority, dtype=np.float64),
            ints(self.member_item),
            ints(self.member_worker),
            np.asarray(self.member_offset, dtype=np.float64).reshape(-1, 4),
            self.place_log,
            self.place_n,
        )


def _to_others(xyxy: FloatArray, of: IntArray, size: IntArray) -> FloatArray:
    """Per box, each edge's offset (``(4, n)``) from the mean box of its cluster's others.

    NaN for a box alone in its cluster. Offsets are in that mean box's width or height:
    the worker's own box is noisier, and dividing by it would make everyone look tight (a
    loose box divides its offset by more).
    """
    count = len(size)
    others = np.maximum(size[of] - 1, 1).astype(np.float64)
    ref = (row_sums(of, xyxy, count)[:, of] - xyxy) / others
    w, h = ref[2] - ref[0], ref[3] - ref[1]
    with np.errstate(divide="ignore", invalid="ignore"):  # alone: no reference box
        offset: FloatArray = (xyxy - ref) / np.vstack((w, h, w, h))
    offset[:, size[of] < 2] = np.nan
    return offset


@dataclass(frozen=True)
class _ChunkArrays:
    images: int
    seen_image: IntArray
    seen_worker: IntArray
    item_image: IntArray
    majority: FloatArray
    member_item: IntArray
    member_worker: IntArray
    member_offset: FloatArray  # (members, 4)
    place_log: float
    place_n: int


class _Rates(NamedTuple):
    """The model's parameters at one EM step (per-worker arrays, then crowd figures)."""

    miss: FloatArray
    false: FloatArray
    noise: FloatArray
    objects: float
    places: float
    crowd: WorkerSkill


_BIAS = tuple(f"bias_{e}" for e in _EDGES)
_COUNTS = ("images", "real_seen", "real_drawn", "fake_drawn", "noise_n", "boxes")
_SPREAD = tuple(f"spread_{e}" for e in _EDGES)
_PER_WORKER = (*_COUNTS, *_BIAS, *_SPREAD)


@dataclass
class _Sums:
    """Expected counts (the model's sufficient statistics), summed over chunks.

    Per worker: ``images`` answered; ``real_seen``, the expected real objects on them;
    ``real_drawn`` / ``fake_drawn``, their boxes on real objects and false ones;
    ``boxes``; ``bias_<edge>`` and ``spread_<edge>``, the posterior-weighted sums of
    their edge offsets and of their squares, and ``noise_n``, the weights (boxes that had
    others to be measured against). Box noise and bias follow from these at the end, exactly
    however the job was cut into chunks.
    Over the job: ``real`` objects, ``images``, and the box-area sums behind ``places``.
    """

    per_worker: dict[str, FloatArray] = field(
        default_factory=lambda: {k: np.zeros(0) for k in _PER_WORKER}
    )
    real: float = 0.0
    images: int = 0
    place_log: float = 0.0
    place_n: int = 0

    def plus(self, other: _Sums) -> _Sums:
        """Both sums together (workers added since are padded with zeros)."""
        n = max(len(other.per_worker["images"]), len(self.per_worker["images"]))

        def padded(v: FloatArray) -> FloatArray:
            return np.concatenate([v, np.zeros(n - len(v))])

        return _Sums(
            {k: padded(self.per_worker[k]) + padded(other.per_worker[k]) for k in _PER_WORKER},
            self.real + other.real,
            self.images + other.images,
            self.place_log + other.place_log,
            self.place_n + other.place_n,
        )

    def rates(self) -> _Rates:
        """The parameters these counts give, each worker's shrunk towards the crowd's."""
        k, w = PRIOR_STRENGTH, self.per_worker
        crowd_miss, crowd_false, crowd_noise = _DEFAULT_SKILL
        if w["real_seen"].sum() > 0:
            crowd_miss = float(1.0 - w["real_drawn"].sum() / w["real_seen"].sum())
        if w["images"].sum() > 0:
            crowd_false = float(w["fake_drawn"].sum() / w["images"].sum())
        measured = w["noise_n"]
        if measured.sum() > 0:  # bias left in: a worker the model never saw keeps theirs
            crowd_noise = math.sqrt(float(sum(w[e].sum() for e in _SPREAD) / 4 / measured.sum()))
        crowd_miss = min(max(crowd_miss, _RATE_FLOOR), 1.0 - _RATE_FLOOR)
        crowd_false = max(crowd_false, _RATE_FLOOR)
        crowd_noise = max(crowd_noise, _NOISE_FLOOR)
        miss = (w["real_seen"] - w["real_drawn"] + k * crowd_miss) / (w["real_seen"] + k)
        false = (w["fake_drawn"] + k * crowd_false) / (w["images"] + k)
        noise = np.sqrt((self._steadiness() + k * crowd_noise**2) / (measured + k))
        objects = max(self.real / self.images, _RATE_FLOOR) if self.images else 1.0
        typical = min(self.place_log / self.place_n, _MOST_PLACES_LOG) if self.place_n else None
        places = _DEFAULT_PLACES if typical is None else math.exp(typical)
        return _Rates(
            np.clip(miss, _RATE_FLOOR, 1.0 - _RATE_FLOOR),
            np.maximum(false, _RATE_FLOOR),
            np.maximum(noise, _NOISE_FLOOR),
            objects,
            max(places, 1.0),
            WorkerSkill(crowd_miss, crowd_false, crowd_noise),
        )

    def _steadiness(self) -> FloatArray:
        """Per worker, the summed squared edge offsets around their bias, mean of 4 edges.

        ``sum p (o - b)**2 = spread - 2 b sum(p o) + b**2 sum(p)`` per edge, with the bias
        ``b`` fusion takes out: what is left is the noise fusion sees.
        """
        w, b = self.per_worker, self.bias()
        offsets = np.vstack([w[key] for key in _BIAS])
        squares = np.vstack([w[key] for key in _SPREAD])
        left = squares - 2.0 * b * offsets + b * b * w["noise_n"]
        return np.asarray(np.maximum(left, 0.0).sum(axis=0) / 4.0, dtype=np.float64)

    def bias(self) -> FloatArray:
        """Each worker's edge bias ``(4, workers)``, shrunk towards none (the crowd's)."""
        w = self.per_worker
        bias = np.vstack([w[key] for key in _BIAS]) / (w["noise_n"] + PRIOR_STRENGTH)
        return np.clip(bias, -MAX_BIAS, MAX_BIAS)

    def model(self, ids: Mapping[str, int]) -> WorkerModel:
        sums = self.plus(_Sums({k: np.zeros(len(ids)) for k in _PER_WORKER}))
        r, w = sums.rates(), sums.per_worker
        drawn = w["real_drawn"] + w["fake_drawn"]
        share = np.divide(w["fake_drawn"], drawn, out=np.zeros(len(drawn)), where=drawn > 0)
        bias = sums.bias()
        workers = {
            worker: WorkerSkill(
                float(r.miss[i]),
                float(r.false[i]),
                float(r.noise[i]),
                round(float(w["images"][i])),
                round(float(w["boxes"][i])),
                float(share[i]),
                (float(bias[0, i]), float(bias[1, i]), float(bias[2, i]), float(bias[3, i])),
            )
            for worker, i in ids.items()
        }
        return WorkerModel(workers, r.crowd, r.objects, r.places)


def _fit_chunk(chunk: _ChunkArrays, before: _Sums, workers: int, max_rounds: int) -> _Sums:
    """EM over one chunk's candidates, the earlier chunks' sums acting as prior evidence."""
    p = chunk.majority
    for _ in range(max_rounds):
        new_p = _posteriors(chunk, before.plus(_expected_counts(chunk, p, workers)).rates())
        settled = len(p) == 0 or float(np.max(np.abs(new_p - p))) < 1e-6
        p = new_p
        if settled:
            break
    return _expected_counts(chunk, p, workers)


def _posteriors(chunk: _ChunkArrays, rates: _Rates) -> FloatArray:
    """E-step: each candidate's probability of being a real object."""
    drawn, silent = _log_odds_terms(rates.miss, rates.false, rates.places)
    per_image = np.bincount(
        chunk.seen_image, weights=silent[chunk.seen_worker], minlength=chunk.images
    )
    items = len(chunk.item_image)
    log_odds = math.log(rates.objects / rates.places) + per_image[chunk.item_image]
    log_odds += np.bincount(chunk.member_item, weights=drawn[chunk.member_worker], minlength=items)
    p: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * log_odds))
    return p


def _expected_counts(chunk: _ChunkArrays, p: FloatArray, workers: int) -> _Sums:
    """M-step input: every worker's expected counts under the posteriors ``p``."""
    real_per_image = np.asarray(
        np.bincount(chunk.item_image, weights=p, minlength=chunk.images), np.float64
    )
    pm = p[chunk.member_item]
    measured = ~np.isnan(chunk.member_offset[:, 0])  # NaN: alone in its cluster
    who = chunk.member_worker[measured]

    def per_worker(index: IntArray, weights: FloatArray) -> FloatArray:
        return np.asarray(np.bincount(index, weights=weights, minlength=workers), np.float64)

    counts = {
        "images": per_worker(chunk.seen_worker, np.ones(len(chunk.seen_worker))),
        "real_seen": per_worker(chunk.seen_worker, real_per_image[chunk.seen_image]),
        "real_drawn": per_worker(chunk.member_worker, pm),
        "fake_drawn": per_worker(chunk.member_worker, 1.0 - pm),
        "noise_n": per_worker(who, pm[measured]),
        "boxes": per_worker(chunk.member_worker, np.ones(len(chunk.member_worker))),
    }
    offset = chunk.member_offset[measured]
    weighted = offset * pm[measured, None]
    for edge in range(4):
        counts[_BIAS[edge]] = per_worker(who, weighted[:, edge])
        counts[_SPREAD[edge]] = per_worker(who, weighted[:, edge] * offset[:, edge])
    return _Sums(counts, float(p.sum()), chunk.images, chunk.place_log, chunk.place_n)
