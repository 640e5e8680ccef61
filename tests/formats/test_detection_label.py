"""The bounding-box output label: build, parse, and refuse malformed shapes cleanly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.formats.crowd.base import positive_size
from gt_toolkit.formats.detection_label import (
    MAX_COORDINATE,
    build_detection_label,
    class_ids_for,
    image_side,
    label_attribute_problems,
    parse_annotation,
    parse_class_id,
    parse_detection_label,
    parse_image_size,
)
from gt_toolkit.types import ConsolidatedBox


def _box(label: str, left: float, top: float, width: float, height: float) -> ConsolidatedBox:
    return {
        "label": label,
        "left": left,
        "top": top,
        "width": width,
        "height": height,
        "confidence": 0.5,
    }


def test_shape_follows_ground_truth() -> None:
    pair = build_detection_label(
        "boxes",
        [_box("bike", 300, 210, 55, 60), _box("car", 12, 40, 100, 80)],
        image_size={"width": 640, "height": 480},
        labels=["car", "truck", "bike"],
        job_name="boxes-job",
        creation_date="2024-03-01T10:11:12.123456",
    )
    assert pair["boxes"] == {
        "image_size": [{"depth": 3, "width": 640, "height": 480}],
        "annotations": [
            {"class_id": 2, "left": 300, "top": 210, "width": 55, "height": 60},
            {"class_id": 0, "left": 12, "top": 40, "width": 100, "height": 80},
        ],
    }
    meta = pair["boxes-metadata"]
    assert meta["class-map"] == {"0": "car", "2": "bike"}  # only used classes, string keys
    assert meta["job-name"] == "labeling-job/boxes-job"
    assert meta["objects"] == [{"confidence": 0.5}, {"confidence": 0.5}]
    assert meta["type"] == "groundtruth/object-detection"


def test_rounding_keeps_the_right_edge_and_a_pixel() -> None:
    pair = build_detection_label(
        "b",
        [_box("x", 10.4, 0, 10.4, 0.3), _box("x", 0.6, 0.6, 0.2, 0.2)],
        image_size=None,
        job_name="j",
    )
    first, second = pair["b"]["annotations"]
    assert (first["left"], first["left"] + first["width"]) == (10, 21)  # 10.4 .. 20.8
    assert first["height"] == 1 and second["width"] == 1 and second["height"] == 1


def test_unknown_labels_get_ids_after_the_known_ones() -> None:
    assert class_ids_for(["b", "a"], ["z", "a", "c"]) == {"b": 0, "a": 1, "c": 2, "z": 3}
    assert class_ids_for(None, ["z", "a"]) == {"a": 0, "z": 1}


@pytest.mark.parametrize(
    ("value", "metadata"),
    [
        ([], {}),
        ({"annotations": "x"}, {}),
        ({"annotations": [], "image_size": 3}, {}),
        ({"annotations": [], "image_size": [{"width": "wide", "height": 1}]}, {}),
        ({"annotations": []}, {"class-map": ["a"]}),
        ({"annotations": []}, {"objects": "x"}),
        ({"annotations": []}, ["not", "a", "mapping"]),
        ({"annotations": [{"class_id": "x", "left": 1, "top": 1, "width": 1, "height": 1}]}, {}),
        ({"annotations": [{"class_id": 0, "left": None, "top": 1, "width": 1, "height": 1}]}, {}),
        (
            {
                "annotations": [
                    {"class_id": float("inf"), "left": 1, "top": 1, "width": 1, "height": 1}
                ]
            },
            {},
        ),
        ({"annotations": [], "image_size": [{"width": float("inf"), "height": 1}]}, {}),
        (
            {
                "annotations": [
                    {"class_id": 0, "left": float("nan"), "top": 1, "width": 1, "height": 1}
                ]
            },
            {},
        ),
    ],
)
def test_malformed_labels_raise_value_error_only(value: Any, metadata: Any) -> None:
    with pytest.raises(ValueError):
        parse_detection_label(value, metadata)


boxes = st.lists(
    st.builds(
        _box,
        st.sampled_from(["car", "bike", "person"]),
        st.integers(0, 600),
        st.integers(0, 400),
        st.integers(1, 200),
        st.integers(1, 200),
    ),
    max_size=8,
)


@given(boxes, st.booleans())
def test_build_then_parse_round_trips(items: list[ConsolidatedBox], string_ids: bool) -> None:
    pair = build_detection_label(
        "a",
        items,
        image_size={"width": 800, "height": 600},
        labels=["car", "bike"],
        job_name="j",
    )
    if string_ids:  # real outputs carry class_id as int or string
        for ann in pair["a"]["annotations"]:
            ann["class_id"] = str(ann["class_id"])
    size, parsed = parse_detection_label(pair["a"], pair["a-metadata"])
    assert size == {"width": 800, "height": 600, "depth": 3}
    assert [(b.label, b.left, b.top, b.width, b.height, b.score) for b in parsed] == [
        (i["label"], i["left"], i["top"], i["width"], i["height"], 0.5) for i in items
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (7, 7), (3.0, 3), ("2", 2), (" 12 ", 12), (2**31 - 1, 2**31 - 1)],
)
def test_class_ids_real_outputs_carry(value: object, expected: int) -> None:
    assert parse_class_id(value) == expected


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (True, "boolean"),
        (1.5, "not an integer"),
        ("cat", "not an integer"),
        ("١", "not an integer"),  # a digit, but not an ASCII one
        (None, "not an integer"),
        (-1, "outside"),
        ("-3", "outside"),
        (2**31, "outside"),
        (2**64, "outside"),
        (float("inf"), "not an integer"),
    ],
)
def test_odd_class_ids_are_refused_with_a_reason(value: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_class_id(value)


GOOD_BOX = {"class_id": 1, "left": 1, "top": 2.5, "width": "3", "height": 4}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"left": True}, "left True is not a finite number"),
        ({"top": float("nan")}, "top nan"),
        ({"width": "wide"}, "width 'wide'"),
        ({"height": 10**400}, "height"),
        ({"class_id": -2}, "outside"),
    ],
)
def test_one_check_of_a_label_box(change: dict[str, Any], why: str) -> None:
    assert parse_annotation(GOOD_BOX) == (1, 1.0, 2.5, 3.0, 4.0)
    with pytest.raises(ValueError, match=why):
        parse_annotation({**GOOD_BOX, **change})
    with pytest.raises(ValueError, match="must be an object"):
        parse_annotation([1, 2, 3, 4])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({"width": 640, "height": 480}, {"width": 640, "height": 480}),
        ({"width": 640.0, "height": "480", "depth": 3}, {"width": 640, "height": 480, "depth": 3}),
        ({"width": 640, "height": 480, "depth": 2**64}, {"width": 640, "height": 480}),
    ],
)
def test_image_size_parser(value: object, expected: object) -> None:
    assert parse_image_size(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"width": 0, "height": 480},
        {"width": True, "height": 480},
        {"width": 640.5, "height": 480},
        {"width": 2**31, "height": 480},
        {"height": 480},
        [640, 480],
    ],
)
def test_image_size_parser_refuses_what_is_not_a_size(value: object) -> None:
    with pytest.raises(ValueError):
        parse_image_size(value)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("source-ref", "own key"),
        ("source", "own key"),
        ("boxes-metadata", "must not end with '-metadata'"),
        ("boxes-ref", "must not end with '-ref'"),
        ("bad name!", "letters, digits and hyphens"),
        ("-boxes", "letters, digits and hyphens"),
        ("a" * 128, "1-127"),
        ("a" + "-" * 126 + "b", "1-127"),  # the pattern counts letters, the limit characters
        ("", "1-127"),
    ],
)
def test_a_label_attribute_ground_truth_would_refuse_is_named(name: str, problem: str) -> None:
    assert any(problem in p for p in label_attribute_problems(name))


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?", fullmatch=True))
def test_a_plain_name_is_a_label_attribute(name: str) -> None:
    bad = name.endswith(("-metadata", "-ref")) or name in ("source", "source-ref")
    assert (label_attribute_problems(name) == []) is not bad
    if name != "source":  # "source-ref" is the input's own key
        assert label_attribute_problems(name + "-ref", reference=True) == []


@pytest.mark.parametrize(
    "value",
    [1e308, -1e308, 1e20, 9.3e18, 1e16 + 2, 2**63, -(2**63), 10**20, "1e308", 2**31, -(2**31)],
)
@pytest.mark.parametrize("key", ["left", "top", "width", "height"])
def test_a_coordinate_no_image_can_have_makes_the_box_malformed(key: str, value: object) -> None:
    """Past +-(2**31 - 1) no image holds the box: rejected, not written as a huge integer."""
    with pytest.raises(ValueError, match=rf"^{key} .* is beyond \+-2147483647 pixels"):
        parse_annotation({**GOOD_BOX, key: value})


@pytest.mark.parametrize("value", [2**31 - 1, -(2**31 - 1), 2147483647.0, 1e9 + 0.5])
def test_coordinates_up_to_the_largest_image_side_are_read(value: float) -> None:
    assert parse_annotation({**GOOD_BOX, "left": value})[1] == value


_SIDES = st.one_of(
    st.integers(min_value=-3, max_value=2**64),
    st.integers(min_value=2**31 - 3, max_value=2**31 + 3),
    st.floats(),  # NaN and infinities too
    st.sampled_from([2**31 - 1.0, 2.0**31, 2147483646.5, 0.5, 1.0, -0.0]),
)


@given(_SIDES)
def test_every_reader_of_image_sizes_takes_the_same_sides(number: int | float) -> None:
    """One limit, MAX_COORDINATE: from-coco took sides up to 2**62 that every other reader
    refused. A Ground Truth size, a crowd export's (Label Studio, CVAT, COCO raters) and
    from-coco's (image_side) agree on every number."""
    whole = isinstance(number, int) or (isinstance(number, float) and number.is_integer())
    expected = int(number) if whole and 1 <= number <= MAX_COORDINATE else None
    assert image_side(number) == expected
    crowd = positive_size(number, 7)
    assert (None if crowd is None else crowd["width"]) == expected
    try:
        manifest = parse_image_size({"width": 7, "height": number})
    except ValueError:
        manifest = None
    assert (None if manifest is None else manifest["height"]) == expected
