"""``coco``: a COCO detection file, streamed, that pycocotools loads.

Categories are ``class_id + 1`` (COCO tools reserve 0 for background) with the Ground Truth
names; boxes are ``[x, y, w, h]`` in pixels with ``area`` and a box polygon as
``segmentation``; each image also keeps its ``source_ref`` (an extra key COCO readers ignore,
used by ``from-coco`` to restore it). Images and annotations are written as they stream,
so memory stays bounded by the class map and the image-name table.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import orjson

from gt_toolkit.convert._common import (
    ConversionResult,
    ConvertOptions,
    copier_for,
    num,
    out_path,
    sized_detections,
)
from gt_toolkit.formats.detection_label import ScoredBox
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location, atomic_output

__all__ = ["coco_annotation", "to_coco"]


def coco_annotation(box: ScoredBox, *, class_id: int, ann_id: int, image_id: int) -> dict[str, Any]:
    """One COCO annotation for a Ground Truth box (category = class_id + 1)."""
    x0, y0, w, h = num(box.left), num(box.top), num(box.width), num(box.height)
    x1, y1 = num(box.left + box.width), num(box.top + box.height)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": class_id + 1,
        "bbox": [x0, y0, w, h],
        "area": num(box.width * box.height),
        "iscrowd": 0,
        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
    }


def _targets(out: Location) -> tuple[str, str]:
    text = os.fspath(out)
    if text.endswith(".json"):
        parent = text.rsplit("/", 1)[0] if "/" in text else "."
        return text, parent
    return out_path(out, "annotations.json"), text


def to_coco(source: Location, out: Location, options: ConvertOptions) -> ConversionResult:
    """Write a COCO file at ``out`` (a ``.json`` path, or ``out/annotations.json``).

    With ``copy_images`` the images go to ``images/`` beside it.
    """
    stats = OutputStats()
    json_loc, folder = _targets(out)
    copy = bool(options.copy_images)
    dumps = orjson.dumps
    image_id = ann_id = 0
    with (
        tempfile.TemporaryFile() as anns,
        copier_for(options) as copier,
        atomic_output(json_loc, store=options.store) as fh,
    ):
        fh.write(b'{"info":{"description":"Ground Truth output converted by gt-toolkit"},')
        fh.write(b'"licenses":[],"images":[')
        for rec, size, name in sized_detections(
            source, options, stats=stats, copier=copier, desc="coco"
        ):
            image_id += 1
            image = {
                "id": image_id,
                "file_name": name,
                "width": size[0],
                "height": size[1],
                "source_ref": rec.source_ref,
            }
            fh.write((b"," if image_id > 1 else b"") + dumps(image))
            for class_id, box in zip(rec.class_ids, rec.boxes, strict=True):
                ann_id += 1
                ann = coco_annotation(box, class_id=class_id, ann_id=ann_id, image_id=image_id)
                anns.write((b"," if ann_id > 1 else b"") + dumps(ann))
            if copy:
                copier.submit(rec.source_ref, out_path(folder, "images", name))
        fh.write(b'],"annotations":[')
        anns.seek(0)
        while chunk := anns.read(1 << 20):
            fh.write(chunk)
        categories = [
            {"id": cid + 1, "name": stats.class_map.name_of(cid), "supercategory": "none"}
            for cid in sorted(stats.class_map.names)
        ]
        fh.write(b'],"categories":' + dumps(categories) + b"}\n")
    outputs = {"coco": json_loc}
    if copy:
        outputs["images"] = out_path(folder, "images")
    return ConversionResult(
        target="coco",
        stats=stats,
        outputs=outputs,
        extra={"images": image_id, "annotations": ann_id},
        image_errors=copier.errors,
    )
