"""Decoding endpoint answers: table cases plus Hypothesis properties."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit import ValidationError
from gt_toolkit.formats.detection_label import build_detection_label, parse_detection_label
from gt_toolkit.sagemaker.predictions import decode_classification, decode_detections


def test_detection_rows_become_pixel_boxes_best_first() -> None:
    body = json.dumps(
        {
            "prediction": [
                [1.0, 0.55, 0.1, 0.1, 0.2, 0.3],
                [0.0, 0.95, 0.5, 0.25, 1.0, 0.75],
                [0.0, 0.19, 0.0, 0.0, 1.0, 1.0],
                [-1.0, 1.0, 0.0, 0.0, 1.0, 1.0],
                [4.0, 0.7, 0.3, 0.3, 0.3, 0.6],  # zero width
                [2.0, 0.6, 0.9, 0.9, 0.4, 0.8],  # corners swapped
            ]
        }
    ).encode()
    boxes = decode_detections(
        body, image_size={"width": 400, "height": 200}, labels=["ball", "bat", "glove"]
    )
    assert boxes == [
        {
            "label": "ball",
            "left": 200.0,
            "top": 50.0,
            "width": 200.0,
            "height": 100.0,
            "confidence": 0.95,
        },
        {
            "label": "glove",
            "left": pytest.approx(160.0),
            "top": pytest.approx(160.0),
            "width": pytest.approx(200.0),
            "height": pytest.approx(20.0),
            "confidence": 0.6,
        },
        {
            "label": "bat",
            "left": pytest.approx(40.0),
            "top": pytest.approx(20.0),
            "width": pytest.approx(40.0),
            "height": pytest.approx(40.0),
            "confidence": 0.55,
        },
    ]
    assert len(decode_detections(body, image_size=(400, 200), top_k=1)) == 1
    assert decode_detections(body, image_size=(400, 200), score_threshold=0.9)[0]["label"] == "0"
    assert decode_detections(body, image_size=(400, 200), labels={1: "bat"})[1]["label"] == "2"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html>500</html>", "not JSON"),
        (b'{"predictions": []}', 'expected {"prediction"'),
        (b'{"prediction": [[0, 0.9, 0.1]]}', "prediction[0] is not 6 numbers"),
        (b'{"prediction": [[0, "high", 0, 0, 1, 1]]}', "prediction[0] holds a non-number"),
    ],
    ids=["html", "wrong-key", "short-row", "string-score"],
)
def test_bad_detection_bodies(body: bytes, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode_detections(body, image_size=(10, 10))
    assert fragment in str(info.value)


def test_decoded_boxes_feed_the_ground_truth_label_builder() -> None:
    boxes = decode_detections(
        {"prediction": [[0.0, 0.9, 0.1, 0.1, 0.6, 0.6]]}, image_size=(100, 100), labels=["ball"]
    )
    pair = build_detection_label(
        "prelabel",
        boxes,
        image_size={"width": 100, "height": 100},
        labels=["ball"],
        job_name="model",
    )
    size, parsed = parse_detection_label(pair["prelabel"], pair["prelabel-metadata"])
    assert size == {"width": 100, "height": 100, "depth": 3}
    assert [(b.label, b.left, b.top, b.width, b.height, b.score) for b in parsed] == [
        ("ball", 10, 10, 50, 50, 0.9)
    ]


def test_classification_shapes() -> None:
    scores = decode_classification(b'{"prediction": [0.2, 0.5, 0.3]}', labels=["a", "b", "c"])
    assert [(s.class_id, s.label, s.probability) for s in scores] == [
        (1, "b", 0.5),
        (2, "c", 0.3),
        (0, "a", 0.2),
    ]
    assert [s.label for s in decode_classification([0.9, 0.1], top_k=1)] == ["0"]
    verbose = {"probabilities": [0.1, 0.9], "labels": ["cat", "dog"], "predicted_label": "dog"}
    assert decode_classification(verbose)[0].label == "dog"
    assert decode_classification({"prediction": [[0.3, 0.7]]})[0].class_id == 1
    for bad in (b"{}", b'{"prediction": []}', b'{"prediction": ["x"]}'):
        with pytest.raises(ValidationError):
            decode_classification(bad)


row = st.tuples(
    st.integers(-1, 5).map(float),
    st.floats(0, 1),
    st.floats(-0.5, 1.5),
    st.floats(-0.5, 1.5),
    st.floats(-0.5, 1.5),
    st.floats(-0.5, 1.5),
).map(list)


@given(
    rows=st.lists(row, max_size=30),
    width=st.integers(1, 4000),
    height=st.integers(1, 4000),
    threshold=st.floats(0, 1),
    top_k=st.one_of(st.none(), st.integers(0, 10)),
)
def test_decoded_boxes_are_inside_the_image_sorted_and_above_threshold(
    rows: list[list[float]], width: int, height: int, threshold: float, top_k: int | None
) -> None:
    boxes = decode_detections(
        {"prediction": rows}, image_size=(width, height), score_threshold=threshold, top_k=top_k
    )
    eligible = [r for r in rows if r[0] >= 0 and r[1] >= threshold]
    assert len(boxes) <= len(eligible)
    if top_k is not None:
        assert len(boxes) <= top_k
    scores = [b["confidence"] for b in boxes]
    assert scores == sorted(scores, reverse=True)
    for b in boxes:
        assert b["confidence"] >= threshold
        assert b["width"] > 0 and b["height"] > 0
        assert b["left"] >= -1e-9 and b["left"] + b["width"] <= width + 1e-6
        assert b["top"] >= -1e-9 and b["top"] + b["height"] <= height + 1e-6


@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_classification_is_a_permutation_sorted_by_probability(probs: list[float]) -> None:
    scores = decode_classification({"prediction": probs})
    assert sorted(s.class_id for s in scores) == list(range(len(probs)))
    assert [s.probability for s in scores] == sorted(probs, reverse=True)
    assert all(probs[s.class_id] == s.probability for s in scores)


def test_the_pytorch_classifier_answer() -> None:
    body = {
        "predictions": [
            {"class_id": 2, "label": "husky", "probability": 0.7},
            {"class_id": 0, "label": "akita", "probability": 0.2},
        ]
    }
    scores = decode_classification(json.dumps(body))
    assert [(s.class_id, s.label, s.probability) for s in scores] == [
        (2, "husky", 0.7),
        (0, "akita", 0.2),
    ]
    assert len(decode_classification(body, top_k=1)) == 1
    with pytest.raises(ValidationError, match=r"predictions\[0\]"):
        decode_classification({"predictions": [{"class_id": 1, "probability": 0.5}]})


@pytest.mark.parametrize(
    "body",
    [
        {"predictions": [{"class_id": math.inf, "label": "a", "probability": 0.5}]},
        {"predictions": [{"class_id": 0, "label": "a", "probability": math.nan}]},
        {"prediction": [10**400, 0.2]},
        {"prediction": [0.2, math.nan, 0.5]},
        '{"prediction": [0.2, NaN]}',  # what Python's json writes for a NaN
    ],
)
def test_malformed_numbers_are_refused_not_a_traceback(body: Any) -> None:
    """An answer decoded by the caller (``json.loads`` accepts NaN and Infinity) may hold them."""
    with pytest.raises(ValidationError, match="image classification response"):
        decode_classification(json.loads(body) if isinstance(body, str) else body)


def test_a_detection_row_too_large_for_a_float_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"prediction\[0\] holds a non-number"):
        decode_detections({"prediction": [[0, 0.9, 10**400, 0, 1, 1]]}, image_size=(10, 10))


def test_a_negative_top_k_is_refused_not_read_as_a_slice() -> None:
    """``top_k=-1`` used to drop the least likely class and return the rest."""
    with pytest.raises(ValidationError, match="top_k"):
        decode_classification([0.1, 0.5, 0.4], top_k=-1)
    with pytest.raises(ValidationError, match="top_k"):
        decode_detections({"prediction": [[0, 0.9, 0, 0, 1, 1]]}, image_size=(9, 9), top_k=-2)


@settings(deadline=None)  # two decodes per example; slow only on a loaded machine
@given(rows=st.lists(row, max_size=20), width=st.integers(1, 2000), height=st.integers(1, 2000))
def test_jumpstart_detections_decode_like_the_builtin_rows(
    rows: list[list[float]], width: int, height: int
) -> None:
    """JumpStart's columns, regrouped into built-in rows, give the same boxes."""
    jumpstart = {
        "normalized_boxes": [r[2:] for r in rows],
        "classes": [r[0] for r in rows],
        "scores": [r[1] for r in rows],
    }
    size = (width, height)
    assert decode_detections(jumpstart, image_size=size) == decode_detections(
        {"prediction": rows}, image_size=size
    )


def test_jumpstart_verbose_labels_name_the_boxes() -> None:
    body = {
        "normalized_boxes": [[0.1, 0.2, 0.5, 0.6]],
        "classes": [1.0],
        "scores": [0.8],
        "labels": ["person", "bicycle"],
    }
    [box] = decode_detections(json.dumps(body), image_size=(200, 100))
    assert (box["label"], box["left"], box["top"]) == ("bicycle", 20.0, 20.0)
    assert decode_detections(body, image_size=(200, 100), labels={1: "bike"})[0]["label"] == "bike"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"normalized_boxes": [[0, 0, 1, 1]]}, "needs classes and scores"),
        ({"normalized_boxes": [[0, 0, 1, 1]], "classes": [0], "scores": []}, "differ in length"),
        ({"normalized_boxes": [[0, 0, 1]], "classes": [0], "scores": [1]}, "not 6 numbers"),
        ({"boxes": []}, "normalized_boxes"),
    ],
)
def test_bad_jumpstart_detections(body: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        decode_detections(body, image_size=(10, 10))
