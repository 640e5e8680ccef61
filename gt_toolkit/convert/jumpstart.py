"""``jumpstart-od``: ``images/`` plus ``annotations.json`` for JumpStart/TensorFlow detection.

JumpStart's object detection fine-tuning takes ``bbox`` as ``[xmin, ymin, xmax, ymax]`` in
pixels, not COCO's ``[x, y, w, h]`` (docs/other-tools.md); ``images`` entries carry ``file_name``,
``width``, ``height`` and ``id``. ``categories`` is added for the names.
"""

from __future__ import annotations

from typing import Any

from gt_toolkit.convert.images import copier_for
from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.pixels import pixel
from gt_toolkit.convert.records import sized_detections
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location

__all__ = ["to_jumpstart_od"]


def to_jumpstart_od(
    source: Location, out: StagedOutput, options: ConvertOptions
) -> ConversionResult:
    """Write ``out/images/*`` (copied unless ``copy_images`` is False) and ``annotations.json``."""
    stats = OutputStats()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    copy = options.copy_images is not False
    with copier_for(options) as copier:
        for rec, size, name in sized_detections(
            source, options, stats=stats, copier=copier, out=out, desc="jumpstart-od"
        ):
            image_id = len(images)
            images.append({"file_name": name, "width": size[0], "height": size[1], "id": image_id})
            annotations.extend(
                {
                    "image_id": image_id,
                    "bbox": [
                        pixel(b.left),
                        pixel(b.top),
                        pixel(b.left + b.width),
                        pixel(b.top + b.height),
                    ],
                    "category_id": class_id,
                }
                for class_id, b in zip(rec.class_ids, rec.boxes, strict=True)
            )
            if copy:
                copier.copy(out, rec.source_ref, out.location("images", name))
    categories = [
        {"id": cid, "name": stats.class_map.name_of(cid)} for cid in sorted(stats.class_map.names)
    ]
    ann_loc = out.location("annotations.json")
    out.write_json(
        ann_loc, {"images": images, "annotations": annotations, "categories": categories}
    )
    outputs = {"annotations": ann_loc}
    if copy:
        outputs["images"] = out.location("images")
    return ConversionResult(
        target="jumpstart-od",
        stats=stats,
        outputs=outputs,
        extra={"images": len(images), "annotations": len(annotations)},
    )
