"""``from-coco`` and ``from-yolo``: boxes from elsewhere as a Ground Truth prior label.

The result is an *input* manifest whose lines carry the boxes as a bounding-box label
attribute plus ``-metadata`` (the shape Ground Truth itself writes), ready for an adjustment
job or for the pre-annotation Lambda to show as ``initialValue``. Class ids follow the
source's category order (COCO: by category id; YOLO: by index), which is the
``labelCategories`` order the job should use.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from gt_toolkit.convert._common import ConversionResult, ConvertOptions
from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.detection_label import build_detection_label
from gt_toolkit.formats.manifest import write_manifest
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location, read_bytes
from gt_toolkit.storage.image_mirror import read_image_size
from gt_toolkit.storage.s3 import is_s3_uri
from gt_toolkit.types import ConsolidatedBox, ImageSize

__all__ = ["from_coco", "from_yolo"]

DEFAULT_PRIOR_ATTRIBUTE = "prior-boxes"
_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def _source_ref(file_name: str, prefix: str | None, where: str) -> str:
    if is_s3_uri(file_name):
        return file_name
    if not prefix:
        raise ConversionError(
            f"{where}: {file_name!r} is not an s3:// URI; pass --image-prefix s3://bucket/prefix/"
        )
    return prefix.rstrip("/") + "/" + file_name.lstrip("/")


def _finish(
    target: str,
    lines: list[dict[str, Any]] | Iterator[dict[str, Any]],
    out: Location,
    options: ConvertOptions,
    stats: OutputStats,
) -> ConversionResult:
    count = write_manifest(lines, out, store=options.store)
    return ConversionResult(
        target=target, stats=stats, outputs={"manifest": os.fspath(out)}, extra={"lines": count}
    )


def _line(
    source_ref: str,
    boxes: list[ConsolidatedBox],
    size: ImageSize | None,
    labels: list[str],
    options: ConvertOptions,
    stats: OutputStats,
) -> dict[str, Any]:
    attr = options.label_attribute or DEFAULT_PRIOR_ATTRIBUTE
    stats.objects += 1
    stats.boxes += len(boxes)
    stats.max_boxes = max(stats.max_boxes, len(boxes))
    if not boxes:
        stats.empty_images += 1
    for b in boxes:
        stats.boxes_per_class[b["label"]] += 1
    line: dict[str, Any] = {"source-ref": source_ref}
    line.update(
        build_detection_label(
            attr,
            boxes,
            image_size=size,
            labels=labels,
            job_name=options.job_name,
            human_annotated=options.human_annotated,
        )
    )
    return line


def from_coco(source: Location, out: Location, options: ConvertOptions) -> ConversionResult:
    """COCO detection JSON (or results with ``score``) to a manifest with prior boxes."""
    try:
        doc = orjson.loads(read_bytes(source, store=options.store))
        images = doc["images"]
        categories = sorted(doc["categories"], key=lambda c: c["id"])
        annotations = doc.get("annotations") or []
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConversionError(f"{source}: not a COCO detection file ({exc})") from exc
    names = {c["id"]: str(c["name"]) for c in categories}
    labels = list(dict.fromkeys(names.values()))
    by_image: dict[Any, list[ConsolidatedBox]] = defaultdict(list)
    stats = OutputStats()
    stats.attribute = options.label_attribute or DEFAULT_PRIOR_ATTRIBUTE
    for i, ann in enumerate(annotations):
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            label = names[ann["category_id"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConversionError(f"{source}: annotation {i} is malformed ({exc})") from exc
        score = ann.get("score")
        by_image[ann["image_id"]].append(
            {
                "label": label,
                "left": x,
                "top": y,
                "width": w,
                "height": h,
                "confidence": float(score) if score is not None else 1.0,
            }
        )
    lines = []
    for img in images:
        ref = img.get("source_ref") or _source_ref(
            str(img["file_name"]), options.image_prefix, str(source)
        )
        size: ImageSize | None = None
        if img.get("width") and img.get("height"):
            size = {"width": int(img["width"]), "height": int(img["height"]), "depth": 3}
        lines.append(_line(ref, by_image.get(img["id"], []), size, labels, options, stats))
    for cid, label in enumerate(labels):
        stats.class_map.add(cid, label, 0)
    return _finish("from-coco", lines, out, options, stats)


_NAME_LINE = re.compile(r"^\s+(\d+)\s*:\s*(.+?)\s*$")


def _yolo_names(root: Path) -> list[str]:
    classes = root / "classes.txt"
    if classes.is_file():
        return [x.strip() for x in classes.read_text().splitlines() if x.strip()]
    data = root / "data.yaml"
    if data.is_file():
        found: dict[int, str] = {}
        for raw in data.read_text().splitlines():
            m = _NAME_LINE.match(raw)
            if m:
                value = m.group(2)
                found[int(m.group(1))] = str(orjson.loads(value)) if value[0] == '"' else value
        if found:
            return [found.get(i, f"class_{i}") for i in range(max(found) + 1)]
    raise ConversionError(f"{root}: no classes.txt or data.yaml 'names:' mapping")


def from_yolo(source: Location, out: Location, options: ConvertOptions) -> ConversionResult:
    """A local YOLO dataset folder (``labels/``, ``images/``) to a manifest with prior boxes.

    Image sizes come from the image files (YOLO coordinates are normalised); source-refs
    come from ``sources.jsonl`` when the folder was written by ``gt-convert yolo``, else
    ``--image-prefix`` plus the image path under ``images/``.
    """
    root = Path(os.fspath(source))
    if not (root / "labels").is_dir():
        raise ConversionError(f"{root}: no labels/ folder (expected a YOLO dataset folder)")
    names = _yolo_names(root)
    refs: dict[str, str] = {}
    if (root / "sources.jsonl").is_file():
        for raw in (root / "sources.jsonl").read_bytes().splitlines():
            item = orjson.loads(raw)
            refs[item["stem"]] = item["source-ref"]
    stats = OutputStats()
    stats.attribute = options.label_attribute or DEFAULT_PRIOR_ATTRIBUTE
    lines = []
    for label_file in sorted((root / "labels").rglob("*.txt")):
        rel = label_file.relative_to(root / "labels").with_suffix("")
        image = next(
            (p for ext in _IMAGE_EXTS if (p := (root / "images" / rel).with_suffix(ext)).is_file()),
            None,
        )
        if image is None:
            raise ConversionError(f"{label_file}: no image for it under images/ (sizes needed)")
        found = read_image_size(image)
        if found is None:
            raise ConversionError(f"{image}: not an image whose size can be read")
        width, height = found["width"], found["height"]
        boxes: list[ConsolidatedBox] = []
        for n, text in enumerate(label_file.read_text().splitlines(), 1):
            parts = text.split()
            if not parts:
                continue
            try:
                cls = int(parts[0])
                cx, cy, w, h = (float(v) for v in parts[1:5])
                label = names[cls]
            except (ValueError, IndexError) as exc:
                raise ConversionError(f"{label_file}:{n}: not a YOLO box line ({exc})") from exc
            boxes.append(
                {
                    "label": label,
                    "left": (cx - w / 2) * width,
                    "top": (cy - h / 2) * height,
                    "width": w * width,
                    "height": h * height,
                    "confidence": 1.0,
                }
            )
        ref = refs.get(rel.as_posix()) or _source_ref(
            image.relative_to(root / "images").as_posix(), options.image_prefix, str(label_file)
        )
        size: ImageSize = {"width": width, "height": height, "depth": 3}
        lines.append(_line(ref, boxes, size, names, options, stats))
    for cid, label in enumerate(names):
        stats.class_map.add(cid, label, 0)
    return _finish("from-yolo", lines, out, options, stats)
