"""A COCO detection file as one side of an evaluation (consolidated COCO, a COCO dataset).

``gt-convert consolidate --output-format coco`` writes COCO whose annotations carry
``score``; :func:`~gt_toolkit.evaluation.metrics.read_detection_set` reads such files with
:func:`read_coco_detections` (plain tuples here, so this module needs nothing of metrics).
Images are keyed by their ``source_ref`` when they have one (so they meet an output
manifest's ``source-ref``), else by ``file_name``; labels are category names; a box without
``score`` scores 1.0 (a COCO dataset's boxes are certain). An image marked
``failure_reason`` is skipped and listed, like a failed object of an output manifest;
``iscrowd`` regions are skipped and listed too (this evaluation has no ignore regions).
An image id or category id listed twice, a category without a name, and a ``bbox`` or
``score`` that is not finite numbers (or a box of negative size) stop the read, each named by
its position: pycocotools would keep the last of two ids silently and so move boxes to
another image or class.
"""

from __future__ import annotations

import codecs
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gt_toolkit.errors import ValidationError
from gt_toolkit.storage.files import Location, iter_chunks, read_bytes
from gt_toolkit.storage.s3 import S3Store

__all__ = [
    "CocoBox",
    "CocoDetections",
    "is_coco_file",
    "is_results_list",
    "read_coco_detections",
]

CocoBox = tuple[str, float, float, float, float, float]
"""``(label, left, top, width, height, score)`` in pixels."""


@dataclass(slots=True)
class CocoDetections:
    """Boxes per image key, and what was skipped and why."""

    boxes: dict[str, list[CocoBox]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def is_coco_file(location: Location, *, store: S3Store | None = None) -> bool:
    """Whether the file is one COCO JSON object rather than JSON Lines.

    A manifest's first line is a whole JSON object with a ``source-ref``; a COCO file's first
    line is either the whole file (an object with ``images``) or the start of one.
    """
    head = next(iter_chunks(location, store=store), b"").removeprefix(codecs.BOM_UTF8)
    first = head.split(b"\n", 1)[0].strip()
    if not first.startswith(b"{"):
        return False
    try:
        line = orjson.loads(first)
    except orjson.JSONDecodeError:  # an indented file; a manifest line is whole
        return any(f'"{k}"'.encode() in head for k in ("images", "annotations", "categories"))
    return isinstance(line, Mapping) and "images" in line and "annotations" in line


def is_results_list(location: Location, *, store: S3Store | None = None) -> bool:
    """Whether the file is one JSON array: a COCO results list, which has no image names.

    Its ``image_id`` and ``category_id`` mean something only with the COCO file they refer
    to, so readers name the conversion instead of failing on every line.
    """
    head = next(iter_chunks(location, store=store), b"").removeprefix(codecs.BOM_UTF8)
    return head.lstrip().startswith(b"[")


def read_coco_detections(location: Location, *, store: S3Store | None = None) -> CocoDetections:
    """Per-image boxes of a COCO detection file (rules in the module docstring).

    Raises:
        ValidationError: not a COCO object, or entries that cannot be read, each named by
            its position (``images[3]``, ``annotations[17]``).
    """
    name = os.fspath(location)
    try:
        doc = orjson.loads(read_bytes(location, store=store).removeprefix(codecs.BOM_UTF8))
    except orjson.JSONDecodeError as exc:
        raise ValidationError([f"{name}: not JSON: {exc}"], what=name) from exc
    if not isinstance(doc, Mapping) or not isinstance(doc.get("images"), list):
        raise ValidationError([f"{name}: not a COCO file (no 'images' list)"], what=name)
    problems: list[str] = []
    found = CocoDetections()
    categories = _categories(name, _list(name, doc, "categories", problems), problems)
    keys = _images(name, doc["images"], found, problems)
    for n, ann in enumerate(_list(name, doc, "annotations", problems)):
        where = f"{name}: annotations[{n}]"
        key = keys.get(str(ann.get("image_id"))) if isinstance(ann, Mapping) else None
        if key is None:
            if not isinstance(ann, Mapping) or str(ann.get("image_id")) not in keys:
                problems.append(f"{where}: no image {_get(ann, 'image_id')!r}")
            continue  # a failed image's boxes
        if ann.get("iscrowd"):
            found.skipped.append(f"{where}: iscrowd region")
            continue
        box = _box(ann, categories)
        if isinstance(box, str):
            problems.append(f"{where}: {box}")
            continue
        found.boxes[key].append(box)
    if problems:
        raise ValidationError(problems, what=name)
    return found


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else None


def _list(name: str, doc: Mapping[str, Any], key: str, problems: list[str]) -> list[Any]:
    """``doc[key]`` as a list (absent or ``null``: empty); anything else is a problem."""
    value = doc.get(key)
    if value is None or isinstance(value, list):
        return value or []
    problems.append(f"{name}: '{key}' must be a list, got {type(value).__name__}")
    return []


def _categories(name: str, categories: list[Any], problems: list[str]) -> dict[str, str]:
    """Category id to name; an id listed twice or a category without a name is a problem."""
    names: dict[str, str] = {}
    first: dict[str, int] = {}
    for n, cat in enumerate(categories):
        cat_id, label = _get(cat, "id"), _get(cat, "name")
        if cat_id is None or not isinstance(label, str) or not label:
            problems.append(f"{name}: categories[{n}]: needs an id and a name")
        elif str(cat_id) in first:
            problems.append(
                f"{name}: categories[{n}]: id {cat_id!r} is listed twice "
                f"(categories[{first[str(cat_id)]}])"
            )
        else:
            first[str(cat_id)] = n
            names[str(cat_id)] = label
    return names


def _images(
    name: str, images: list[Any], found: CocoDetections, problems: list[str]
) -> dict[str, str | None]:
    """Image id to key (``None`` for a failed image, whose boxes are not read)."""
    keys: dict[str, str | None] = {}
    first: dict[str, int] = {}
    for n, image in enumerate(images):
        key = _get(image, "source_ref") or _get(image, "file_name")
        if not isinstance(key, str) or not key or _get(image, "id") is None:
            problems.append(f"{name}: images[{n}]: needs an id and a file_name")
            continue
        if str(image["id"]) in first:
            problems.append(
                f"{name}: images[{n}]: id {image['id']!r} is listed twice "
                f"(images[{first[str(image['id'])]}])"
            )
            continue
        first[str(image["id"])] = n
        if key in found.boxes or key in keys.values():
            problems.append(f"{name}: images[{n}]: {key} is listed twice")
            continue
        if _get(image, "failure_reason"):
            found.skipped.append(f"{name}: images[{n}]: {key}: {image['failure_reason']}")
            keys[str(image["id"])] = None
            continue
        keys[str(image["id"])] = key
        found.boxes[key] = []
    return keys


def _box(ann: Mapping[str, Any], categories: Mapping[str, str]) -> CocoBox | str:
    """The annotation's box, or why it is not one."""
    label = categories.get(str(ann.get("category_id")))
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
    return label, x, y, w, h, float(score)


def _finite(value: object) -> bool:
    """A JSON number that is finite (a bool or a numeric string is not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
