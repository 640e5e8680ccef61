"""``voc``: Pascal VOC XML, one file per image, with train/val image sets.

Layout (the one datumaro imports as ``voc``/``voc_detection``): ``Annotations/<stem>.xml``,
``ImageSets/Main/{train,val}.txt``, ``labelmap.txt`` (``name:color:parts:actions``, one class
per line, colour left empty) and ``JPEGImages/`` when images are copied. Boxes are
``xmin = left``, ``xmax = left + width`` (continuous pixel coordinates, as most current
readers expect), whole numbers written as integers.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import PurePosixPath

from gt_toolkit.convert.images import check_file_name, copier_for
from gt_toolkit.convert.options import ConversionResult, ConvertOptions
from gt_toolkit.convert.pixels import pixel
from gt_toolkit.convert.records import sized_detections
from gt_toolkit.convert.splits import planned_splitter
from gt_toolkit.convert.staging import StagedOutput
from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.detection_label import ScoredBox
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location

__all__ = ["label_map", "to_voc", "voc_xml"]

_SET_FILES = {"train": "train.txt", "validation": "val.txt"}
# labelmap.txt is one line per class; XML 1.0 text takes no C0 control but tab and line
# breaks, and no U+FFFE or U+FFFF (written raw, expat stopped at them: "not well-formed")
_LABELMAP_UNSAFE = re.compile(r"[:\x00-\x08\x0a-\x1f\ufffe\uffff]|^[\s#]")


def voc_xml(name: str, size: tuple[int, int, int], boxes: list[ScoredBox]) -> bytes:
    """One VOC annotation document."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = name
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "SageMaker Ground Truth"
    el = ET.SubElement(root, "size")
    for tag, dim in zip(("width", "height", "depth"), size, strict=True):
        ET.SubElement(el, tag).text = str(dim)
    ET.SubElement(root, "segmented").text = "0"
    for box in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = box.label
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        coords = (box.left, box.top, box.left + box.width, box.top + box.height)
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), coords, strict=True):
            ET.SubElement(bb, tag).text = str(pixel(value))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def label_map(names: list[str]) -> bytes:
    """``labelmap.txt``: one ``name:::`` line per class, in class-id order."""
    bad = [n for n in names if _LABELMAP_UNSAFE.search(n)]
    if bad:
        raise ConversionError(
            f"class names {bad[:3]} cannot be written to VOC's labelmap.txt, which holds "
            "one 'name:color:parts:actions' line per class, and its XML (no ':' or control "
            "character in a name, no leading space or '#')"
        )
    return "".join(["# label:color_rgb:parts:actions\n", *(f"{n}:::\n" for n in names)]).encode()


def to_voc(source: Location, out: StagedOutput, options: ConvertOptions) -> ConversionResult:
    """Write a VOC dataset folder at ``out``."""
    stats = OutputStats()
    splitter = planned_splitter(source, options)
    sets: dict[str, list[bytes]] = {"train": [], "validation": []}
    with copier_for(options) as copier:
        for rec, size, name in sized_detections(
            source, options, stats=stats, copier=copier, out=out, desc="voc"
        ):
            check_file_name(name, rec.line_no, "VOC", xml=True)
            stem = PurePosixPath(name).stem
            sets[splitter(rec)].append(stem.encode())
            xml = voc_xml(name, size, rec.boxes)
            copier.submit_write(out.staged(out.location("Annotations", f"{stem}.xml")), xml)
            if options.copy_images:
                copier.copy(out, rec.source_ref, out.location("JPEGImages", name))
    for split, file in _SET_FILES.items():
        out.write_lines(out.location("ImageSets", "Main", file), sets[split])
    out.write_bytes(out.location("labelmap.txt"), label_map(stats.class_map.sorted_names()))
    return ConversionResult(
        target="voc",
        stats=stats,
        outputs={"dataset": out.out},
        extra={"images_per_split": {k: len(v) for k, v in sets.items()}},
    )
