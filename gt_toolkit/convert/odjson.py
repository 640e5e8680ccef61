"""``od-json``: built-in object detection in File mode, one JSON per image.

Channels ``train``/``validation`` hold images and ``train_annotation``/
``validation_annotation`` hold ``<stem>.json`` files with ``file``, ``image_size``,
``annotations`` (Ground Truth's own box layout) and ``categories``
(``docs/ground-truth-formats.md`` §6).
"""

from __future__ import annotations

from pathlib import PurePosixPath

import orjson

from gt_toolkit.convert._common import (
    ConversionResult,
    ConvertOptions,
    copier_for,
    num,
    out_path,
    planned_splitter,
    sized_detections,
)
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location

__all__ = ["to_od_json"]


def to_od_json(source: Location, out: Location, options: ConvertOptions) -> ConversionResult:
    """Write the four File-mode channel folders under ``out``."""
    stats = OutputStats()
    splitter = planned_splitter(source, options)
    copy = options.copy_images is not False
    counts = {"train": 0, "validation": 0}
    with copier_for(options) as copier:
        for rec, size, name in sized_detections(
            source, options, stats=stats, copier=copier, desc="od-json"
        ):
            split = splitter(rec)
            counts[split] += 1
            doc = {
                "file": name,
                "image_size": [{"width": size[0], "height": size[1], "depth": size[2]}],
                "annotations": [
                    {
                        "class_id": class_id,
                        "left": num(b.left),
                        "top": num(b.top),
                        "width": num(b.width),
                        "height": num(b.height),
                    }
                    for class_id, b in zip(rec.class_ids, rec.boxes, strict=True)
                ],
                "categories": [
                    {"class_id": cid, "name": stats.class_map.name_of(cid)}
                    for cid in sorted(set(rec.class_ids))
                ],
            }
            stem = PurePosixPath(name).stem
            copier.submit_write(
                out_path(out, f"{split}_annotation", f"{stem}.json"), orjson.dumps(doc)
            )
            if copy:
                copier.submit(rec.source_ref, out_path(out, split, name))
    return ConversionResult(
        target="od-json",
        stats=stats,
        outputs={
            c: out_path(out, c)
            for c in ("train", "validation", "train_annotation", "validation_annotation")
        },
        extra={"images_per_split": counts},
        image_errors=copier.errors,
    )
