"""``lst`` and ``class-folders``: image classification layouts.

``lst``: File-mode channels ``train``/``validation`` (images) and ``train.lst``/
``validation.lst``: ``index<TAB>class<TAB>path`` with class indices consecutive from 0
(Ground Truth ids remapped in id order); multi-label outputs get one 0/1 column per class.
``class-folders``: ``train/<class>/`` and ``validation/<class>/``, one folder per class name, the
layout JumpStart image classification (give it ``train/``) and the PyTorch script-mode trainer
read (class indices follow the folder names alphabetically).
"""

from __future__ import annotations

import re

from gt_toolkit.convert._common import (
    CLASSIFICATION,
    ConversionResult,
    ConvertOptions,
    ImageNamer,
    copier_for,
    out_path,
    planned_splitter,
    read_classifications,
)
from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.output_manifest import ClassificationRecord, OutputStats
from gt_toolkit.storage.files import Location, write_json, write_lines

__all__ = ["folder_name", "to_class_folders", "to_lst"]

_UNSAFE = re.compile(r"[^\w.\- ]+")


def folder_name(label: str) -> str:
    """A class name made safe as one path segment (no slashes, no leading dots)."""
    return _UNSAFE.sub("_", label).strip(" .") or "_"


def to_lst(source: Location, out: Location, options: ConvertOptions) -> ConversionResult:
    """Write ``train.lst``/``validation.lst`` (and the images unless ``copy_images`` is False)."""
    stats = OutputStats()
    splitter = planned_splitter(source, options, kinds=CLASSIFICATION)
    namer = ImageNamer()
    copy = options.copy_images is not False
    rows: list[tuple[str, ClassificationRecord, str]] = []
    with copier_for(options) as copier:
        for rec in read_classifications(source, options, stats=stats, desc="lst"):
            split, name = splitter(rec), namer(rec.source_ref)
            rows.append((split, rec, name))
            if copy:
                copier.submit(rec.source_ref, out_path(out, split, name))
    index = {cid: i for i, cid in enumerate(sorted(stats.class_map.names))}
    for row in rows:
        for cid in row[1].class_ids:
            index.setdefault(cid, len(index))
    multi = any(row[1].multi_label for row in rows)
    lines: dict[str, list[bytes]] = {"train": [], "validation": []}
    for i, (part, rec, name) in enumerate(rows):
        if multi:
            hot = ["0"] * len(index)
            for cid in rec.class_ids:
                hot[index[cid]] = "1"
            cols = "\t".join(hot)
        else:
            cols = str(index[rec.class_ids[0]])
        lines[part].append(f"{i}\t{cols}\t{name}".encode())
    outputs = {}
    for name_, body in lines.items():
        outputs[f"{name_}_lst"] = out_path(out, f"{name_}.lst")
        write_lines(outputs[f"{name_}_lst"], body, store=options.store)
    names = {str(i): stats.class_map.name_of(cid) for cid, i in index.items()}
    write_json(out_path(out, "class_index.json"), names, store=options.store)
    return ConversionResult(
        target="lst",
        stats=stats,
        outputs=outputs,
        extra={
            "images_per_split": {k: len(v) for k, v in lines.items()},
            "num_classes": len(index),
            "num_training_samples": len(lines["train"]),
            "multi_label": multi,
            "class_index": names,
        },
        image_errors=copier.errors,
    )


def to_class_folders(source: Location, out: Location, options: ConvertOptions) -> ConversionResult:
    """Copy each image into ``out/train/<class name>/`` or ``out/validation/<class name>/``.

    Single-label outputs only. A class that lands in one split only is named in the notes:
    the PyTorch script-mode trainer needs the same class folders in both.
    """
    stats = OutputStats()
    splitter = planned_splitter(source, options, kinds=CLASSIFICATION)
    namer = ImageNamer()
    per_split: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
    with copier_for(options) as copier:
        for rec in read_classifications(source, options, stats=stats, desc="class-folders"):
            if rec.multi_label:
                raise ConversionError(
                    f"line {rec.line_no}: class-folders needs single-label classification; "
                    f"{rec.attribute!r} is multi-label (use lst or augmented)"
                )
            split, folder = splitter(rec), folder_name(rec.labels[0])
            per_split[split][folder] = per_split[split].get(folder, 0) + 1
            copier.submit(rec.source_ref, out_path(out, split, folder, namer(rec.source_ref)))
    classes = sorted(set(per_split["train"]) | set(per_split["validation"]))
    notes = [
        f"class {name!r} has no {split} images"
        for name in classes
        for split in ("train", "validation")
        if name not in per_split[split]
    ]
    return ConversionResult(
        target="class-folders",
        stats=stats,
        outputs={split: out_path(out, split) for split in per_split},
        extra={
            "images_per_folder": {k: dict(sorted(v.items())) for k, v in per_split.items()},
            "class_index": {str(i): n for i, n in enumerate(classes)},
        },
        image_errors=copier.errors,
        notes=notes,
    )
