"""Bounding-box output labels: build and parse Ground Truth's object-detection shape.

The post-annotation Lambda, offline re-consolidation and the converters all produce or read
the same ``<attr>`` + ``<attr>-metadata`` pair (``docs/ground-truth-formats.md`` §2.1);
this module is the one place that knows it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gt_toolkit.types import (
    ConsolidatedBox,
    DetectionLabel,
    DetectionMetadata,
    ImageSize,
    OutputAnnotation,
)

__all__ = [
    "DETECTION_TYPE",
    "LabeledBox",
    "build_detection_label",
    "class_ids_for",
    "now_creation_date",
    "parse_detection_label",
]

DETECTION_TYPE = "groundtruth/object-detection"


def now_creation_date() -> str:
    """A ``creation-date`` in Ground Truth's style: ISO, microseconds, no timezone (UTC)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def class_ids_for(labels: Sequence[str] | None, used: Sequence[str] = ()) -> dict[str, int]:
    """Label name to class id: the ``labels`` order when given, else sorted used names.

    Names used but missing from ``labels`` get ids after the known ones, in sorted order, so
    nothing is silently dropped and ids stay deterministic.
    """
    ids: dict[str, int] = {}
    for name in labels or ():
        ids.setdefault(name, len(ids))
    for name in sorted(set(used) - set(ids)):
        ids[name] = len(ids)
    return ids


def build_detection_label(
    attribute: str,
    boxes: Sequence[ConsolidatedBox],
    *,
    image_size: ImageSize | None,
    labels: Sequence[str] | None = None,
    job_name: str,
    creation_date: str | None = None,
    human_annotated: bool = True,
    extra_metadata: Mapping[str, Any] | None = None,
    whole_pixels: bool = True,
) -> dict[str, Any]:
    """Build ``{attribute: DetectionLabel, attribute-metadata: DetectionMetadata}``.

    Coordinates are rounded to whole pixels as Ground Truth writes them, unless
    ``whole_pixels`` is False (boxes imported from another tool keep their exact values,
    so a round trip or an evaluation against them is not shifted); ``class_id`` follows
    ``labels`` order (the job's ``labelCategories``); ``class-map`` lists only used classes.
    ``job_name`` gets the ``labeling-job/`` prefix real outputs carry.
    """
    ids = class_ids_for(labels, [b["label"] for b in boxes])
    label: DetectionLabel = {
        # Ground Truth always writes a depth; workers' inputImageProperties carry none.
        "image_size": [{"depth": 3, **image_size}] if image_size is not None else [],
        "annotations": [
            _pixel_box(b, ids[b["label"]]) if whole_pixels else _exact_box(b, ids[b["label"]])
            for b in boxes
        ],
    }
    used = sorted({ids[b["label"]] for b in boxes})
    inverse = {v: k for k, v in ids.items()}
    metadata: DetectionMetadata = {
        "objects": [{"confidence": round(float(b["confidence"]), 4)} for b in boxes],
        "class-map": {str(i): inverse[i] for i in used},
        "type": DETECTION_TYPE,
        "human-annotated": "yes" if human_annotated else "no",
        "creation-date": creation_date or now_creation_date(),
        "job-name": job_name
        if job_name.startswith("labeling-job/")
        else f"labeling-job/{job_name}",
    }
    out: dict[str, Any] = {attribute: label, f"{attribute}-metadata": dict(metadata)}
    if extra_metadata:
        out[f"{attribute}-metadata"].update(extra_metadata)
    return out


def _pixel_box(box: ConsolidatedBox, class_id: int) -> OutputAnnotation:
    """Whole-pixel edges: round the corners, not the size, so the right edge stays put.

    Rounding ``left`` and ``width`` separately moves the right edge by up to a pixel and can
    make a thin box zero wide; a box keeps at least one pixel.
    """
    left, top = round(box["left"]), round(box["top"])
    right = round(box["left"] + box["width"])
    bottom = round(box["top"] + box["height"])
    return {
        "class_id": class_id,
        "left": left,
        "top": top,
        "width": max(1, right - left),
        "height": max(1, bottom - top),
    }


def _exact_box(box: ConsolidatedBox, class_id: int) -> OutputAnnotation:
    """The box as given; whole values written as integers, as Ground Truth writes them."""
    values = [box[k] for k in ("left", "top", "width", "height")]
    left, top, width, height = (int(v) if float(v).is_integer() else v for v in values)
    return {"class_id": class_id, "left": left, "top": top, "width": width, "height": height}


@dataclass(frozen=True, slots=True)
class LabeledBox:
    """One box read back from an output label: name, pixel xywh and confidence."""

    label: str
    class_id: int
    left: float
    top: float
    width: float
    height: float
    confidence: float | None


def parse_detection_label(
    value: Mapping[str, Any], metadata: Mapping[str, Any] | None
) -> tuple[ImageSize | None, list[LabeledBox]]:
    """Read a bounding-box label leniently: ``class_id`` int or string, missing confidences.

    Raises:
        ValueError: the value is not an object-detection label: no ``annotations`` list, a
            box without numeric coordinates, or ``image_size``/``class-map``/``objects`` of
            the wrong JSON type (data objects come from users; nothing else may escape).
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"the label is a JSON {type(value).__name__}, not an object")
    annotations = value.get("annotations")
    if not isinstance(annotations, list):
        raise ValueError("no 'annotations' list in the label")
    sizes = value.get("image_size") or []
    if not isinstance(sizes, list):
        raise ValueError(f"image_size must be a list, got {sizes!r}")
    size: ImageSize | None = None
    if sizes and isinstance(sizes[0], Mapping):
        s0 = sizes[0]
        try:
            size = {"width": int(s0["width"]), "height": int(s0["height"])}
            if "depth" in s0:
                size["depth"] = int(s0["depth"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"image_size is malformed: {s0!r}") from exc
    meta = metadata if metadata is not None else {}
    if not isinstance(meta, Mapping):
        raise ValueError(f"the metadata is a JSON {type(meta).__name__}, not an object")
    raw_map = meta.get("class-map") or {}
    objects = meta.get("objects") or []
    if not isinstance(raw_map, Mapping) or not isinstance(objects, list):
        raise ValueError("class-map must be an object and objects a list")
    class_map = {str(k): str(v) for k, v in raw_map.items()}
    boxes: list[LabeledBox] = []
    for i, ann in enumerate(annotations):
        try:
            class_id = int(ann["class_id"])
            coords = [float(ann[k]) for k in ("left", "top", "width", "height")]
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"annotation {i} is malformed: {ann!r}") from exc
        if not all(math.isfinite(c) for c in coords):
            raise ValueError(f"annotation {i} has a non-finite coordinate: {ann!r}")
        conf = (
            objects[i].get("confidence")
            if i < len(objects) and isinstance(objects[i], Mapping)
            else None
        )
        boxes.append(
            LabeledBox(
                label=class_map.get(str(class_id), str(class_id)),
                class_id=class_id,
                left=coords[0],
                top=coords[1],
                width=coords[2],
                height=coords[3],
                confidence=float(conf) if conf is not None else None,
            )
        )
    return size, boxes
