"""Bounding-box output labels: build and parse Ground Truth's object-detection shape.

The post-annotation Lambda, offline re-consolidation and the converters all produce or read
the same ``<attr>`` + ``<attr>-metadata`` pair (``docs/ground-truth-formats.md`` §2.1);
this module is the one place that knows it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gt_toolkit.errors import LabelFormatError
from gt_toolkit.types import (
    ConsolidatedBox,
    DetectionLabel,
    DetectionMetadata,
    ImageSize,
    OutputAnnotation,
    WorkerBox,
)

__all__ = [
    "DETECTION_TYPE",
    "MAX_CLASS_ID",
    "MAX_COORDINATE",
    "ScoredBox",
    "build_detection_label",
    "class_ids_for",
    "image_side",
    "image_side_text",
    "label_attribute_problems",
    "label_boxes",
    "label_image_size",
    "now_creation_date",
    "parse_annotation",
    "parse_class_id",
    "parse_detection_label",
    "parse_image_size",
]

# The service model's pattern; its {0,126} counts letters, not hyphens, so the 127-character
# limit (the model's "max") is checked apart.
_ATTRIBUTE_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}")
_ATTRIBUTE_MAX = 127
RESERVED_ATTRIBUTES = frozenset({"source", "source-ref"})
"""The input line's own keys: a label attribute of that name would overwrite the image."""


def label_attribute_problems(
    name: str, *, reference: bool = False, pattern: bool = True
) -> list[str]:
    """Why ``name`` cannot be a label attribute (§2.2 and §8 pitfall 17); empty when it can.

    The rules Ground Truth's API enforces, for whoever writes the ``<name>`` +
    ``<name>-metadata`` pair: 1-127 letters, digits and hyphens, starting and ending with a
    letter or digit; never ending in ``-metadata``; never an input key (``source``,
    ``source-ref``); ending in ``-ref`` exactly when the label is a file reference
    (``reference``; a bounding-box label is not). ``pattern=False`` leaves the characters to
    a caller that checks them against the service model already.
    """
    problems = []
    if pattern and (len(name) > _ATTRIBUTE_MAX or not _ATTRIBUTE_NAME.fullmatch(name)):
        problems.append(
            f"label attribute {name!r} must be 1-127 letters, digits and hyphens, starting "
            "and ending with a letter or digit"
        )
    if name.endswith("-metadata"):
        problems.append(f"label attribute {name!r} must not end with '-metadata'")
    if name in RESERVED_ATTRIBUTES:
        problems.append(f"label attribute {name!r} would overwrite the input line's own key")
    if reference != name.endswith("-ref"):
        must = "must" if reference else "must not"
        problems.append(f"label attribute {name!r} {must} end with '-ref' for this kind of label")
    return problems


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoredBox:
    """One labeled box in pixels (top-left origin) with an optional score: the toolkit's box.

    Boxes read from a label (``score`` is the object's ``confidence``), predictions and
    reference boxes all take this one shape; the AWS wire shapes stay the
    :class:`~gt_toolkit.types.WorkerBox` and :class:`~gt_toolkit.types.ConsolidatedBox`
    dicts, which :meth:`worker_box` and :meth:`consolidated_box` give. ``score`` is ``None``
    when unknown (a label without ``objects``, a reference box).

    ``crowd`` and ``area`` are facts of a COCO dataset's reference box, which evaluation
    uses as COCOeval does: ``crowd`` marks an ``iscrowd`` region (one box around a group,
    ignored rather than counted), ``area`` the annotation's own area (a mask's, in COCO's
    files), which decides its size range; ``None`` means ``width * height``. The wire
    shapes below leave both out: neither Ground Truth nor the prediction format has them.
    """

    label: str
    left: float
    top: float
    width: float
    height: float
    score: float | None = None
    crowd: bool = False
    area: float | None = None

    def worker_box(self) -> WorkerBox:
        """The box as a worker's answer (``initialValue``, the consolidation engine's input)."""
        return {
            "label": self.label,
            "left": self.left,
            "top": self.top,
            "width": self.width,
            "height": self.height,
        }

    def consolidated_box(self) -> ConsolidatedBox:
        """The box as a consolidated one; an unknown score is 0.0, as Ground Truth writes."""
        return {**self.worker_box(), "confidence": 0.0 if self.score is None else self.score}

    def to_json(self) -> dict[str, Any]:
        """The neutral prediction-format box (``score`` left out when unknown)."""
        out: dict[str, Any] = dict(self.worker_box())
        if self.score is not None:
            out["score"] = self.score
        return out


def parse_image_size(value: object) -> ImageSize | None:
    """Read one ``{"width", "height"[, "depth"]}`` image size: the one parser of that shape.

    It is a label's ``image_size[0]`` or a worker's ``inputImageProperties``. ``None``
    (absent) gives ``None``. Sizes are what :func:`image_side` takes (``640.0`` and ``"640"``
    are read as 640; a bool is not a number); a depth that is not is left out.

    Raises:
        ValueError: present but not such a size.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise LabelFormatError(f"an image size must be an object, got {value!r}")
    size: ImageSize = {"width": _pixels(value, "width"), "height": _pixels(value, "height")}
    with contextlib.suppress(ValueError):  # a bad depth is left out: no box depends on it
        size["depth"] = _pixels(value, "depth")
    return size


def _pixels(size: Mapping[str, Any], key: str) -> int:
    value = size.get(key)
    side: int | None = None
    if value.__class__ is int or isinstance(value, float):
        side = image_side(value)
    elif isinstance(value, str):
        side = image_side_text(value)
    if side is None:
        raise LabelFormatError(f"image size {key} must be a whole number of pixels, got {value!r}")
    return side


def image_side(number: int | float | Decimal) -> int | None:
    """``number`` as an image's width or height in pixels, or ``None`` when no image has it.

    The one rule of every reader of image sizes (Ground Truth manifests and answers, Label
    Studio, CVAT, COCO, ``from-coco``): a whole number from 1 to :data:`MAX_COORDINATE`.
    A side of 2**31 or more is no image's (every image format and the answer index store
    sides as 32-bit integers, and boxes are bounded by the same number); a reader that
    took 2**62 wrote sizes the others then refused. Each reader turns its own spelling into
    a number first (``"640"`` in a manifest; never a bool).
    """
    if not 0 < number <= MAX_COORDINATE:  # NaN and infinities too
        return None
    whole = int(number)
    return whole if whole == number else None


def image_side_text(text: str) -> int | None:
    """An image side written as text (``"640"``), or ``None``: :func:`image_side`'s rule.

    Text is ASCII digits only, the spelling of every reader that takes one (a manifest's
    ``"640"``, a CVAT ``<image width="640">``): ``float`` also took ``" 640"``, ``"6_40"``,
    ``"1e3"`` and ``"６４０"`` (full-width digits), which the other readers refuse, so one
    file read two ways. An integer past Python's digit limit is no side either.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    try:
        return image_side(int(text))
    except ValueError:  # more than 4,300 digits
        return None


def label_image_size(sizes: object) -> ImageSize | None:
    """The size in a label's ``image_size`` list (its first entry); ``None`` when empty.

    Raises:
        ValueError: not a list, or a malformed size (:func:`parse_image_size`).
    """
    if sizes is None or sizes == []:
        return None
    if not isinstance(sizes, list):
        raise LabelFormatError(f"image_size must be a list, got {sizes!r}")
    return parse_image_size(sizes[0])


def label_boxes(
    annotations: Sequence[Mapping[str, Any]], names: Sequence[str], objects: Sequence[Any]
) -> list[ScoredBox]:
    """Boxes from checked ``annotations`` (numeric edges) and their class ``names``.

    A box's score is the numeric ``confidence`` of its entry in the metadata's ``objects``,
    else ``None``.
    """
    boxes = []
    for i, (ann, name) in enumerate(zip(annotations, names, strict=True)):
        obj = objects[i] if i < len(objects) else None
        conf = obj.get("confidence") if isinstance(obj, Mapping) else None
        boxes.append(
            ScoredBox(
                label=name,
                left=ann["left"],
                top=ann["top"],
                width=ann["width"],
                height=ann["height"],
                score=float(conf)
                if isinstance(conf, int | float) and not isinstance(conf, bool)
                else None,
            )
        )
    return boxes


MAX_CLASS_ID = 2**31 - 1
"""The largest class id read: every training format stores class ids as 32-bit integers."""
MAX_COORDINATE = 2**31 - 1
"""The largest magnitude of a box coordinate read: no image side reaches 2**31 pixels."""
_COORDS = ("left", "top", "width", "height")


def parse_class_id(value: object) -> int:
    """A class id: an int, an integral float or a decimal string (real outputs carry each).

    Raises:
        ValueError: a bool, a fraction, anything else that is not a whole number, or a number
            outside 0..:data:`MAX_CLASS_ID`; the message says which.
    """
    if isinstance(value, bool):
        raise LabelFormatError("a boolean is not a class id")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        digits = value.strip().removeprefix("-")
        number = int(value) if digits.isascii() and digits.isdigit() else None
    if number is None:
        raise LabelFormatError(f"class id {value!r:.40} is not an integer")
    if not 0 <= number <= MAX_CLASS_ID:
        raise LabelFormatError(f"class id {str(number)[:40]} is outside 0..{MAX_CLASS_ID}")
    return number


def parse_annotation(ann: object) -> tuple[int, float, float, float, float]:
    """``(class_id, left, top, width, height)`` of one box of a bounding-box label.

    The one check of a label box: every reader of labels calls it. Coordinates may be
    numbers or numeric strings; a bool is not a number.

    A coordinate beyond +-:data:`MAX_COORDINATE` pixels is no box of any image (sizes are
    below 2**31): such a box is malformed, not clipped, and never reaches an output (a
    whole-valued ``1e308`` would be written as a 309-digit integer no JSON writer takes).

    Raises:
        ValueError: not an object, a bad class id (:func:`parse_class_id`), or a coordinate
            that is missing, not a number, not finite or beyond +-:data:`MAX_COORDINATE`.
    """
    if not isinstance(ann, Mapping):
        raise LabelFormatError(f"a box must be an object, got {ann!r:.80}")
    class_id = parse_class_id(ann.get("class_id"))
    left, top, width, height = (_coordinate(ann, key) for key in _COORDS)
    return class_id, left, top, width, height


def _coordinate(ann: Mapping[str, Any], key: str) -> float:
    value = ann.get(key)
    number = math.nan
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError, OverflowError):  # not a number: stays NaN
            number = float(value)
    if not math.isfinite(number):
        raise LabelFormatError(f"{key} {value!r:.40} is not a finite number")
    if not -MAX_COORDINATE <= number <= MAX_COORDINATE:
        raise LabelFormatError(
            f"{key} {value!r:.40} is beyond +-{MAX_COORDINATE} pixels: no image is that large"
        )
    return number


def parse_detection_label(
    value: Mapping[str, Any], metadata: Mapping[str, Any] | None
) -> tuple[ImageSize | None, list[ScoredBox]]:
    """Read a bounding-box label: ``class_id`` int or string, confidences optional.

    The output-manifest reader (:class:`gt_toolkit.formats.output_manifest.OutputReader`)
    reads whole files this way, faster and with clipping; this reads one label value.

    Raises:
        ValueError: the value is not an object-detection label: no ``annotations`` list, a
            box without numeric coordinates, or ``image_size``/``class-map``/``objects`` of
            the wrong JSON type (data objects come from users; nothing else may escape).
    """
    if not isinstance(value, Mapping):
        raise LabelFormatError(f"the label is a JSON {type(value).__name__}, not an object")
    annotations = value.get("annotations")
    if not isinstance(annotations, list):
        raise LabelFormatError("no 'annotations' list in the label")
    size = label_image_size(value.get("image_size"))
    meta = metadata if metadata is not None else {}
    if not isinstance(meta, Mapping):
        raise LabelFormatError(f"the metadata is a JSON {type(meta).__name__}, not an object")
    raw_map = meta.get("class-map") or {}
    objects = meta.get("objects") or []
    if not isinstance(raw_map, Mapping) or not isinstance(objects, list):
        raise LabelFormatError("class-map must be an object and objects a list")
    class_map = {str(k): str(v) for k, v in raw_map.items()}
    checked: list[dict[str, float]] = []
    names: list[str] = []
    for i, ann in enumerate(annotations):
        try:
            class_id, *coords = parse_annotation(ann)
        except ValueError as exc:
            raise LabelFormatError(f"annotation {i} is malformed: {exc}") from None
        checked.append(dict(zip(_COORDS, coords, strict=True)))
        names.append(class_map.get(str(class_id), str(class_id)))
    return size, label_boxes(checked, names, objects)
