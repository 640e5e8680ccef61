"""Several annotators' boxes from any labeling tool, one image at a time.

Every source (a Ground Truth job, Label Studio, CVAT, COCO with raters, a folder of
per-annotator COCO files) is read into the same :class:`CrowdImage`, so consolidation,
agreement and worker models never know which tool the labels came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from gt_toolkit.types import ImageSize, WorkerBox

__all__ = ["CrowdImage", "CrowdSourceKind", "anonymous_worker", "is_anonymous_worker"]

_ANONYMOUS = re.compile(r"anonymous-object\d+-\d+")


def anonymous_worker(object_id: int, index: int) -> str:
    """The name of a Ground Truth answer without a ``workerId``: ``anonymous-object<id>-<i>``.

    One name per answer of one object (its ``datasetObjectId``): never pooled with other
    objects' unknown answers. By the id, which ``consolidate`` and ``review`` both know, not
    by a manifest line, which was the job manifest's in one and the output manifest's in the
    other. The name means nothing outside its job: object 4 of another job is another image
    (:func:`is_anonymous_worker`).
    """
    return f"anonymous-object{object_id}-{index}"


def is_anonymous_worker(name: str) -> bool:
    """Whether ``name`` is one :func:`anonymous_worker` made: no person a saved model knows.

    A worker model leaves such names out of the table it saves and out of one it reads:
    applied to another job, ``anonymous-object4-0`` would take the skills fitted on this
    job's object 4 for whoever answered that job's object 4 without an id.
    """
    return _ANONYMOUS.fullmatch(name) is not None


class CrowdSourceKind(StrEnum):
    """Every kind of crowd source (the values are what ``--from`` takes).

    Shapes in ``docs/crowd-sources.md``; :func:`gt_toolkit.formats.crowd.sources.open_crowd_source`
    opens each.
    """

    GT_JOB = "gt-job"
    ANSWERS_FOLDER = "answers-folder"
    LABEL_STUDIO = "label-studio"
    CVAT = "cvat"
    COCO_RATERS = "coco-raters"
    COCO_PER_ANNOTATOR = "coco-per-annotator"


@dataclass(frozen=True, slots=True, kw_only=True)
class CrowdImage:
    """One image and what each annotator who saw it drew there.

    ``annotators`` lists everyone who saw the image, including those who drew nothing (their
    list in ``boxes`` is empty): a silent annotator is evidence that there is nothing to find,
    which a tool export that only lists boxes would lose. ``boxes[i]`` belongs to
    ``annotators[i]``; boxes are in pixels, in the engine's ``WorkerBox`` shape.
    """

    key: str
    """The image's identity: a ``source-ref`` (``s3://...``) or the tool's file name."""
    image_size: ImageSize | None
    annotators: tuple[str, ...]
    boxes: tuple[list[WorkerBox], ...]
