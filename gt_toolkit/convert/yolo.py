"""``yolo``: Ultralytics/YOLOv5-style labels, split into train and val.

Layout: ``labels/{train,val}/<stem>.txt`` (one ``class cx cy w h`` line per box, normalised
to [0, 1]; an empty file is a negative image), ``images/{train,val}/`` when images are copied,
``data.yaml`` and ``classes.txt`` with the names, and ``sources.jsonl`` mapping each label file
back to its ``source-ref`` (``from-yolo`` uses it). The YOLO class index is the Ground Truth
``class_id``, so label files stream out without a second pass; unused ids get placeholder
names (``class_<id>``, with ``_`` added while a class holds that name).

``data.yaml`` names the dataset folder as an absolute ``path`` for a local output: Ultralytics
resolves a relative ``path`` against the current directory, not the file. For an S3 output it
has no ``path`` key, so Ultralytics uses the folder holding ``data.yaml`` once downloaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import orjson

from gt_toolkit.convert.images import copier_for
from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.records import sized_detections
from gt_toolkit.convert.splits import planned_splitter
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location
from gt_toolkit.storage.s3 import is_s3_uri

__all__ = ["data_yaml", "to_yolo", "yolo_lines"]

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


def to_yolo(source: Location, out: StagedOutput, options: ConvertOptions) -> ConversionResult:
    """Write a YOLO dataset folder at ``out``."""
    stats = OutputStats()
    splitter = planned_splitter(source, options)
    counts = {"train": 0, "validation": 0}
    with copier_for(options) as copier, out.open(out.location("sources.jsonl")) as sources:
        for rec, size, name in sized_detections(
            source, options, stats=stats, copier=copier, out=out, desc="yolo"
        ):
            split = splitter(rec)
            counts[split] += 1
            folder = _SPLIT_DIR[split]
            label_file = f"labels/{folder}/{PurePosixPath(name).stem}.txt"
            lines = yolo_lines(
                [
                    (class_id, b.left, b.top, b.width, b.height)
                    for class_id, b in zip(rec.class_ids, rec.boxes, strict=True)
                ],
                *size[:2],
            )
            body = "".join(line + "\n" for line in lines).encode()
            copier.submit_write(out.staged(out.location(label_file)), body)
            sources.write(orjson.dumps({"label": label_file, "source-ref": rec.source_ref}) + b"\n")
            if options.copy_images:
                copier.copy(out, rec.source_ref, out.location("images", folder, name))
    names = _names(stats)
    out.write_bytes(out.location("classes.txt"), "".join(n + "\n" for n in names).encode())
    out.write_bytes(out.location("data.yaml"), data_yaml(out.out, names))
    return ConversionResult(
        target="yolo",
        stats=stats,
        outputs={"dataset": out.out, "data.yaml": out.location("data.yaml")},
        extra={"images_per_split": counts, "names": names},
    )


_NOT_YAML = re.compile("[\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def data_yaml(out: str, names: list[str]) -> bytes:
    r"""Ultralytics' dataset file: ``path`` (local outputs), the two splits and the names.

    Strings are YAML double-quoted scalars written as JSON, with the characters YAML will not
    take raw (DEL, C1 controls, non-characters: ``_NOT_YAML``) as ``\u`` escapes, which it
    reads back.
    """

    def quoted(text: str) -> str:
        return _NOT_YAML.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(text, ensure_ascii=False))

    lines = [] if is_s3_uri(out) else [f"path: {quoted(str(Path(out).absolute()))}"]
    lines += ["train: images/train", "val: images/val", f"nc: {len(names)}", "names:"]
    lines += [f"  {i}: {quoted(n)}" for i, n in enumerate(names)]
    return ("\n".join(lines) + "\n").encode()


MAX_CLASS_GAP = 10_000
"""YOLO numbers classes 0 .. nc - 1, so unnamed ids below the largest get placeholder names;
ids this far past the number of named classes are refused rather than listed."""


def _names(stats: OutputStats) -> list[str]:
    ids = stats.class_map.names
    top = max(ids) if ids else -1
    if top >= len(ids) + MAX_CLASS_GAP:
        raise ConversionError(
            f"class id {top} with {len(ids)} named classes: YOLO numbers classes 0 .. nc - 1, "
            "and this would list every id below it; renumber the classes (gt-convert coco, "
            "then from-coco, numbers them densely)"
        )
    taken = set(ids.values())
    names = []
    for i in range(top + 1):
        name = ids.get(i)
        if name is None:  # a placeholder no class holds: data.yaml names each id once
            name = f"class_{i}"
            while name in taken:
                name += "_"
            taken.add(name)
        names.append(name)
    return names
