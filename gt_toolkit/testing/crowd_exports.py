"""Write one crowd as each labeling tool exports it, for samples, tests and benchmarks.

The inverse of the readers in :mod:`gt_toolkit.formats.crowd`: the same
:class:`~gt_toolkit.formats.crowd.CrowdImage` values expressed as a Label Studio JSON or
JSON_MIN export, CVAT for images 1.1 job exports (one per annotator, as consensus replica
jobs are exported) and COCO with ``rater_id``/``rater_list``, so one simulated crowd can be
read back through every source. Shapes in ``docs/crowd-sources.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.crowd import CrowdImage

__all__ = [
    "coco_per_annotator",
    "coco_with_raters",
    "cvat_job_exports",
    "label_studio_export",
]

_DATE = "2026-11-24T09:00:00.000000Z"


def _size(image: CrowdImage) -> tuple[int, int]:
    if image.image_size is None:
        raise ValidationError([f"{image.key}: every tool's export records the image size"])
    return image.image_size["width"], image.image_size["height"]


def _annotators(images: Sequence[CrowdImage]) -> list[str]:
    seen: dict[str, None] = {}
    for image in images:
        seen.update(dict.fromkeys(image.annotators))
    return list(seen)


def _name(key: str) -> str:
    """The file name a tool shows for an image reference (a relative path stays whole)."""
    return key.rsplit("/", 1)[-1] if "://" in key else key


def label_studio_export(
    images: Iterable[CrowdImage], *, data_key: str = "image", minimal: bool = False
) -> list[dict[str, Any]]:
    """A Label Studio JSON export (``minimal``: JSON_MIN), annotators by email.

    Annotator ``name`` becomes ``completed_by: {"id": n, "email": name}`` (JSON_MIN:
    ``"annotator": name``); boxes are in percent of ``original_width``/``original_height``.
    """
    images = list(images)
    ids = {name: n for n, name in enumerate(_annotators(images), start=1)}
    tasks: list[dict[str, Any]] = []
    annotation_id = 0
    for task_id, image in enumerate(images, start=1):
        width, height = _size(image)
        annotations = []
        for name, boxes in zip(image.annotators, image.boxes, strict=True):
            annotation_id += 1
            results = [
                {
                    "id": f"r{annotation_id}-{k}",
                    "type": "rectanglelabels",
                    "from_name": "label",
                    "to_name": "image",
                    "original_width": width,
                    "original_height": height,
                    "image_rotation": 0,
                    "value": {
                        "x": box["left"] / width * 100,
                        "y": box["top"] / height * 100,
                        "width": box["width"] / width * 100,
                        "height": box["height"] / height * 100,
                        "rotation": 0,
                        "rectanglelabels": [box["label"]],
                    },
                }
                for k, box in enumerate(boxes)
            ]
            annotations.append(
                {
                    "id": annotation_id,
                    "completed_by": {"id": ids[name], "email": name},
                    "result": results,
                    "was_cancelled": False,
                    "ground_truth": False,
                    "created_at": _DATE,
                    "updated_at": _DATE,
                    "lead_time": 10.0 + len(results),
                    "task": task_id,
                }
            )
        tasks.append(
            {
                "id": task_id,
                "data": {data_key: image.key},
                "annotations": annotations,
                "predictions": [],
                "created_at": _DATE,
                "updated_at": _DATE,
                "project": 1,
            }
        )
    return [record for task in tasks for record in _minimal(task, data_key)] if minimal else tasks


def _minimal(task: dict[str, Any], data_key: str) -> list[dict[str, Any]]:
    """JSON_MIN: one record per annotation, the task's data fields at the top."""
    records = []
    for ann in task["annotations"]:
        regions = [
            {
                **r["value"],
                "original_width": r["original_width"],
                "original_height": r["original_height"],
            }
            for r in ann["result"]
        ]
        record: dict[str, Any] = {**task["data"], "id": task["id"]}
        if regions:
            record["label"] = regions
        record.update(
            annotator=ann["completed_by"]["email"],
            annotation_id=ann["id"],
            created_at=ann["created_at"],
            updated_at=ann["updated_at"],
            lead_time=ann["lead_time"],
        )
        records.append(record)
    return records


def cvat_job_exports(images: Iterable[CrowdImage], *, labels: Sequence[str] = ()) -> dict[str, str]:
    """One CVAT for images 1.1 job export per annotator (the job's assignee), as XML text.

    Each annotator's job holds the images they saw (an empty ``<image>`` when they drew
    nothing), numbered as frames of the task; ``labels`` adds to the meta's label list.
    """
    images = list(images)
    used = dict.fromkeys(labels)
    for image in images:
        for boxes in image.boxes:
            used.update(dict.fromkeys(b["label"] for b in boxes))
    out = {}
    for job_id, name in enumerate(_annotators(images), start=1):
        lines = [
            '<?xml version="1.0" encoding="utf-8"?>',
            "<annotations>",
            "  <version>1.1</version>",
            "  <meta>",
            "    <job>",
            f"      <id>{job_id}</id>",
            f"      <size>{len(images)}</size>",
            "      <mode>annotation</mode>",
            "      <overlap>0</overlap>",
            "      <start_frame>0</start_frame>",
            f"      <stop_frame>{len(images) - 1}</stop_frame>",
            "      <assignee>",
            f"        <username>{_text(name)}</username>",
            f"        <email>{_text(name)}@example.com</email>",
            "      </assignee>",
            "      <labels>",
            *(
                f"        <label><name>{_text(label)}</name><type>rectangle</type></label>"
                for label in used
            ),
            "      </labels>",
            "    </job>",
            f"    <dumped>{_DATE}</dumped>",
            "  </meta>",
        ]
        for frame, image in enumerate(images):
            if name not in image.annotators:
                continue
            width, height = _size(image)
            boxes = image.boxes[image.annotators.index(name)]
            attrs = (
                f'id="{frame}" name={quoteattr(_name(image.key))} width="{width}" height="{height}"'
            )
            lines.append(f"  <image {attrs}>" if boxes else f"  <image {attrs} />")
            for box in boxes:
                x1, y1 = box["left"], box["top"]
                x2, y2 = x1 + box["width"], y1 + box["height"]
                lines.append(
                    f'    <box label={quoteattr(box["label"])} source="manual" occluded="0" '
                    f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0">'
                    "\n    </box>"
                )
            if boxes:
                lines.append("  </image>")
        lines.append("</annotations>")
        out[name] = "\n".join(lines) + "\n"
    return out


def _text(value: str) -> str:
    return quoteattr(value)[1:-1]


def coco_with_raters(images: Iterable[CrowdImage]) -> dict[str, Any]:
    """One COCO file: ``rater_list`` on each image, ``rater_id`` on each annotation."""
    images = list(images)
    categories = _categories(images)
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, image in enumerate(images, start=1):
        width, height = _size(image)
        coco_images.append(
            {
                "id": image_id,
                "file_name": _name(image.key),
                "width": width,
                "height": height,
                "rater_list": list(image.annotators),
            }
        )
        for name, boxes in zip(image.annotators, image.boxes, strict=True):
            for box in boxes:
                annotations.append(
                    _coco_box(box, len(annotations) + 1, image_id, categories) | {"rater_id": name}
                )
    return {
        "images": coco_images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for n, i in categories.items()],
    }


def coco_per_annotator(images: Iterable[CrowdImage]) -> dict[str, dict[str, Any]]:
    """One plain COCO file per annotator, listing the images they saw.

    Each file numbers its images and categories its own way (reversed for every other
    annotator), as independent exports do: only file names and category names match.
    """
    images = list(images)
    out = {}
    for n, name in enumerate(_annotators(images)):
        seen = [i for i in images if name in i.annotators]
        if n % 2:
            seen = seen[::-1]
        categories = _categories(seen if n % 2 == 0 else images[::-1])
        coco_images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for image_id, image in enumerate(seen, start=10 * n + 1):
            width, height = _size(image)
            coco_images.append(
                {"id": image_id, "file_name": _name(image.key), "width": width, "height": height}
            )
            for box in image.boxes[image.annotators.index(name)]:
                annotations.append(_coco_box(box, len(annotations) + 1, image_id, categories))
        out[name] = {
            "images": coco_images,
            "annotations": annotations,
            "categories": [{"id": i, "name": c} for c, i in categories.items()],
        }
    return out


def _categories(images: Sequence[CrowdImage]) -> dict[str, int]:
    names: dict[str, int] = {}
    for image in images:
        for boxes in image.boxes:
            for box in boxes:
                names.setdefault(box["label"], len(names) + 1)
    return names


def _coco_box(box: Any, ann_id: int, image_id: int, categories: dict[str, int]) -> dict[str, Any]:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": categories[box["label"]],
        "bbox": [box["left"], box["top"], box["width"], box["height"]],
        "area": box["width"] * box["height"],
        "iscrowd": 0,
    }
