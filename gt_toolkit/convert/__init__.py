"""Converters from Ground Truth output manifests to training layouts, and back.

One module per target; :data:`CONVERTERS` maps each :class:`Target` (the name users type)
to its function, so the CLI builds its subcommands from this table with no ``if``/``elif``
ladder. Every converter has the signature ``(source, out, options) -> ConversionResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from gt_toolkit.convert._common import ConversionResult, ConvertOptions, Splitter
from gt_toolkit.convert.augmented import to_augmented
from gt_toolkit.convert.classification import to_class_folders, to_lst
from gt_toolkit.convert.coco import to_coco
from gt_toolkit.convert.jumpstart import to_jumpstart_od
from gt_toolkit.convert.odjson import to_od_json
from gt_toolkit.convert.reverse import from_coco, from_yolo
from gt_toolkit.convert.voc import to_voc
from gt_toolkit.convert.yolo import to_yolo
from gt_toolkit.storage.files import Location

__all__ = [
    "CONVERTERS",
    "ConversionResult",
    "ConvertOptions",
    "ConverterSpec",
    "Splitter",
    "Target",
    "convert_output",
]

Converter = Callable[[Location, Location, ConvertOptions], ConversionResult]


class Target(StrEnum):
    """Every ``gt-convert`` conversion target."""

    AUGMENTED = "augmented"
    OD_JSON = "od-json"
    LST = "lst"
    CLASS_FOLDERS = "class-folders"
    JUMPSTART_OD = "jumpstart-od"
    COCO = "coco"
    YOLO = "yolo"
    VOC = "voc"
    FROM_COCO = "from-coco"
    FROM_YOLO = "from-yolo"


@dataclass(frozen=True, slots=True)
class ConverterSpec:
    """A converter and what the CLI needs to offer it.

    ``input_kind`` is ``output-manifest`` for Ground Truth outputs, else the foreign format;
    ``splits`` says whether train/validation options apply; ``images`` whether it copies
    images (and by default: ``True``/``False``), or ``None`` when it never does.
    """

    func: Converter
    help: str
    input_kind: str = "output-manifest"
    splits: bool = False
    images: bool | None = None


CONVERTERS: dict[Target, ConverterSpec] = {
    Target.AUGMENTED: ConverterSpec(
        to_augmented,
        "train/validation augmented manifests + channels.json (built-in algorithms, Pipe mode)",
        splits=True,
    ),
    Target.OD_JSON: ConverterSpec(
        to_od_json,
        "built-in object detection File mode: one JSON per image",
        splits=True,
        images=True,
    ),
    Target.LST: ConverterSpec(
        to_lst, "image classification .lst files (File mode)", splits=True, images=True
    ),
    Target.CLASS_FOLDERS: ConverterSpec(
        to_class_folders,
        "train/ and validation/ with one folder of images per class (JumpStart, PyTorch)",
        splits=True,
        images=True,
    ),
    Target.JUMPSTART_OD: ConverterSpec(
        to_jumpstart_od,
        "images/ + annotations.json with xyxy boxes (JumpStart detection)",
        images=True,
    ),
    Target.COCO: ConverterSpec(to_coco, "COCO detection JSON (pycocotools-valid)", images=False),
    Target.YOLO: ConverterSpec(
        to_yolo, "YOLO labels/ + data.yaml, split into train/val", splits=True, images=False
    ),
    Target.VOC: ConverterSpec(
        to_voc, "Pascal VOC XML + ImageSets train/val", splits=True, images=False
    ),
    Target.FROM_COCO: ConverterSpec(
        from_coco,
        "COCO JSON -> input manifest with the boxes as a prior label",
        input_kind="coco",
    ),
    Target.FROM_YOLO: ConverterSpec(
        from_yolo,
        "YOLO folder -> input manifest with the boxes as a prior label",
        input_kind="yolo",
    ),
}


def convert_output(
    target: Target | str,
    source: Location,
    out: Location,
    options: ConvertOptions | None = None,
) -> ConversionResult:
    """Run one conversion: ``convert_output("coco", "output.manifest", "out/")``."""
    return CONVERTERS[Target(target)].func(source, out, options or ConvertOptions())
