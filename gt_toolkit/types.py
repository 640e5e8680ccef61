"""Typed shapes of the AWS wire JSON the toolkit reads and writes.

They cost nothing at run time and let mypy check the dicts handed back to AWS. Shapes follow
``docs/ground-truth-formats.md``; keys keep AWS spelling, which is why some are declared
with the functional ``TypedDict`` syntax (``-`` is not valid in a class body).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = [
    "ConsolidatedBox",
    "DetectionLabel",
    "DetectionMetadata",
    "ImageSize",
    "OutputAnnotation",
    "WorkerBox",
]


class WorkerBox(TypedDict):
    """One box drawn by one worker: the crowd-bounding-box output shape (pixels)."""

    label: str
    left: float
    top: float
    width: float
    height: float


class ConsolidatedBox(TypedDict):
    """One consolidated box with its confidence in [0, 1]."""

    label: str
    left: float
    top: float
    width: float
    height: float
    confidence: float


class ImageSize(TypedDict):
    """``image_size[0]`` of a bounding-box label."""

    width: int
    height: int
    depth: NotRequired[int]


class OutputAnnotation(TypedDict):
    """One box of a bounding-box output label in pixels.

    Ground Truth writes integers; boxes imported from other tools keep their fractions.
    """

    class_id: int
    left: float
    top: float
    width: float
    height: float


class DetectionLabel(TypedDict):
    """The value of a bounding-box label attribute in an output manifest."""

    image_size: list[ImageSize]
    annotations: list[OutputAnnotation]


DetectionMetadata = TypedDict(
    "DetectionMetadata",
    {
        "objects": list[dict[str, float]],
        "class-map": dict[str, str],
        "type": str,
        "human-annotated": str,
        "creation-date": str,
        "job-name": str,
        "failure-reason": NotRequired[str],
        "adjustment-status": NotRequired[str],
        "worker-answers": NotRequired[list[Any]],
    },
)
"""The ``<attr>-metadata`` partner of a bounding-box label."""
