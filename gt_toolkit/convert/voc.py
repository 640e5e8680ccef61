"""``voc``: Pascal VOC XML, one file per image, with train/val image sets.

Layout: ``Annotations/<stem>.xml``, ``ImageSets/Main/{train,val}.txt``, ``JPEGImages/`` when
images are copied. Boxes are ``xmin = left``, ``xmax = left + width`` (continuous pixel
coordinates, as most current readers expect), whole numbers written as integers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import PurePosixPath

from gt_toolkit.convert._common import (
    ConversionResult,
    ConvertOptions,
    copier_for,
    num,
    out_path,
    planned_splitter,
    sized_detections,
)
from gt_toolkit.formats.detection_label import ScoredBox
from gt_toolkit.formats.output_manifest import OutputStats
from gt_toolkit.storage.files import Location, write_lines

__all__ = ["to_voc", "voc_xml"]


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
            ET.SubElement(bb, tag).text = str(num(value))
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def to_voc(source: Location, out: Location, options: ConvertOptions) -> ConversionResult:
    """Write a VOC dataset folder at ``out``."""
    stats = OutputStats()
    splitter = planned_splitter(source, options)
    sets: dict[str, list[bytes]] = {"train": [], "validation": []}
    with copier_for(options) as copier:
        for rec, size, name in sized_detections(
            source, options, stats=stats, copier=copier, desc="voc"
        ):
            stem = PurePosixPath(name).stem
            sets[splitter(rec)].append(stem.encode())
            copier.submit_write(
                out_path(out, "Annotations", f"{stem}.xml"), voc_xml(name, size, rec.boxes)
            )
            if options.copy_images:
                copier.submit(rec.source_ref, out_path(out, "JPEGImages", name))
    for split, file in (("train", "train.txt"), ("validation", "val.txt")):
        write_lines(out_path(out, "ImageSets", "Main", file), sets[split], store=options.store)
    return ConversionResult(
        target="voc",
        stats=stats,
        outputs={"dataset": str(out)},
        extra={"images_per_split": {k: len(v) for k, v in sets.items()}},
        image_errors=copier.errors,
    )
