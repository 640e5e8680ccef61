"""``jumpstart-od``: ``images/`` plus ``annotations.json`` for JumpStart/TensorFlow detection.

JumpStart's object detection fine-tuning takes ``bbox`` as ``[xmin, ymin, xmax, ymax]`` in
pixels, not COCO's ``[x, y, w, h]`` (docs/other-tools.md); ``images`` entries carry ``file_name``,
``width``, ``height`` and ``id``. ``categories`` is added for the names.
"""

from __future__ import annotations

import tempfile

import orjson

from gt_toolkit.convert.images import ImageNamer, copier_for
from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.pixels import pixel
from gt_toolkit.convert.records import sized_detections
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.formats.coco_stream import close_coco
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location

__all__ = ["to_jumpstart_od"]


def to_jumpstart_od(
    source: Location, out: StagedOutput, options: ConvertOptions
) -> ConversionResult:
    """Write ``out/images/*`` (copied unless ``copy_images`` is False) and ``annotations.json``.

    Streamed as ``coco`` is: images go to the file as they come and annotations to a
    temporary file appended after them, so memory does not grow with the boxes (holding
    both lists took 360 MB for 100k images of 5 boxes).
    """
    stats = OutputStats()
    copy = options.copy_images is not False
    dumps = orjson.dumps
    image_id = boxes = 0
    ann_loc = out.location("annotations.json")
    with (
        tempfile.TemporaryFile() as anns,
        copier_for(options) as copier,
        out.open(ann_loc) as fh,
    ):
        fh.write(b'{"images":[')
        for rec, size, name in sized_detections(
            source,
            options,
            stats=stats,
            copier=copier,
            out=out,
            desc="jumpstart-od",
            namer=ImageNamer(written=copy),  # no copies: file_name is the image's own name
        ):
            image = {"file_name": name, "width": size[0], "height": size[1], "id": image_id}
            fh.write((b"," if image_id else b"") + dumps(image))
            for class_id, b in zip(rec.class_ids, rec.boxes, strict=True):
                xyxy = [
                    pixel(b.left),
                    pixel(b.top),
                    pixel(b.left + b.width),
                    pixel(b.top + b.height),
                ]
                ann = {"image_id": image_id, "bbox": xyxy, "category_id": class_id}
                anns.write((b"," if boxes else b"") + dumps(ann))
                boxes += 1
            if copy:
                copier.copy(out, rec.source_ref, out.location("images", name))
            image_id += 1
        categories = [
            {"id": cid, "name": stats.class_map.name_of(cid)}
            for cid in sorted(stats.class_map.names)
        ]
        close_coco(fh, anns, categories)
    outputs = {"annotations": ann_loc}
    if copy:
        outputs["images"] = out.location("images")
    return ConversionResult(
        target="jumpstart-od",
        stats=stats,
        outputs=outputs,
        extra={"images": image_id, "annotations": boxes},
    )
