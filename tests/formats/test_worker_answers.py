"""The answer parser's rules added for hostile answers; the older table is in
tests/consolidation/test_engine.py."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gt_toolkit.errors import ConsolidationError
from gt_toolkit.formats.worker_answers import MAX_PIXELS, parse_bounding_box_answer


def answer(box: dict[str, Any] | None = None, size: Any = None) -> dict[str, Any]:
    box = {"label": "car", "left": 1, "top": 2, "width": 3, "height": 4, **(box or {})}
    element: dict[str, Any] = {"boundingBoxes": [box]}
    if size is not None:
        element["inputImageProperties"] = size
    return {"boundingBox": element}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (answer({"left": MAX_PIXELS + 1}), "box 0 left is 2.14748e"),
        (answer({"top": -(2**64)}), "box 0 top is -1.84467e"),
        (answer({"width": 10**400}), "box 0 width is an integer beyond 1e308"),
        (answer({"height": 1e300}), "box 0 height is 1e"),
        (answer({"height": "1e300"}), "box 0 height is 1e"),
        (answer(size={"width": 2**64, "height": 480}), "inputImageProperties.width"),
        (answer(size={"width": 640, "height": 1e300}), "inputImageProperties.height"),
        ({"boundingBox": {"inputImageProperties": {}}}, "no boundingBoxes"),
        ({"crowd-entity-annotation": {"entities": []}}, "no boundingBoxes"),
    ],
    ids=[
        "left-2^31",
        "top--2^64",
        "width-10^400",
        "height-1e300",
        "height-str-1e300",
        "image-width-2^64",
        "image-height-1e300",
        "no-boxes-key",
        "ner-answer",
    ],
)
def test_an_unreadable_answer_raises(content: dict[str, Any], match: str) -> None:
    with pytest.raises(ConsolidationError, match=match):
        parse_bounding_box_answer(content)


@pytest.mark.parametrize(
    ("box", "read"),
    [
        ({"left": MAX_PIXELS, "top": -MAX_PIXELS}, (MAX_PIXELS, -MAX_PIXELS)),
        ({"left": math.inf, "top": "-inf"}, (math.inf, -math.inf)),  # dropped by the engine
        ({"left": "1e400", "top": True}, (math.inf, math.nan)),
        ({"left": 2.5, "top": "7"}, (2.5, 7.0)),
    ],
)
def test_edges_within_range_or_not_finite_are_read_box_by_box(
    box: dict[str, Any], read: tuple[float, float]
) -> None:
    [parsed] = parse_bounding_box_answer(answer(box)).boxes
    for got, want in zip((parsed["left"], parsed["top"]), read, strict=True):
        assert got == want or (math.isnan(got) and math.isnan(want))


@pytest.mark.parametrize(
    ("size", "read"),
    [
        ({"width": 640, "height": 480, "depth": 3}, {"width": 640, "height": 480, "depth": 3}),
        ({"width": 640, "height": 480, "depth": 2**64}, {"width": 640, "height": 480}),
        ({"width": "640", "height": 480.0}, {"width": 640, "height": 480}),
        ({"width": 0, "height": 480}, None),
        ({"width": math.nan, "height": 480}, None),
        ({"width": 640}, None),
        ({"width": 640, "height": math.inf}, None),
        ({"width": True, "height": 480}, None),
    ],
)
def test_image_size(size: dict[str, Any], read: dict[str, int] | None) -> None:
    assert parse_bounding_box_answer(answer(size=size)).image_size == read
