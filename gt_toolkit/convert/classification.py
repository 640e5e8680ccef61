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

from gt_toolkit.convert.images import ImageNamer, check_file_name, copier_for, windows_unsafe
from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.records import CLASSIFICATION, read_classifications
from gt_toolkit.convert.splits import planned_splitter
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location, folded

__all__ = ["folder_name", "to_class_folders", "to_lst"]

_UNSAFE = re.compile(r"[^\w.\- ]+")
_FOLDER_MAX_BYTES = 255  # a file name's limit (ext4, APFS; NTFS: 255 UTF-16 units)


def folder_name(label: str) -> str:
    """A class name made safe as one path segment (no slashes, no leading dots)."""
    return _UNSAFE.sub("_", label).strip(" .") or "_"


def to_lst(source: Location, out: StagedOutput, options: ConvertOptions) -> ConversionResult:
    """Write ``train.lst``/``validation.lst`` (and the images unless ``copy_images`` is False)."""
    stats = OutputStats()
    splitter = planned_splitter(source, options, kinds=CLASSIFICATION)
    copy = options.copy_images is not False
    namer = ImageNamer(written=copy)  # without copies, the rows name the images' own files
    # The rows wait for the class index (every class seen): what each row needs, not its
    # record, which holds its whole manifest line (200k lines took 340 MB, now 100 MB).
    rows: list[tuple[str, tuple[int, ...], str]] = []
    multi = False
    with copier_for(options) as copier:
        for rec in read_classifications(source, options, stats=stats, out=out, desc="lst"):
            split, name = splitter(rec), namer(rec.source_ref)
            check_file_name(name, rec.line_no, ".lst")
            rows.append((split, tuple(rec.class_ids), name))
            multi = multi or rec.multi_label
            if copy:
                copier.copy(out, rec.source_ref, out.location(split, name))
    index = {cid: i for i, cid in enumerate(sorted(stats.class_map.names))}  # names every id
    lines: dict[str, list[bytes]] = {"train": [], "validation": []}
    for i, (part, class_ids, name) in enumerate(rows):
        if multi:
            hot = ["0"] * len(index)
            for cid in class_ids:
                hot[index[cid]] = "1"
            cols = "\t".join(hot)
        else:
            cols = str(index[class_ids[0]])
        lines[part].append(f"{i}\t{cols}\t{name}".encode())
    outputs = {}
    for part, body in lines.items():
        outputs[f"{part}_lst"] = out.location(f"{part}.lst")
        out.write_lines(outputs[f"{part}_lst"], body)
    names = {str(i): stats.class_map.name_of(cid) for cid, i in index.items()}
    out.write_json(out.location("class_index.json"), names)
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
    )


def to_class_folders(
    source: Location, out: StagedOutput, options: ConvertOptions
) -> ConversionResult:
    """Copy each image into ``out/train/<class name>/`` or ``out/validation/<class name>/``.

    Single-label outputs only. A class that lands in one split only is named in the notes:
    the PyTorch script-mode trainer needs the same class folders in both.
    """
    stats = OutputStats()
    splitter = planned_splitter(source, options, kinds=CLASSIFICATION)
    namer = ImageNamer()
    per_split: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
    # folder, as a case-insensitive disk compares it (folded) -> the class name it holds:
    # 'Cat/' and 'cat/' are one folder on a laptop's disk (APFS, NTFS), two classes merged
    owner: dict[str, str] = {}
    with copier_for(options) as copier:
        for rec in read_classifications(
            source, options, stats=stats, out=out, desc="class-folders"
        ):
            if rec.multi_label:
                raise ConversionError(
                    f"line {rec.line_no}: class-folders needs single-label classification; "
                    f"{rec.attribute!r} is multi-label (use lst or augmented)"
                )
            split, folder = splitter(rec), folder_name(rec.labels[0])
            if len(folder.encode()) > _FOLDER_MAX_BYTES:
                raise ConversionError(
                    f"line {rec.line_no}: the class {rec.labels[0][:60]!r}... makes a folder "
                    f"name of {len(folder.encode())} bytes, and a file system holds "
                    f"{_FOLDER_MAX_BYTES}; the folder name is the class name a trainer learns, "
                    "so it is not cut: shorten the class name, or use lst or augmented"
                )
            if windows_unsafe(folder):
                raise ConversionError(
                    f"line {rec.line_no}: the class {rec.labels[0]!r} makes the folder "
                    f"{folder!r}, a device name on Windows (CON, PRN, AUX, NUL, COM0-9, LPT0-9, "
                    "with any extension), where no folder of that name can be made; the folder "
                    "name is the class name a trainer learns, so it is not renamed: rename the "
                    "class, or use lst or augmented"
                )
            first = owner.setdefault(folded(folder), rec.labels[0])
            if first != rec.labels[0]:
                raise ConversionError(
                    f"line {rec.line_no}: classes {first!r} and {rec.labels[0]!r} would share "
                    f"the folder {folder!r} (a folder name cannot hold every character, "
                    "and a case-insensitive disk holds 'Cat' and 'cat' as one folder): "
                    "rename one, or use lst or augmented"
                )
            per_split[split][folder] = per_split[split].get(folder, 0) + 1
            dest = out.location(split, folder, namer(rec.source_ref))
            copier.copy(out, rec.source_ref, dest)
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
        outputs={split: out.location(split) for split in per_split},
        extra={
            "images_per_folder": {k: dict(sorted(v.items())) for k, v in per_split.items()},
            "class_index": {str(i): n for i, n in enumerate(classes)},
        },
        notes=notes,
    )
