"""Worker answers: decode one worker's ``answerContent`` of a bounding-box task.

The post-annotation Lambda and offline re-consolidation both receive the crowd element's
output, ``{"<element name>": {"boundingBoxes": [...] | null, "inputImageProperties": {...}}}``
(``docs/ground-truth-formats.md`` §2.3 and §3). This module turns it into typed boxes.
It checks the *structure*: a box with a NaN, a string or a negative width is passed on
(coordinates as floats, NaN when unreadable) so consolidation can drop it with a recorded
reason instead of failing the whole object. Two things make the whole answer unreadable
instead: an element without a ``boundingBoxes`` key (the answer of another task type, or a
template that nests its boxes elsewhere: it must not read as "drew nothing"), and a number
beyond :data:`MAX_PIXELS` as a coordinate or image side (no image is that large; such a number
is a broken or forged answer, and would not even fit the label's integer pixels).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gt_toolkit.errors import ConsolidationError
from gt_toolkit.formats.detection_label import MAX_COORDINATE, parse_image_size
from gt_toolkit.types import ImageSize, WorkerBox

__all__ = ["MAX_PIXELS", "BoundingBoxAnswer", "parse_bounding_box_answer"]

_COORDS = ("left", "top", "width", "height")

MAX_PIXELS = MAX_COORDINATE
"""The largest coordinate or image side (in pixels, either sign) an answer may hold: the
limit of every reader (:func:`~gt_toolkit.formats.detection_label.image_side`)."""


@dataclass
class BoundingBoxAnswer:
    """One worker's answer for one image."""

    worker_id: str
    boxes: list[WorkerBox] = field(default_factory=list)
    image_size: ImageSize | None = None
    time_spent: float | None = None


def _number(value: Any) -> float:
    """A coordinate as a float; NaN for anything unreadable (consolidation drops it)."""
    if isinstance(value, bool):
        return math.nan
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer beyond the largest float
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def _coordinate(value: Any, key: str, box: int | None = None) -> float:
    """A coordinate as :func:`_number` reads it; a number beyond :data:`MAX_PIXELS` raises."""
    if type(value) in (int, float) and -MAX_PIXELS <= value <= MAX_PIXELS:
        return float(value)  # the common case, first: this runs for every edge of every box
    number = _number(value)
    if abs(number) > MAX_PIXELS and (math.isfinite(number) or isinstance(value, int)):
        shown = f"{number:.6g}" if math.isfinite(number) else "an integer beyond 1e308"
        where = f"inputImageProperties.{key}" if box is None else f"box {box} {key}"
        raise ConsolidationError(f"{where} is {shown}, beyond {MAX_PIXELS} pixels")
    return number


def _image_size(props: Any) -> ImageSize | None:
    """``inputImageProperties`` as a size; ``None`` when absent or not a positive size.

    A number beyond :data:`MAX_PIXELS` fails the answer (:func:`_coordinate`), as in a box;
    otherwise the one size parser decides
    (:func:`~gt_toolkit.formats.detection_label.parse_image_size`).
    """
    if isinstance(props, Mapping):
        for key in ("width", "height"):
            _coordinate(props.get(key), key)
    try:
        return parse_image_size(props)
    except ValueError:
        return None


def _element(content: Mapping[str, Any], element_name: str | None) -> Mapping[str, Any]:
    if element_name is not None:
        if element_name not in content:
            raise ConsolidationError(
                f"answer has no {element_name!r} element (keys: {sorted(content)})"
            )
        value = content[element_name]
    elif len(content) == 1:
        value = next(iter(content.values()))
    else:
        # Custom templates may add other fields; take the one bounding-box element.
        found = [k for k, v in content.items() if isinstance(v, Mapping) and "boundingBoxes" in v]
        if len(found) != 1:
            raise ConsolidationError(
                "cannot tell the bounding-box element among answer keys "
                f"{sorted(content)}; pass element_name"
            )
        value = content[found[0]]
    if not isinstance(value, Mapping):
        raise ConsolidationError(
            f"the bounding-box element must be an object, got {type(value).__name__}"
        )
    return value


def parse_bounding_box_answer(
    answer_content: Mapping[str, Any],
    *,
    worker_id: str = "",
    element_name: str | None = None,
    time_spent: float | None = None,
) -> BoundingBoxAnswer:
    """Decode a crowd-bounding-box ``answerContent`` into a :class:`BoundingBoxAnswer`.

    Args:
        answer_content: the decoded JSON object (the Lambda payload carries it as a string;
            decode it first).
        worker_id: the ``workerId`` the answer came with.
        element_name: the crowd element's ``name``; ``None`` takes the single key present.
        time_spent: ``timeSpentInSeconds`` when known.

    Raises:
        ConsolidationError: the answer is not an object, has no (or an ambiguous)
            bounding-box element, the element has no ``boundingBoxes`` key or it is neither
            a list nor null, a box is not an object, or a coordinate or image side is beyond
            :data:`MAX_PIXELS`. ``boundingBoxes: null`` is a worker who drew nothing.
    """
    if not isinstance(answer_content, Mapping):
        raise ConsolidationError(
            f"answerContent must be an object, got {type(answer_content).__name__}"
        )
    element = _element(answer_content, element_name)
    if "boundingBoxes" not in element:
        keys = sorted(map(str, element))
        raise ConsolidationError(
            f"the answer has no boundingBoxes (keys: {keys[:10]}): not a bounding-box answer"
        )
    raw_boxes = element.get("boundingBoxes")
    if raw_boxes is None:
        raw_boxes = []
    if not isinstance(raw_boxes, list):
        raise ConsolidationError(
            f"boundingBoxes must be a list or null, got {type(raw_boxes).__name__}"
        )
    boxes: list[WorkerBox] = []
    for i, raw in enumerate(raw_boxes):
        if not isinstance(raw, Mapping):
            raise ConsolidationError(f"box {i} is not an object: {raw!r}")
        label = raw.get("label")
        left, top, width, height = (_coordinate(raw.get(k), k, i) for k in _COORDS)
        boxes.append(
            {
                "label": label if isinstance(label, str) else "",
                "left": left,
                "top": top,
                "width": width,
                "height": height,
            }
        )
    spent = _number(time_spent) if time_spent is not None else None
    return BoundingBoxAnswer(
        worker_id=worker_id,
        boxes=boxes,
        image_size=_image_size(element.get("inputImageProperties")),
        time_spent=spent if spent is not None and math.isfinite(spent) else None,
    )
