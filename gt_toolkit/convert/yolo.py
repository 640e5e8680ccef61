"""``yolo``: Ultralytics/YOLOv5-style labels, split into train and val.

Layout: ``labels/{train,val}/<stem>.txt`` (one ``class cx cy w h`` line per box, normalised
to [0, 1]; an empty file is a negative image), ``images/{train,val}/`` when images are copied,
``data.yaml`` and ``classes.txt`` with the names, and ``sources.jsonl`` mapping each stem back
to its ``source-ref`` (``from-yolo`` uses it). The YOLO class index is the Ground Truth
``class_id``, so label files stream out without a second pass; unused ids get placeholder
names.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import orjson

from gt_toolkit.convert._common import (
    ConversionResult,
    ConvertOptions,
    copier_for,
    out_path,
    planned_splitter,
    sized_detections,
)
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location, atomic_output, write_bytes

__all__ = ["to_yolo", "yolo_lines"]

_SPLIT_DIR = {"train": "train", "validation": "val"}


def yolo_lines(
    boxes: list[tuple[int, float, float, float, float]], width: int, height: int
) -> list[str]:
    """``class cx cy w h`` lines, normalised by the image size, 6 decimals."""
    out = []
    for class_id, left, top, w, h in boxes:
        cx, cy = (left + w / 2) / width, (top + h / 2) / height
        out.append(f"{class_id} {cx:.6f} {cy:.6f} {w / width:.6f} {h / height:.6f}")
    return out


def to_yolo(source: Location, out: Location, options: ConvertOptions) -> ConversionResult:
    """Write a YOLO dataset folder at ``out``."""
    stats = OutputStats()
    splitter = planned_splitter(source, options)
    counts = {"train": 0, "validation": 0}
    with (
        copier_for(options) as copier,
        atomic_output(out_path(out, "sources.jsonl"), store=options.store) as sources,
    ):
        for rec, size, name in sized_detections(
            source, options, stats=stats, copier=copier, desc="yolo"
        ):
            split = splitter(rec)
            counts[split] += 1
            stem = PurePosixPath(name).stem
            folder = _SPLIT_DIR[split]
            lines = yolo_lines(
                [
                    (class_id, b.left, b.top, b.width, b.height)
                    for class_id, b in zip(rec.class_ids, rec.boxes, strict=True)
                ],
                *size[:2],
            )
            body = "".join(line + "\n" for line in lines).encode()
            copier.submit_write(out_path(out, "labels", folder, f"{stem}.txt"), body)
            sources.write(
                orjson.dumps({"stem": f"{folder}/{stem}", "source-ref": rec.source_ref}) + b"\n"
            )
            if options.copy_images:
                copier.submit(rec.source_ref, out_path(out, "images", folder, name))
    names = _names(stats)
    yaml = ["path: .", "train: images/train", "val: images/val", "names:"]
    yaml += [f"  {i}: {orjson.dumps(n).decode()}" for i, n in enumerate(names)]
    write_bytes(out_path(out, "data.yaml"), ("\n".join(yaml) + "\n").encode(), store=options.store)
    write_bytes(
        out_path(out, "classes.txt"), "".join(n + "\n" for n in names).encode(), store=options.store
    )
    return ConversionResult(
        target="yolo",
        stats=stats,
        outputs={"dataset": str(out), "data.yaml": out_path(out, "data.yaml")},
        extra={"images_per_split": counts, "names": names},
        image_errors=copier.errors,
    )


def _names(stats: OutputStats) -> list[str]:
    ids = stats.class_map.names
    top = max(ids) if ids else -1
    return [ids.get(i) or f"class_{i}" for i in range(top + 1)]
