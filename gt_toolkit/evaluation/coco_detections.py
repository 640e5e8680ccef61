"""A COCO detection file as one side of an evaluation (consolidated COCO, a COCO dataset).

``gt-convert consolidate --output-format coco`` writes COCO whose annotations carry
``score``; :func:`~gt_toolkit.evaluation.metrics.read_detection_set` reads such files, and
COCO datasets, with :func:`read_coco_detections`. Images are keyed by their ``source_ref``
when they have one (so they meet an output manifest's ``source-ref``), else by
``file_name``; labels are category names; a box without ``score`` scores 1.0 (a COCO
dataset's boxes are certain). An image marked ``failure_reason`` is skipped and listed, like
a failed object of an output manifest. ``iscrowd`` and ``area`` are kept on each box
(:class:`~gt_toolkit.formats.detection_label.ScoredBox` ``crowd`` and ``area``; an absent
``area`` is ``width * height``) for evaluation to use as COCOeval does.
An image id or category id listed twice, a category without a name, a
``bbox``, ``score`` or ``area`` that is not finite numbers (or a box of negative size or
area), and an ``iscrowd`` other than 0 or 1 stop the read, each named by its position:
pycocotools would keep the last of two ids silently and so move boxes to another image or
class.

Two categories of one name (a Roboflow export's unused category 0 named like category 1)
are two classes to pycocotools, which scores by category id. Where both sides of an
evaluation are COCO (a results list and its COCO file, or two COCO files), boxes are
matched by category id too (``by_id``): a name that several ids share becomes
``name (id N)`` on both sides, the other names stay as they are (so two files that number
one name differently still meet by it). Where the other side is a manifest, which has only
names, such a name stops the read: the two categories would be one class.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import math
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.coco_ids import coco_id
from gt_toolkit.formats.detection_label import ScoredBox
from gt_toolkit.storage.files import Location, iter_chunks, read_bytes
from gt_toolkit.storage.s3 import S3Store

__all__ = [
    "CocoDetections",
    "category_labels",
    "is_coco_file",
    "is_results_list",
    "read_coco_detections",
    "read_coco_results",
]


@dataclass(slots=True)
class CocoDetections:
    """Boxes per image key, and what was skipped and why."""

    boxes: dict[str, list[ScoredBox]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    # the image keys in COCOeval's order: by image id (sorted(getImgIds())), else file order
    image_order: list[str] = field(default_factory=list)


def is_coco_file(location: Location, *, store: S3Store | None = None) -> bool:
    """Whether the file is one COCO JSON object rather than JSON Lines.

    A manifest's first line is a whole JSON object with a ``source-ref`` (or ``source``); a
    COCO file's first line is either the whole file (an object with ``images``, and
    ``annotations`` unless it is an image-info file such as COCO's test-dev) or the start of one.
    """
    head = next(iter_chunks(location, store=store), b"").removeprefix(codecs.BOM_UTF8)
    first = head.split(b"\n", 1)[0].strip()
    if not first.startswith(b"{"):
        return False
    try:
        line = orjson.loads(first)
    except orjson.JSONDecodeError:  # an indented file; a manifest line is whole
        return any(f'"{k}"'.encode() in head for k in ("images", "annotations", "categories"))
    return (
        isinstance(line, Mapping)
        and "images" in line
        and not ("source-ref" in line or "source" in line)
    )


def is_results_list(location: Location, *, store: S3Store | None = None) -> bool:
    """Whether the file is one JSON array: a COCO results list, which has no image names.

    Its ``image_id`` and ``category_id`` mean something only with the COCO file they refer
    to, so readers name the conversion instead of failing on every line.
    """
    head = next(iter_chunks(location, store=store), b"").removeprefix(codecs.BOM_UTF8)
    return head.lstrip().startswith(b"[")


def read_coco_detections(
    location: Location,
    *,
    store: S3Store | None = None,
    by_id: bool = False,
    partner: Location | None = None,
) -> CocoDetections:
    """Per-image boxes of a COCO detection file (rules in the module docstring).

    ``by_id``: the other side of the evaluation is COCO too, so boxes are matched by
    category id and a name several ids share is no error (:func:`category_labels`);
    ``partner`` is that other side when it is a COCO file, whose names count as well.

    Raises:
        ValidationError: not a COCO object, or entries that cannot be read, each named by
            its position (``images[3]``, ``annotations[17]``).
    """
    name = os.fspath(location)
    doc = _load_coco(location, store)
    problems: list[str] = []
    found, categories, keys = _frame(name, doc, problems, by_id=by_id)
    if by_id:
        others = [_partner_categories(partner, store)] if partner is not None else []
        categories = category_labels(categories, *others)
    annotations = _list(name, doc, "annotations", problems)
    _add_boxes(f"{name}: annotations", annotations, keys, categories, found, problems)
    if problems:
        raise ValidationError(problems, what=name)
    return found


def read_coco_results(
    location: Location, reference: Location, *, store: S3Store | None = None
) -> CocoDetections:
    """A COCO results list's boxes per image key, its ids resolved in the COCO file ``reference``.

    The ``COCO.loadRes`` workflow: each result names an image and a category of the
    reference by id, which gives the image its key (as :func:`read_coco_detections` keys
    the reference itself) and the box its label (by id: a name several categories share
    is told apart, :func:`category_labels`). Every image of the reference is present,
    with no boxes when no result names it. As ``loadRes`` does, a result's ``iscrowd`` and
    ``area`` are not read, and each result needs a ``score`` (a default would rank every
    box alike).

    Raises:
        ValidationError: the reference is not a COCO file, the results are not a list, or
            results that cannot be read (an unknown image or category id, a bad ``bbox`` or
            ``score``), each named by its position (``results.json: [17]``).
    """
    name, ref_name = os.fspath(location), os.fspath(reference)
    doc = _load_coco(reference, store)
    results = _load(location, store)
    if not isinstance(results, list):
        raise ValidationError([f"{name}: not a COCO results list (one JSON array)"], what=name)
    problems: list[str] = []
    found, categories, keys = _frame(ref_name, doc, problems, by_id=True)
    categories = category_labels(categories)
    scored: list[Any] = []
    for n, result in enumerate(results):
        if isinstance(result, Mapping) and "score" in result:
            scored.append({k: v for k, v in result.items() if k not in ("iscrowd", "area")})
        else:
            problems.append(f"{name}: [{n}]: needs image_id, category_id, bbox and score")
            scored.append(None)
    _add_boxes(f"{name}: ", scored, keys, categories, found, problems)
    if problems:
        raise ValidationError(problems, what=name)
    return found


def _load_coco(location: Location, store: S3Store | None) -> Mapping[str, Any]:
    """The COCO file's document: a JSON object with an ``images`` list."""
    doc = _load(location, store)
    if not isinstance(doc, Mapping) or not isinstance(doc.get("images"), list):
        name = os.fspath(location)
        raise ValidationError([f"{name}: not a COCO file (no 'images' list)"], what=name)
    return doc


_ID_KEYS = ("id", "image_id", "category_id")
_EXACT = 2.0**63  # orjson reads integers within 64 bits exactly, and the rest as floats


def _load(location: Location, store: S3Store | None) -> Any:
    """The whole JSON document (a BOM skipped), its ids exact.

    orjson reads it. It reads an integer past 64 bits as the nearest float, so ids
    2**64 + 1 and 2**64 + 2 became one ("listed twice"), and one past the float range
    failed the file: then (rare) the standard library reads it again, exact.
    """
    name = os.fspath(location)
    data = read_bytes(location, store=store).removeprefix(codecs.BOM_UTF8)
    failed: ValueError | None = None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if not str(exc).startswith("number"):  # the standard library is laxer: a lone
            raise ValidationError([f"{name}: not JSON: {exc}"], what=name) from exc  # surrogate
        failed = exc  # past the float range: only the standard library reads it
    else:
        if _ids_exact(doc):
            return doc
        del doc  # not both copies at once
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        # an integer past Python's 4,300 digits, or nested past its recursion limit, is JSON
        exact = isinstance(exc, RecursionError) or "limit" in str(exc)
        problem = f"cannot read it exactly: {exc}" if exact else f"not JSON: {failed or exc}"
        raise ValidationError([f"{name}: {problem}"], what=name) from exc


def _ids_exact(doc: Any) -> bool:
    """Whether no id of a COCO file or results list became a float past 64 bits."""
    lists = list(doc.values()) if isinstance(doc, dict) else [doc]
    return not any(
        type(value := item.get(key)) is float and abs(value) >= _EXACT
        for entries in lists
        if isinstance(entries, list)
        for item in entries
        if isinstance(item, dict)
        for key in _ID_KEYS
    )


def _no_constant(text: str) -> None:
    """Refuse ``NaN`` and ``Infinity``, which the standard library reads and JSON has not."""
    raise ValueError(f"{text} is not JSON")


def _frame(
    name: str, doc: Mapping[str, Any], problems: list[str], *, by_id: bool = False
) -> tuple[CocoDetections, dict[str, str], dict[str, str | None]]:
    """A COCO file's images (one empty box list each) and its category and image id maps."""
    found = CocoDetections()
    listed = _list(name, doc, "categories", problems)
    categories = _categories(name, listed, problems, by_id=by_id)
    return found, categories, _images(name, doc["images"], found, problems)


def category_labels(*tables: Mapping[str, str]) -> dict[str, str]:
    """The first table's category id to the label its boxes are scored under.

    A name that two ids carry in any one of ``tables`` (the file's own, then the other
    side's) is ``name (id N)``, so both sides label one id alike and two ids apart, as
    pycocotools scores them; every other name is itself (reports read as before). A label
    so made that another category already has as its name (``a (id 0)``) is told apart the
    same way again, until no two ids of a table share one.
    """
    labels = [dict(table) for table in tables]
    while True:
        shared = {
            label for table in labels for label, n in Counter(table.values()).items() if n > 1
        }
        if not shared:
            return labels[0] if labels else {}
        for table in labels:
            for cat_id, label in table.items():
                if label in shared:
                    table[cat_id] = f"{label} (id {cat_id})"


def _partner_categories(partner: Location, store: S3Store | None) -> dict[str, str]:
    """The other side's category table; its own defects are reported when it is read."""
    doc = _load(partner, store)
    listed = doc.get("categories") if isinstance(doc, Mapping) else None
    return _categories(
        os.fspath(partner), listed if isinstance(listed, list) else [], [], by_id=True
    )


def _add_boxes(
    where: str,
    items: list[Any],
    keys: Mapping[str, str | None],
    categories: Mapping[str, str],
    found: CocoDetections,
    problems: list[str],
) -> None:
    """Each item's box onto its image; ``None`` items (already reported) are passed over."""
    for n, ann in enumerate(items):
        if ann is None:
            continue
        at = f"{where}[{n}]"
        image_id = coco_id(_get(ann, "image_id"))
        key = keys.get(image_id) if image_id is not None else None
        if key is None:
            if image_id not in keys:
                problems.append(f"{at}: no image {_get(ann, 'image_id')!r}")
            continue  # a failed image's boxes
        box = _box(ann, categories)
        if isinstance(box, str):
            problems.append(f"{at}: {box}")
            continue
        found.boxes[key].append(box)


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else None


def _list(name: str, doc: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    """``doc[key]`` as a list (absent or ``null``: empty); anything else is a problem."""
    value = doc.get(key)
    if value is None or isinstance(value, list):
        return value or []
    problems.append(f"{name}: '{key}' must be a list, got {type(value).__name__}")
    return []


def _categories(
    name: str, categories: list[Any], problems: list[str], *, by_id: bool = False
) -> dict[str, str]:
    """Category id to name; an id listed twice or a category without a name is a problem.

    So is a name listed twice, unless boxes are matched by id (``by_id``).
    """
    names: dict[str, str] = {}
    first: dict[str, int] = {}
    named: dict[str, int] = {}  # name -> its first position
    for n, cat in enumerate(categories):
        cat_id, label = _get(cat, "id"), _get(cat, "name")
        cat_key = coco_id(cat_id)
        if cat_key is None or not isinstance(label, str) or not label:
            problems.append(
                f"{name}: categories[{n}]: needs an id (an integer or a string) and a name"
            )
        elif cat_key in first:
            problems.append(
                f"{name}: categories[{n}]: id {cat_id!r} is listed twice "
                f"(categories[{first[cat_key]}])"
            )
        elif label in named and not by_id:
            problems.append(
                f"{name}: categories[{n}]: name {label!r} is listed twice "
                f"(categories[{named[label]}]): boxes are scored by name, so the two "
                "categories would be one class (pycocotools scores two)"
            )
        else:
            first[cat_key] = n
            named.setdefault(label, n)
            names[cat_key] = label
    return names


def _images(
    name: str, images: list[Any], found: CocoDetections, problems: list[str]
) -> dict[str, str | None]:
    """Image id to key (``None`` for a failed image, whose boxes are not read)."""
    keys: dict[str, str | None] = {}
    first: dict[str, int] = {}
    seen: set[str] = set()  # the keys taken, failed images' too
    by_id: list[tuple[Any, str]] = []
    for n, image in enumerate(images):
        key = _get(image, "source_ref") or _get(image, "file_name")
        image_id = coco_id(_get(image, "id"))
        if not isinstance(key, str) or not key or image_id is None:
            problems.append(
                f"{name}: images[{n}]: needs an id (an integer or a string) and a file_name"
            )
            continue
        if image_id in first:
            problems.append(
                f"{name}: images[{n}]: id {image['id']!r} is listed twice "
                f"(images[{first[image_id]}])"
            )
            continue
        first[image_id] = n
        if key in seen:
            problems.append(f"{name}: images[{n}]: {key} is listed twice")
            continue
        seen.add(key)
        if _get(image, "failure_reason"):
            found.skipped.append(f"{name}: images[{n}]: {key}: {image['failure_reason']}")
            keys[image_id] = None
            continue
        keys[image_id] = key
        found.boxes[key] = []
        by_id.append((image["id"], key))
    with contextlib.suppress(TypeError):  # ids of several types (pycocotools cannot sort
        by_id = sorted(by_id, key=lambda pair: pair[0])  # them either): file order
    found.image_order = [key for _, key in by_id]
    return keys


def _box(ann: Mapping[str, Any], categories: Mapping[str, str]) -> ScoredBox | str:
    """The annotation's box, or why it is not one."""
    category_id = coco_id(ann.get("category_id"))
    label = categories.get(category_id) if category_id is not None else None
    if label is None:
        return f"unknown category_id {ann.get('category_id')!r:.40}"
    bbox, score = ann.get("bbox"), ann.get("score", 1.0)
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(map(_finite, [*bbox, score])):
        return (
            f"needs bbox [x, y, w, h] and score as finite numbers, got {bbox!r:.60}, {score!r:.20}"
        )
    x, y, w, h = (float(v) for v in bbox)
    if w < 0 or h < 0:
        return f"bbox {bbox!r:.60} has a negative width or height"
    crowd, area = ann.get("iscrowd", 0), ann.get("area")
    if crowd not in (0, 1):  # true and false compare equal to 1 and 0: fine too
        return f"iscrowd must be 0 or 1, got {crowd!r:.20}"
    if area is not None and not (_finite(area) and area >= 0):
        return f"area must be a finite number >= 0, got {area!r:.20}"
    return ScoredBox(
        label=label,
        left=x,
        top=y,
        width=w,
        height=h,
        score=float(score),
        crowd=bool(crowd),
        area=None if area is None else float(area),
    )


def _finite(value: object) -> bool:
    """A JSON number that is finite (a bool or a numeric string is not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
