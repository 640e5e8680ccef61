"""``od-json``: built-in object detection in File mode, one JSON per image.

Channels ``train``/``validation`` hold images and ``train_annotation``/
``validation_annotation`` hold ``<stem>.json`` files with ``file``, ``image_size``,
``annotations`` (Ground Truth's own box layout) and ``categories``
(``docs/ground-truth-formats.md`` §6).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import orjson

from gt_toolkit.convert.images import copier_for
from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.pixels import pixel
from gt_toolkit.convert.records import sized_detections
from gt_toolkit.convert.splits import planned_splitter
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.formats.output_manifest import DetectionRecord, OutputStats
from gt_toolkit.storage.files import Location

__all__ = ["to_od_json"]

_CHANNELS = ("train", "validation", "train_annotation", "validation_annotation")


def _document(
    rec: DetectionRecord, size: tuple[int, int, int], name: str, stats: OutputStats
) -> dict[str, Any]:
    """One image's annotation file."""
    return {
        "file": name,
        "image_size": [{"width": size[0], "height": size[1], "depth": size[2]}],
        "annotations": [
            {
                "class_id": class_id,
                "left": pixel(b.left),
                "top": pixel(b.top),
                "width": pixel(b.width),
                "height": pixel(b.height),
            }
            for class_id, b in zip(rec.class_ids, rec.boxes, strict=True)
        ],
        "categories": [
            {"class_id": cid, "name": stats.class_map.name_of(cid)}
            for cid in sorted(set(rec.class_ids))
        ],
    }


def to_od_json(source: Location, out: StagedOutput, options: ConvertOptions) -> ConversionResult:
    """Write the four File-mode channel folders under ``out``."""
    stats = OutputStats()
    splitter = planned_splitter(source, options)
    copy = options.copy_images is not False
    counts = {"train": 0, "validation": 0}
    with copier_for(options) as copier:
        for rec, size, name in sized_detections(
            source, options, stats=stats, copier=copier, out=out, desc="od-json"
        ):
            split = splitter(rec)
            counts[split] += 1
            stem = PurePosixPath(name).stem
            doc = orjson.dumps(_document(rec, size, name, stats))
            copier.submit_write(
                out.staged(out.location(f"{split}_annotation", f"{stem}.json")), doc
            )
            if copy:
                copier.copy(out, rec.source_ref, out.location(split, name))
    return ConversionResult(
        target="od-json",
        stats=stats,
        outputs={c: out.location(c) for c in _CHANNELS if copy or "_" in c},
        extra={"images_per_split": counts},
    )
