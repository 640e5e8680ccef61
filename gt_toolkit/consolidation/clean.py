"""Phase 1 of the engine: read every worker's boxes, drop the bad ones, put the rest in order.

Rules 1 and 2 of ``docs/consolidation.md``: each box is checked
(vectorised), a bad one becomes a drop record and never fails the image, and the valid ones
are sorted into a canonical order that no permutation of workers or boxes can change. The
overlapping pairs and their IoU are found here once, for duplicates and clustering.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt

from gt_toolkit.consolidation.geometry import (
    FloatArray,
    clip_to,
    far_corner,
    image_extent,
    overlap_pairs,
    sorted_overlaps,
)
from gt_toolkit.consolidation.settings import ConsolidationSettings, DropReason
from gt_toolkit.errors import ConsolidationError
from gt_toolkit.types import ImageSize

__all__ = [
    "BoolArray",
    "CleanBoxes",
    "IntArray",
    "Pairs",
    "Together",
    "clean_boxes",
    "clean_together",
    "drop_record",
]

IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

_COORDS = ("left", "top", "width", "height")
_GET_XYWH = itemgetter(*_COORDS)
_GET_LABEL = itemgetter("label")


class Pairs(NamedTuple):
    """Pairs of boxes ``lo < hi`` (canonical indices) with their IoU."""

    lo: IntArray
    hi: IntArray
    iou: FloatArray


@dataclass(frozen=True, slots=True)
class CleanBoxes:
    """The valid boxes of an image in canonical order, as parallel arrays.

    Attributes:
        xyxy: the corners, one row each (``x1, y1, x2, y2`` by ``n`` boxes), clipped to
            the image when asked: per-box work runs on whole rows.
        code: label code per box, an index into ``labels``.
        worker, box: the box's worker and its index in that worker's answer (input order).
        labels: the label priority order: the job's label list first, then other names
            alphabetically. Label-vote ties go to the lower code.
        overlaps: every overlapping pair of boxes, with its IoU.
        own: per overlapping pair, whether both boxes are one worker's.
    """

    xyxy: FloatArray
    code: IntArray
    worker: IntArray
    box: IntArray
    labels: tuple[str, ...]
    overlaps: Pairs
    own: BoolArray

    def __len__(self) -> int:
        return len(self.code)


def drop_record(worker: int, box: int, reason: DropReason, detail: str) -> dict[str, Any]:
    """One entry of ``ImageConsolidation.dropped``."""
    return {"worker": worker, "box": box, "reason": reason.value, "detail": detail}


def clean_boxes(
    answers: Sequence[Sequence[Any]],
    labels: Sequence[str] | None,
    image_size: ImageSize | None,
    weights: Sequence[float],
    settings: ConsolidationSettings,
) -> tuple[CleanBoxes, list[dict[str, Any]]]:
    """Validate every box, order the valid ones canonically and drop one worker's repeats.

    Returns the boxes and one drop record per box left out.
    """
    xywh, names, worker_of, box_of, malformed = _gather(answers)
    listed = tuple(labels) if labels is not None else None
    far = far_corner(image_size) if image_size is not None else None
    valid = _validate(xywh, names, malformed, listed, far, settings.clip)
    xyxy = valid.xyxy
    dropped: list[dict[str, Any]] = []
    present = valid.present
    if np.count_nonzero(valid.ok) < len(names):  # a fifth of the cost of ``not ok.all()``
        dropped = _invalid_records(
            valid, xywh, names, malformed, worker_of, box_of, settings, image_size
        )
        keep = valid.ok.nonzero()[0]
        xyxy = xyxy.take(keep, axis=1)
        worker_of, box_of = worker_of[keep], box_of[keep]
        names = [names[g] for g in keep.tolist()]
        present = None
    if present is None:
        present = set(names)
    priority, code_of, alpha = _label_order(listed or (), frozenset(present))
    if len(names) > _FEW and len(priority) <= 256:
        code = _label_codes(code_of, names)
    else:
        code = np.fromiter(map(code_of.__getitem__, names), dtype=np.intp, count=len(names))
    order = _canonical_order(xyxy, code, alpha, worker_of, box_of, weights)
    xyxy = xyxy.take(order, axis=1)
    lo, hi, iou = overlap_pairs(xyxy, x_sorted=True, with_iou=True)
    worker_of = worker_of[order]
    clean = CleanBoxes(
        xyxy,
        code[order],
        worker_of,
        box_of[order],
        priority,
        Pairs(lo, hi, iou),
        worker_of[lo] == worker_of[hi],
    )
    return _drop_repeats(clean, settings.duplicate_iou, dropped), dropped


@dataclass(frozen=True, slots=True)
class Together:
    """Several images' clean boxes as one :class:`CleanBoxes`, image after image.

    Indices are global: worker ``first_worker[k] + w`` is answer ``w`` of the ``k``-th
    image (``members[k]`` of those given), whose boxes are ``bounds[k]:bounds[k + 1]``.
    Label codes follow one label order for all (the job's list, then the other names
    present in any image alphabetically): within an image it orders the labels as the
    image's own order would.
    """

    clean: CleanBoxes
    image: IntArray
    bounds: list[int]
    first_worker: list[int]
    dropped: list[list[dict[str, Any]]]
    members: list[int]  # the images given whose boxes these are (the others: alone)


def clean_together(
    images: Sequence[Sequence[Sequence[Any]]],
    labels: Sequence[str] | None,
    image_sizes: Sequence[ImageSize | None],
    weights: Sequence[Sequence[float]],
    settings: ConsolidationSettings,
) -> Together | None:
    """:func:`clean_boxes` of several images (each with an answer) in one pass, bit for bit.

    At a few hundred boxes an image, numpy's cost per call is most of this phase's time:
    here each step is one call for all images. An image with a box to drop or off the
    pixel grid is left out (cleaned alone); ``None`` where the pass does not apply (over
    256 labels, some images sized and some not, fewer than two images left, or no box in
    the images left). Records of dropped repeats give each image's own worker indices.
    """
    sized = {size is not None for size in image_sizes}
    if len(images) < 2 or len(sized) > 1:
        return None
    workers = [len(a) for a in images]
    xywh, names, worker_of, box_of, malformed = _gather(list(chain.from_iterable(images)))
    if not names:
        return None
    image = np.arange(len(images), dtype=np.intp).repeat(workers).take(worker_of)
    far = None
    if True in sized:
        sizes = cast("Sequence[ImageSize]", image_sizes)
        far = np.concatenate([far_corner(size) for size in sizes], axis=1).take(image, axis=1)
    listed = tuple(labels) if labels is not None else None
    valid = _validate(xywh, names, malformed, listed, far, settings.clip)
    xyxy, present = valid.xyxy, valid.present
    members = list(range(len(images)))
    # a box to drop, or one off the pixel grid (sorted by the one-image keys): alone
    with np.errstate(invalid="ignore"):  # NaN corners of invalid boxes
        fits = valid.ok & np.logical_and.reduce((xyxy >= 0) & (xyxy <= 65535), axis=0)
        fits &= np.logical_and.reduce(xyxy == np.floor(xyxy), axis=0)
    if np.count_nonzero(fits) < len(names):
        keep = np.ones(len(images), dtype=bool)
        keep[image.compress(~fits)] = False
        members = keep.nonzero()[0].tolist()
        if len(members) < 2:
            return None
        rows = keep.take(image).nonzero()[0]
        if not len(rows):  # the images left drew nothing: nothing to share
            return None
        xyxy, box_of = xyxy.take(rows, axis=1), box_of.take(rows)
        names = [names[g] for g in rows.tolist()]
        old_first = np.add.accumulate([0, *workers])
        workers = [workers[k] for k in members]
        shift = old_first.take(members) - np.add.accumulate([0, *workers[:-1]])
        image = (np.cumsum(keep) - 1).take(image.take(rows))
        worker_of = worker_of.take(rows) - shift.take(image)
        weights = [weights[k] for k in members]
        present = None
    geo = _pixel_key(xyxy)
    if present is None:
        present = set(names)
    priority, code_of, _ = _label_order(listed or (), frozenset(present))
    if geo is None or len(priority) > 256:  # (geo: never, every box fits)
        return None
    code = _label_codes(code_of, names)
    count = len(members)
    first_worker = np.add.accumulate([0, *workers]).tolist()
    bounds = np.searchsorted(image, np.arange(count + 1)).tolist()
    order, tied = _batch_order(geo, image)
    for k in tied:  # equal boxes: the image's own label order, box index and worker rank
        a, b = bounds[k], bounds[k + 1]
        part = names[a:b]
        _, mine, alpha = _label_order(listed or (), frozenset(part))
        codes = np.fromiter(map(mine.__getitem__, part), dtype=np.intp, count=b - a)
        local = worker_of[a:b] - first_worker[k]
        at = _canonical_order(xyxy[:, a:b], codes, alpha, local, box_of[a:b], weights[k])
        order[a:b] = at + a
    xyxy = xyxy.take(order, axis=1)
    image, worker_of = image.take(order), worker_of.take(order)
    lo, hi, iou, bands = sorted_overlaps(xyxy, image, bounds)
    if bands:  # images of many overlapping boxes, cut into bands by the one-image search
        lo, hi, iou = _with_bands(xyxy, bounds, bands, lo, hi, iou)
    clean = CleanBoxes(
        xyxy,
        code.take(order),
        worker_of,
        box_of.take(order),
        priority,
        Pairs(lo, hi, iou),
        worker_of.take(lo) == worker_of.take(hi),
    )
    dropped: list[dict[str, Any]] = []
    clean = _drop_repeats(clean, settings.duplicate_iou, dropped)
    per_image: list[list[dict[str, Any]]] = [[] for _ in members]
    for record in dropped:
        k = int(np.searchsorted(first_worker, record["worker"], side="right")) - 1
        record["worker"] -= first_worker[k]
        per_image[k].append(record)
    if dropped:
        image = np.arange(count, dtype=np.intp).repeat(workers).take(clean.worker)
        bounds = np.searchsorted(image, np.arange(count + 1)).tolist()
    return Together(clean, image, bounds, first_worker, per_image, members)


def _with_bands(
    xyxy: FloatArray,
    bounds: list[int],
    bands: list[int],
    lo: IntArray,
    hi: IntArray,
    iou: FloatArray,
) -> tuple[IntArray, IntArray, FloatArray]:
    """The sweep's pairs with those of the ``bands`` images put in, image after image."""
    cuts = lo.searchsorted(bounds).tolist()
    parts: list[tuple[IntArray, IntArray, FloatArray]] = []
    done = 0
    for k in bands:
        a, b = bounds[k], bounds[k + 1]
        parts.append((lo[done : cuts[k]], hi[done : cuts[k]], iou[done : cuts[k]]))
        p_lo, p_hi, p_iou = overlap_pairs(xyxy[:, a:b], x_sorted=True, with_iou=True)
        parts.append((p_lo + a, p_hi + a, p_iou))
        done = cuts[k + 1]
    parts.append((lo[done:], hi[done:], iou[done:]))
    los, his, ious = zip(*parts, strict=True)
    return np.concatenate(los), np.concatenate(his), np.concatenate(ious)


def _batch_order(geo: npt.NDArray[np.uint64], image: IntArray) -> tuple[IntArray, list[int]]:
    """Several images' whole-pixel boxes (``geo``: :func:`_pixel_key`) by image, then geometry.

    Also returns the images where two boxes have one geometry: their order needs the label,
    box index and worker rank of :func:`_canonical_order`.
    """
    order = geo.argsort(kind="stable")
    by_image = image.take(order)
    if len(image) and int(image[-1]) < 65536:  # 16 bits: a radix sort
        by_image = by_image.astype(np.uint16)
    order = order.take(by_image.argsort(kind="stable"))
    sorted_geo, sorted_image = geo.take(order), image.take(order)
    tied = (sorted_geo[1:] == sorted_geo[:-1]) & (sorted_image[1:] == sorted_image[:-1])
    if not np.count_nonzero(tied):
        return order, []
    return order, np.unique(sorted_image[1:].compress(tied)).tolist()


def _label_codes(code_of: dict[str, int], names: list[Any]) -> IntArray:
    """The code of each of ``names`` (at most 256 codes), as ``intp``.

    One ``itemgetter`` call looks every name up in C, and ``bytes()`` packs the small ints:
    a third less than a ``map`` of ``code_of.__getitem__`` (1,400 boxes: about 60 -> 40 us).
    """
    # of one name, itemgetter gives the code itself, not a tuple (and bytes(3) is 3 zeros)
    codes = itemgetter(*names)(code_of) if len(names) > 1 else [code_of[x] for x in names]
    return np.frombuffer(bytes(codes), dtype=np.uint8).astype(np.intp)


@lru_cache(maxsize=256)
def _label_order(
    labels: tuple[str, ...], present: frozenset[str]
) -> tuple[tuple[str, ...], dict[str, int], IntArray]:
    """The label priority, each label's code (its place there) and each code's name rank.

    The priority is the job's label list first, then other names alphabetically. Cached
    (read the dict and array, never write them): a job has a handful of label sets.
    """
    listed = [x for x in dict.fromkeys(labels) if x in present]
    priority = (*listed, *sorted(present - set(listed)))
    code_of = {name: i for i, name in enumerate(priority)}
    alpha = np.empty(len(priority), dtype=np.intp)
    alpha[sorted(range(len(priority)), key=priority.__getitem__)] = np.arange(len(priority))
    alpha.setflags(write=False)
    return priority, code_of, alpha


def _gather_slow(boxes: Sequence[Any]) -> tuple[FloatArray, list[Any], dict[int, str]]:
    """Box-by-box reading for a worker whose answer has malformed entries."""
    rows: list[tuple[float, float, float, float]] = []
    names: list[Any] = []
    malformed: dict[int, str] = {}
    for b, raw in enumerate(boxes):
        if not isinstance(raw, Mapping):
            malformed[b] = f"not an object: {raw!r}"[:200]
            rows.append((math.nan,) * 4)
            names.append(None)
            continue
        try:
            left, top, width, height = (float(raw[k]) for k in _COORDS)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # 10**400: no float
            malformed[b] = f"bad coordinates: {exc}"[:200]
            rows.append((math.nan,) * 4)
            names.append(None)
            continue
        rows.append((left, top, width, height))
        names.append(raw.get("label"))
    return np.array(rows, dtype=np.float64).reshape(-1, 4), names, malformed


def _gather(
    answers: Sequence[Sequence[Any]],
) -> tuple[FloatArray, list[Any], IntArray, IntArray, dict[int, str]]:
    """Every worker's boxes as ``(4, M)`` rows ``x, y, w, h``, labels, worker, box index.

    Fast path: one ``itemgetter`` map over all boxes' coordinates into one array, then one
    over their labels (per-box Python work is the main cost at a few hundred boxes).
    Anything unusual (a missing key, a non-object box, a non-numeric coordinate) falls back
    to the worker-by-worker reading, which records malformed boxes by global position.
    """
    try:
        counts = [len(a) for a in answers]
    except TypeError:  # None, a number: not one worker's list of boxes
        raise ConsolidationError(_not_lists(answers)) from None
    flat = list(chain.from_iterable(answers))
    malformed: dict[int, str] = {}
    try:
        # one flat fromiter (no zip transposition, no shape discovery): 0.55 -> 0.42 ms at 1,500
        xy = np.fromiter(chain.from_iterable(map(_GET_XYWH, flat)), np.float64, 4 * len(flat))
        xywh = xy.reshape(-1, 4).T
        names = list(map(_GET_LABEL, flat))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError):
        if any(isinstance(a, str | bytes | Mapping) for a in answers):
            raise ConsolidationError(_not_lists(answers)) from None
        parts: list[FloatArray] = []
        names = []
        for boxes in answers:
            try:
                arr = np.array(
                    [(b["left"], b["top"], b["width"], b["height"]) for b in boxes],
                    dtype=np.float64,
                ).reshape(-1, 4)
                labs = [b.get("label") for b in boxes]
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
                arr, labs, bad = _gather_slow(boxes)
                malformed.update({len(names) + b: d for b, d in bad.items()})
            parts.append(arr)
            names.extend(labs)
        xywh = np.ascontiguousarray(np.concatenate(parts).T)
    # a few boxes: the same answer sizes come back image after image (7 numpy calls saved)
    positions = _positions if len(flat) <= 64 else _positions.__wrapped__
    worker, box = positions(tuple(counts))
    return xywh, names, worker, box, malformed


@lru_cache(maxsize=256)
def _positions(counts: tuple[int, ...]) -> tuple[IntArray, IntArray]:
    """Each box's worker and its index in that worker's answer. Cached: read only."""
    sizes = np.asarray(counts, dtype=np.intp)
    worker = np.arange(len(counts), dtype=np.intp).repeat(sizes)
    box = np.arange(len(worker), dtype=np.intp) - (sizes.cumsum() - sizes).repeat(sizes)
    worker.setflags(write=False)
    box.setflags(write=False)
    return worker, box


def _not_lists(answers: Sequence[Any]) -> str:
    """The error for answers that are not lists of boxes (a caller's mistake, not a worker's)."""
    bad = [
        f"answer {i} is {type(a).__name__}"
        for i, a in enumerate(answers)
        if not isinstance(a, Sequence) or isinstance(a, str | bytes)
    ]
    return f"each answer must be one worker's list of boxes: {', '.join(bad[:5])}"


class _Validity(NamedTuple):
    """Per-box checks of :func:`_validate`; ``None`` for a check that every box passes."""

    xyxy: FloatArray  # (4, n) corners, clipped when asked
    ok: BoolArray
    finite: BoolArray | None
    label_ok: BoolArray | None
    present: set[Any] | None  # the distinct labels, when they are hashable


# A corner beyond this (in size) is too large to measure: two boxes' areas could overflow
# to inf, and their IoU to NaN (identical huge boxes came out of three workers' answers as
# three "drawn by 1 of 3" records). Past ~1.7e153 no real image's pixels lie.
_MEASURABLE = 2.0**509
# Coordinates within this (in size) give corners within _MEASURABLE: no per-box check.
_SAFE = 2.0**500
# A side shorter than this (its corners' difference) is too small to measure: the areas of
# two such boxes underflow to 0, and their IoU to 0 / 0. Past it lie rounding and nothing.
_SMALLEST = 2.0**-500


def _validate(
    xywh: FloatArray,
    names: list[Any],
    malformed: dict[int, str],
    labels: tuple[str, ...] | None,
    far: FloatArray | None,
    clip: bool,
) -> _Validity:
    """Corners (clipped when asked) and which boxes pass every check, for all boxes at once.

    ``far``: the image's far corner (:func:`far_corner`), or one per box (several images);
    ``None`` for no image-border check.

    Sizes are checked on the corners (clipped), not on ``w`` and ``h``: a side lost in
    rounding (``1e6 + 1e-11``) or clipped away is no side (:func:`_spans`).
    """
    rows = xywh.copy()  # x1, y1, w, h; then x1, y1, x2, y2 in place
    label_ok, present = _label_ok(names, _usable(labels) if labels is not None else None)
    finite: BoolArray | None = None
    # every coordinate finite and far from overflow (NaN fails <=): no per-box finite
    # mask and no np.errstate, 4 us of 6 at a few boxes, 7 of 9 at 300
    if np.count_nonzero(np.abs(xywh) <= _SAFE) == 4 * len(names) > 0:
        rows[2:] += rows[:2]
    else:
        finite = np.logical_and.reduce(np.isfinite(rows), axis=0)
        with np.errstate(over="ignore", invalid="ignore"):  # huge or infinite edges: dropped
            rows[2:] += rows[:2]
    inside = None
    if far is not None and clip:
        clip_to(rows, far)
    elif far is not None:
        with np.errstate(invalid="ignore"):
            inside = (rows[0] >= 0) & (rows[1] >= 0) & (rows[2] <= far[2]) & (rows[3] <= far[3])
    if finite is None:
        ok = _spans(rows)
    else:
        with np.errstate(invalid="ignore"):  # inf - inf: such a box is dropped as non-finite
            ok = _spans(rows)
    if inside is not None:
        ok &= inside
    if finite is not None:  # corners after clipping: an image that large would keep them
        with np.errstate(invalid="ignore"):  # NaN corners fail the comparison
            finite &= np.logical_and.reduce(np.abs(rows) <= _MEASURABLE, axis=0)
        ok &= finite
    if label_ok is not None:
        ok &= label_ok
    if malformed:
        ok[list(malformed)] = False
    return _Validity(rows, ok, finite, label_ok, present)


def _spans(rows: FloatArray) -> BoolArray:
    """Per box of corner ``rows``, whether both its sides are at least :data:`_SMALLEST`."""
    # one subtraction and one comparison of both axes
    long_enough = rows[2:] - rows[:2] >= _SMALLEST
    spans: BoolArray = long_enough[0] & long_enough[1]
    return spans


@lru_cache(maxsize=256)
def _usable(labels: tuple[str, ...]) -> frozenset[str]:
    """The usable names of a label list (non-empty strings). Cached: a job has a few lists."""
    return frozenset(x for x in labels if isinstance(x, str) and x != "")


def _label_ok(
    names: list[Any], known: frozenset[str] | None
) -> tuple[BoolArray | None, set[Any] | None]:
    """Per-box "label is usable" mask, and the distinct labels when they are hashable.

    The mask is ``None`` when every label is usable (the common case). ``known``: the
    usable names of the label list (:func:`_usable`), or ``None`` for any label.
    """

    def ok(x: Any) -> bool:
        return isinstance(x, str) and x != "" and (known is None or x in known)

    try:
        distinct: set[Any] | None = set(names)
    except TypeError:  # an unhashable label: check box by box
        distinct = None
    if distinct is not None:
        if known is not None and distinct <= known:  # one C call, not a call of ok() per label
            return None, distinct
        if known is None and all(ok(x) for x in distinct):
            return None, distinct
    mask: BoolArray = np.fromiter(map(ok, names), dtype=np.bool_, count=len(names))
    return mask, distinct


def _invalid_records(
    valid: _Validity,
    xywh: FloatArray,
    names: list[Any],
    malformed: dict[int, str],
    worker_of: IntArray,
    box_of: IntArray,
    settings: ConsolidationSettings,
    image_size: ImageSize | None,
) -> list[dict[str, Any]]:
    """One drop record per invalid box, with the first check it fails.

    A box outside the image is that, though far out its width may also be lost in rounding.
    """
    out = []
    for g in (~valid.ok).nonzero()[0].tolist():
        wk, b, name = int(worker_of[g]), int(box_of[g]), names[g]
        if g in malformed:
            reason, detail = DropReason.MALFORMED, malformed[g]
        elif not isinstance(name, str) or not name:
            reason, detail = DropReason.MISSING_LABEL, f"label {name!r}"
        elif valid.label_ok is not None and not valid.label_ok[g]:
            reason, detail = DropReason.UNKNOWN_LABEL, f"label {name!r} not in the label list"
        elif valid.finite is not None and not valid.finite[g]:
            reason = DropReason.NON_FINITE
            detail = "NaN or infinite coordinate"
            if np.isfinite(xywh[:, g]).all():
                detail = f"a corner beyond +-{_MEASURABLE:.2g}: its area overflows a float"
        elif not (xywh[2, g] > 0 and xywh[3, g] > 0):
            reason, detail = DropReason.NON_POSITIVE_SIZE, f"size {xywh[2, g]:g} x {xywh[3, g]:g}"
        elif (image_size is None or _placed(xywh[:, g].tolist(), image_size, settings.clip)) and (
            not _spans(valid.xyxy[:, g : g + 1])[0]  # as the drop was decided
        ):
            x, y, w, h = xywh[:, g].tolist()
            reason = DropReason.NON_POSITIVE_SIZE
            detail = f"size {w:g} x {h:g} at ({x:g}, {y:g}): too small to measure there "
            detail += f"(its corners are under {_SMALLEST:.2g} apart as floats)"
        else:
            reason = DropReason.OUTSIDE_IMAGE
            detail = "entirely outside the image" if settings.clip else "crosses the image border"
        out.append(drop_record(wk, b, reason, detail))
    return out


def _placed(box: list[float], image_size: ImageSize, clip: bool) -> bool:
    """Whether a box (``x, y, w, h``) is on the image: any of it when clipping, else all."""
    x, y, w, h = box
    iw, ih = image_extent(image_size)
    if clip:
        return x < iw and y < ih and x + w > 0 and y + h > 0
    return x >= 0 and y >= 0 and x + w <= iw and y + h <= ih


def _canonical_order(
    xyxy: FloatArray,
    code: IntArray,
    alpha: IntArray,
    worker_of: IntArray,
    box_of: IntArray,
    weights: Sequence[float],
) -> IntArray:
    """The canonical order: by geometry and label name, then worker rank, then box index.

    The worker rank is computed from the worker's own boxes and weight (never from input
    position). It only matters between identical boxes of different workers, so it is
    computed only when there are such ties. ``alpha`` is each label code's name rank.
    """
    name_key = alpha[code]
    order, tied = _box_order(xyxy, name_key, box_of)
    if tied is not None:
        sorted_worker = worker_of[order]
        rank = _worker_rank(xyxy, name_key, order, sorted_worker, weights)
        # re-sort by run of equal boxes, then worker rank (one stable key, not 7 keys):
        # within a run and worker the box index order is already there
        run = np.empty(len(order), dtype=np.intp)
        run[0] = 0
        np.cumsum(~tied, out=run[1:])  # a third of the cost of concatenate
        within = run * len(weights) + rank[sorted_worker]
        if len(order) * len(weights) <= 65536:  # within < n * K: 16 bits, a radix sort
            within = within.astype(np.uint16)
        order = order[np.argsort(within, kind="stable")]
    return order


# Up to _FEW boxes the whole-pixel checks cost more than they save. From ~800 boxes on,
# six 16-bit radix passes (_sort_keys) beat one comparison sort of 64-bit keys (_pixel_key).
_FEW, _RADIX = 64, 512


def _box_order(
    xyxy: FloatArray, name_key: IntArray, box_of: IntArray
) -> tuple[IntArray, BoolArray | None]:
    """The order by left edge, top, right, bottom, label name, box index, and the ties.

    Returns the order and, per box after the first in it, whether its geometry and label
    equal the previous box's (``None`` when no two boxes are equal).
    """
    n = len(box_of)
    geo = _pixel_key(xyxy) if _FEW < n <= _RADIX else None
    if geo is not None:
        # one 64-bit key for the geometry, one pass (the 6-key lexsort costs 4x at 300
        # boxes); the label name and box index only order the boxes of one geometry
        order = geo.argsort(kind="stable")
        sorted_geo = geo.take(order)
        tied = sorted_geo[1:] == sorted_geo[:-1]
        if not np.count_nonzero(tied):
            return order, None
        at = np.flatnonzero(np.concatenate(([False], tied)) | np.concatenate((tied, [False])))
        shared = order.take(at)  # runs of one geometry, in order of geometry
        within = np.lexsort((box_of.take(shared), name_key.take(shared), sorted_geo.take(at)))
        order[at] = shared.take(within)
        sorted_name = name_key.take(order)
        tied &= sorted_name[1:] == sorted_name[:-1]
    else:
        keys = _sort_keys(xyxy, name_key, box_of)
        if n > _FEW:
            return _lead_first(keys)
        order = np.lexsort(keys)
        if n < 2:
            return order, None
        left = keys[-1].take(order)  # no two equal left edges, no tie: 3.9 -> 1.6 us
        if not np.count_nonzero(left[1:] == left[:-1]):
            return order, None
        same = keys[1:].take(order, axis=1)
        tied = np.logical_and.reduce(same[:, 1:] == same[:, :-1])  # with the box before
    return order, tied if np.count_nonzero(tied) else None


def _lead_first(keys: npt.NDArray[Any]) -> tuple[IntArray, BoolArray | None]:
    """``np.lexsort(keys)`` (:func:`_sort_keys`) and the ties, as :func:`_box_order` gives them.

    Two passes, by left edge and top, then all six keys only for the runs of boxes that
    share both (a few percent of them): the other keys order nothing else. At 1,400 boxes
    a quarter less than six passes and a tie test of every box (3 x 500: 100 -> 75 us).
    """
    order = np.lexsort(keys[4:])  # top, then left edge (the primary key)
    lead = keys[4:].take(order, axis=1)
    same = lead[:, 1:] == lead[:, :-1]
    first = same[0] & same[1]  # left edge and top equal the box before's
    if not np.count_nonzero(first):
        return order, None
    at = np.flatnonzero(np.concatenate(([False], first)) | np.concatenate((first, [False])))
    shared = order.take(at)  # the runs, each in input order (the sort is stable)
    order[at] = shared.take(np.lexsort(keys.take(shared, axis=1)))
    # ties only within the runs: the label name, bottom and right edge equal there too
    pos = first.nonzero()[0]
    rest = keys[1:4]
    before, after = rest.take(order.take(pos), axis=1), rest.take(order.take(pos + 1), axis=1)
    equal = np.logical_and.reduce(before == after)
    if not np.count_nonzero(equal):
        return order, None
    tied = np.zeros(len(order) - 1, dtype=bool)
    tied[pos] = equal
    return order, tied


def _sort_keys(xyxy: FloatArray, name_key: IntArray, box_of: IntArray) -> npt.NDArray[Any]:
    """The canonical sort keys, least significant first (for ``np.lexsort``).

    Primary the left edge, then top, right, bottom, label name, box index. Crowd answers
    are whole pixels: then, past ``_RADIX`` boxes, the keys are ``uint16`` and each of
    the six stable passes is a radix sort, about six times faster than sorting floats
    (whose comparison sort mispredicts on every fresh image). Other coordinates and
    fewer boxes (whole pixels there take :func:`_pixel_key`) keep ``float64`` keys.
    """
    keys = np.empty((6, len(box_of)))  # filled row by row: half the cost of np.array(tuple)
    keys[0], keys[1], keys[2:] = box_of, name_key, xyxy[::-1]  # xyxy reversed: y2, x2, y1, x1
    if len(box_of) <= _RADIX:
        return keys
    if keys.min() >= 0 and keys.max() <= 65535:  # else the cast is undefined
        pixels = keys.astype(np.uint16)
        if np.array_equal(pixels, keys):
            return pixels
    return keys


def _pixel_key(xyxy: FloatArray) -> npt.NDArray[np.uint64] | None:
    """Corners in whole pixels ``0..65535`` (crowd answers) as one ``uint64`` per box.

    ``x1, y1, x2, y2`` are its 16-bit digits, most significant first, so the keys sort
    like the corners. ``None`` for other coordinates.
    """
    if not (xyxy.min() >= 0 and xyxy.max() <= 65535):  # else the cast is undefined
        return None
    pixels = xyxy.astype("<u2")
    if np.count_nonzero(pixels != xyxy):
        return None
    # little-endian: the last of 4 digits in memory is the most significant
    key: npt.NDArray[np.uint64] = pixels[::-1].T.copy().view("<u8").ravel()
    return key


def _worker_rank(
    xyxy: FloatArray,
    name_key: IntArray,
    order: IntArray,
    sorted_worker: IntArray,
    weights: Sequence[float],
) -> IntArray:
    """A rank per worker from the bytes of their sorted boxes and weight (order-free).

    A worker's rows (corners and label name rank) are taken in canonical ``order``
    without the rank, so they are sorted by geometry and label name. All workers' rows
    are gathered worker after worker in one take (K compress calls cost 2-3x more).
    """
    rows = np.empty((len(order), 5))  # a box per row, filled column by column (no vstack)
    rows[:, :4] = xyxy.T
    rows[:, 4] = name_key
    # 16-bit workers: a radix sort (2,300 boxes: 31 -> 13 us)
    by = sorted_worker.astype(np.uint16) if len(weights) <= 65536 else sorted_worker
    by_worker = order[np.argsort(by, kind="stable")]
    data = rows.take(by_worker, axis=0).tobytes()  # rows, not columns: no transposed copy
    row = rows.itemsize * 5
    keys, start = [], 0
    for w, count in enumerate(np.bincount(sorted_worker, minlength=len(weights)).tolist()):
        keys.append(data[start : start + row * count] + np.float64(weights[w]).tobytes())
        start += row * count
    rank = np.empty(len(weights), dtype=np.intp)
    for place, w in enumerate(sorted(range(len(weights)), key=keys.__getitem__)):
        rank[w] = place  # K item writes: half the cost of one fancy write of an arange
    return rank


def _drop_repeats(
    clean: CleanBoxes, duplicate_iou: float, dropped: list[dict[str, Any]]
) -> CleanBoxes:
    """Remove later (canonical order) same-label boxes of one worker that repeat an earlier one.

    Appends a drop record per removed box to ``dropped``.
    """
    lo, hi, iou = clean.overlaps
    own, code, box, worker = clean.own, clean.code, clean.box, clean.worker
    if not np.count_nonzero(own):
        return clean
    # one nonzero for the test and the picks (a third of flatnonzero's cost); the label
    # test only on those few pairs: two gathers of every pair fewer (5 x 500: 129 -> 107 us)
    hits = ((iou >= duplicate_iou) & own).nonzero()[0]
    if not len(hits):
        return clean
    first, then = lo[hits], hi[hits]
    same = (code[first] == code[then]).tolist()
    removed: set[int] = set()
    found = zip(first.tolist(), then.tolist(), iou[hits].tolist(), same, strict=True)
    for i, j, v, one_label in sorted(found):
        if not one_label or i in removed or j in removed:
            continue
        removed.add(j)
        detail = f"repeats box {box.item(i)} of the same worker (IoU {v:.2f})"
        dropped.append(drop_record(worker.item(j), box.item(j), DropReason.DUPLICATE, detail))
    if not removed:
        return clean
    keep = np.ones(len(code), dtype=bool)
    keep[list(removed)] = False
    # on 1-D arrays of a few hundred, indexing beats compress 2x; take beats it on (4, n)
    kept = keep.nonzero()[0]
    new_index = np.zeros(len(code), dtype=np.intp)  # half the cost of cumsum(keep) - 1
    new_index[kept] = np.arange(len(kept))
    both = keep[lo] & keep[hi]
    return CleanBoxes(
        clean.xyxy.take(kept, axis=1),
        code[kept],
        worker[kept],
        box[kept],
        clean.labels,
        Pairs(new_index[lo[both]], new_index[hi[both]], iou[both]),
        own[both],
    )
