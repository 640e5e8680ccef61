"""``coco``: a COCO detection file, streamed, that pycocotools and datumaro load.

Categories are ``class_id + 1`` (COCO tools reserve 0 for background) with the Ground Truth
names; boxes are ``[x, y, w, h]`` in pixels with ``area`` and an empty ``segmentation`` (a box
is not a mask: a box-shaped polygon there made datumaro read every box twice, once as a
polygon); each image also keeps its ``source_ref`` (an extra key COCO readers ignore, used by
``from-coco`` to restore it). Images and annotations are written as they stream,
so memory stays bounded by the class map and the image-name table.

A folder output takes the layout datumaro and most COCO tools import:
``annotations/instances_default.json`` and, with ``copy_images``, ``images/default/``
(``default`` is the subset name datumaro gives a dataset without splits). A ``.json`` output
is that one file, with ``images/`` beside it.
"""

from __future__ import annotations

import tempfile
from typing import IO, Any

import orjson

from gt_toolkit.convert.images import ImageCopier, ImageNamer, copier_for
from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.pixels import pixel
from gt_toolkit.convert.records import sized_detections
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.formats.coco_stream import close_coco
from gt_toolkit.formats.detection_label import ScoredBox
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location, join_location

__all__ = ["coco_annotation", "to_coco"]

SUBSET = "default"


def coco_annotation(box: ScoredBox, *, class_id: int, ann_id: int, image_id: int) -> dict[str, Any]:
    """One COCO annotation for a Ground Truth box (category = class_id + 1)."""
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": class_id + 1,
        "bbox": [pixel(box.left), pixel(box.top), pixel(box.width), pixel(box.height)],
        "area": pixel(box.width * box.height),
        "iscrowd": 0,
        "segmentation": [],
    }


def _layout(out: StagedOutput) -> tuple[str, str]:
    """The annotation file and the images folder for ``out``."""
    if out.out.endswith(".json"):
        return out.out, out.beside("images")
    return (
        out.location("annotations", f"instances_{SUBSET}.json"),
        out.location("images", SUBSET),
    )


def to_coco(source: Location, out: StagedOutput, options: ConvertOptions) -> ConversionResult:
    """Write a COCO file at ``out`` (see the module docstring for the layout)."""
    stats = OutputStats()
    json_loc, images = _layout(out)
    copy = images if options.copy_images else None
    with (
        tempfile.TemporaryFile() as anns,
        copier_for(options) as copier,
        out.open(json_loc) as fh,
    ):
        fh.write(b'{"info":{"description":"Ground Truth output converted by gt-toolkit"},')
        fh.write(b'"licenses":[],"images":[')
        counts = _write_images(source, out, options, stats, copier, fh, anns, copy)
        categories = [
            {"id": cid + 1, "name": stats.class_map.name_of(cid), "supercategory": "none"}
            for cid in sorted(stats.class_map.names)
        ]
        close_coco(fh, anns, categories)
    outputs = {"coco": json_loc}
    if copy:
        outputs["images"] = images
    return ConversionResult(
        target="coco",
        stats=stats,
        outputs=outputs,
        extra={"images": counts[0], "annotations": counts[1]},
    )


def _write_images(
    source: Location,
    out: StagedOutput,
    options: ConvertOptions,
    stats: OutputStats,
    copier: ImageCopier,
    fh: IO[bytes],
    anns: IO[bytes],
    images: str | None,
) -> tuple[int, int]:
    """Stream the ``images`` entries to ``fh`` and the annotations to ``anns``."""
    dumps = orjson.dumps
    image_id = ann_id = 0
    # without --copy-images no file is written: file_name is the image's own name, long or
    # Windows-reserved, the one its reader finds (only a clash is hashed: ImageNamer)
    namer = ImageNamer(written=images is not None)
    for rec, size, name in sized_detections(
        source, options, stats=stats, copier=copier, out=out, desc="coco", namer=namer
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
        if images is not None:
            copier.copy(out, rec.source_ref, join_location(images, name))
    return image_id, ann_id
