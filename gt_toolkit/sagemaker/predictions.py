"""Decode endpoint answers into Ground Truth's shapes (pure; no AWS here).

Three families of endpoints answer: the built-in algorithms, JumpStart models and the shipped
PyTorch classifier (``{"predictions": [{"class_id", "label", "probability"}, …]}``, its
``inference.py``). JumpStart detectors answer ``{"normalized_boxes": [[xmin, ymin, xmax, ymax],
…], "classes": […], "scores": […]}`` plus ``"labels"`` (names by class id) when asked with
``application/json;verbose``.

Object detection answers ``{"prediction": [[class_id, score, xmin, ymin, xmax, ymax], …]}``
with coordinates normalised to [0, 1], a float ``class_id`` (``-1`` for padding) and a fixed
number of candidates, so most rows are noise until filtered by score
(``docs/ground-truth-formats.md`` §6). :func:`decode_detections` turns that into the
pixel ``{label, left, top, width, height, confidence}`` boxes the rest of the toolkit uses
(consolidation, evaluation, pre-labels via
:func:`gt_toolkit.formats.detection_label.build_detection_label`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gt_toolkit.errors import ValidationError
from gt_toolkit.types import ConsolidatedBox, ImageSize

__all__ = [
    "ClassScore",
    "decode_classification",
    "decode_detections",
    "parse_endpoint_body",
]


def parse_endpoint_body(body: bytes | str | Mapping[str, Any] | Sequence[Any]) -> Any:
    """The JSON an endpoint returned (bytes, text, or already decoded).

    Raises:
        ValidationError: the body is not JSON.
    """
    if isinstance(body, bytes | bytearray | str):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            preview = bytes(body[:60]) if not isinstance(body, str) else body[:60]
            raise ValidationError(
                [f"the endpoint answered with something that is not JSON: {preview!r}"],
                what="endpoint response",
            ) from exc
    return body


def _label_for(class_id: int, labels: Sequence[str] | Mapping[int, str] | None) -> str:
    if labels is None:
        return str(class_id)
    if isinstance(labels, Mapping):
        return str(labels.get(class_id, class_id))
    return labels[class_id] if 0 <= class_id < len(labels) else str(class_id)


def _size(image_size: ImageSize | tuple[int, int]) -> tuple[float, float]:
    if isinstance(image_size, tuple):
        return float(image_size[0]), float(image_size[1])
    return float(image_size["width"]), float(image_size["height"])


def _detection_rows(data: Any) -> tuple[list[Any], list[str] | None]:
    """``[class_id, score, xmin, ymin, xmax, ymax]`` rows and any names the answer carries."""
    if isinstance(data, Mapping) and isinstance(data.get("prediction"), list):
        return data["prediction"], None
    if isinstance(data, Mapping) and isinstance(data.get("normalized_boxes"), list):
        boxes, classes, scores = data["normalized_boxes"], data.get("classes"), data.get("scores")
        if not (isinstance(classes, list) and isinstance(scores, list)):
            raise ValidationError(
                ["a JumpStart answer needs classes and scores beside normalized_boxes"],
                what="object detection response",
            )
        if not len(boxes) == len(classes) == len(scores):
            raise ValidationError(
                [
                    f"normalized_boxes ({len(boxes)}), classes ({len(classes)}) and scores "
                    f"({len(scores)}) differ in length"
                ],
                what="object detection response",
            )
        rows = [
            [c, sc, *box] if isinstance(box, list) else box
            for c, sc, box in zip(classes, scores, boxes, strict=True)
        ]
        names = data.get("labels")
        return rows, [str(n) for n in names] if isinstance(names, list) else None
    raise ValidationError(
        [
            'expected {"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]} or '
            'JumpStart\'s {"normalized_boxes": [...], "classes": [...], "scores": [...]}'
        ],
        what="object detection response",
    )


def decode_detections(
    body: bytes | str | Mapping[str, Any],
    *,
    image_size: ImageSize | tuple[int, int],
    labels: Sequence[str] | Mapping[int, str] | None = None,
    score_threshold: float = 0.2,
    top_k: int | None = None,
) -> list[ConsolidatedBox]:
    """Object-detection predictions as pixel boxes, best first.

    Rows with ``class_id < 0``, a score below ``score_threshold``, non-finite numbers or no
    area after clipping to the image are dropped; ``top_k`` keeps the best ``k`` of the rest.
    Reads the built-in answer and JumpStart's (whose ``labels`` name the classes when
    ``labels`` is not given).

    Args:
        image_size: the image's pixel size, as ``{"width", "height"}`` or ``(width, height)``.
        labels: class names by id (the training class map); unknown ids keep their number.

    Raises:
        ValidationError: the body is neither answer shape, or a row is not 6 numbers.

    Examples:
        >>> [box] = decode_detections('{"prediction": [[0.0, 0.9, 0.1, 0.2, 0.5, 0.6]]}',
        ...                           image_size=(200, 100), labels=["ball"])
        >>> box["label"], box["left"], box["top"], box["width"], box["height"]
        ('ball', 20.0, 20.0, 80.0, 40.0)
    """
    _check_top_k(top_k)
    rows, names = _detection_rows(parse_endpoint_body(body))
    labels = labels if labels is not None else names
    width, height = _size(image_size)
    if width <= 0 or height <= 0:
        raise ValidationError([f"image size must be positive, got {width} x {height}"])
    boxes: list[ConsolidatedBox] = []
    problems: list[str] = []
    for index, row in enumerate(rows):
        if not isinstance(row, list | tuple) or len(row) != 6:
            problems.append(f"prediction[{index}] is not 6 numbers: {str(row)[:60]}")
            continue
        try:
            class_id, score, x0, y0, x1, y1 = (float(v) for v in row)
        except (TypeError, ValueError, OverflowError):
            problems.append(f"prediction[{index}] holds a non-number: {str(row)[:60]}")
            continue
        if not all(math.isfinite(v) for v in (class_id, score, x0, y0, x1, y1)):
            continue
        if class_id < 0 or score < score_threshold:
            continue
        left, right = (min(max(v, 0.0), 1.0) * width for v in (min(x0, x1), max(x0, x1)))
        top, bottom = (min(max(v, 0.0), 1.0) * height for v in (min(y0, y1), max(y0, y1)))
        if right - left <= 0 or bottom - top <= 0:
            continue
        boxes.append(
            {
                "label": _label_for(int(class_id), labels),
                "left": left,
                "top": top,
                "width": right - left,
                "height": bottom - top,
                "confidence": score,
            }
        )
    if problems:
        raise ValidationError(problems, what="object detection response")
    boxes.sort(key=lambda b: b["confidence"], reverse=True)
    return boxes[:top_k] if top_k is not None else boxes


def _check_top_k(top_k: int | None) -> None:
    """Refuse a negative ``top_k``, which a slice would read as "all but the last few"."""
    if top_k is not None and top_k < 0:
        raise ValidationError([f"top_k must be 0 or more, got {top_k}"], what="decode request")


def _finite(values: list[float], what: str) -> list[float]:
    """``values`` when every one is a finite number (a NaN would sort anywhere)."""
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValidationError([f"a probability is not finite: {bad[0]}"], what=what)
    return values


@dataclass(frozen=True, slots=True)
class ClassScore:
    """One class and its probability."""

    class_id: int
    label: str
    probability: float


def decode_classification(
    body: bytes | str | Mapping[str, Any] | Sequence[Any],
    *,
    labels: Sequence[str] | Mapping[int, str] | None = None,
    top_k: int | None = None,
) -> list[ClassScore]:
    """Image-classification probabilities, most likely first.

    Accepts ``{"prediction": [p0, p1, …]}`` (built-in), a bare list, the verbose
    ``{"probabilities": […], "labels": […]}`` of JumpStart models (whose labels win), and the
    shipped PyTorch classifier's top-k ``{"predictions": [{"class_id", "label",
    "probability"}, …]}`` (its labels win too).

    Raises:
        ValidationError: no list of numbers to read.
    """
    _check_top_k(top_k)
    data = parse_endpoint_body(body)
    if isinstance(data, Mapping) and isinstance(data.get("predictions"), list):
        return _top_k_answer(data["predictions"], top_k)
    probabilities: Any = data
    if isinstance(data, Mapping):
        probabilities = data.get("prediction", data.get("probabilities"))
        verbose = data.get("labels")
        if isinstance(verbose, list) and labels is None:
            labels = [str(v) for v in verbose]
    if (
        isinstance(probabilities, list)
        and len(probabilities) == 1
        and isinstance(probabilities[0], list)
    ):
        probabilities = probabilities[0]  # batch of one
    if not isinstance(probabilities, list) or not probabilities:
        raise ValidationError(
            ['expected {"prediction": [p0, p1, ...]} with one probability per class'],
            what="image classification response",
        )
    try:
        values = [float(p) for p in probabilities]
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(
            [f"a probability is not a number: {str(probabilities)[:80]}"],
            what="image classification response",
        ) from exc
    _finite(values, "image classification response")
    scores = [ClassScore(i, _label_for(i, labels), p) for i, p in enumerate(values)]
    scores.sort(key=lambda s: s.probability, reverse=True)
    return scores[:top_k] if top_k is not None else scores


def _top_k_answer(rows: list[Any], top_k: int | None) -> list[ClassScore]:
    """The PyTorch classifier's ``[{"class_id", "label", "probability"}, …]``, best first."""
    scores: list[ClassScore] = []
    for index, row in enumerate(rows):
        try:
            scores.append(
                ClassScore(int(row["class_id"]), str(row["label"]), float(row["probability"]))
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValidationError(
                [f"predictions[{index}] is not {{class_id, label, probability}}: {str(row)[:80]}"],
                what="image classification response",
            ) from exc
    _finite([s.probability for s in scores], "image classification response")
    scores.sort(key=lambda s: s.probability, reverse=True)
    return scores[:top_k] if top_k is not None else scores
