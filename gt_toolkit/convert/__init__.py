"""Converters from Ground Truth output manifests to training layouts, and back.

One module per target; :data:`CONVERTERS` maps each :class:`Target` (the name users type)
to its spec, so the CLI builds its subcommands from this table with no ``if``/``elif``
ladder. A spec names its function as ``"module:function"``, imported on first use, so
reading the table (``gt-convert --help``) loads neither numpy, boto3 nor Pillow.

Every converter has the signature ``(source, out: StagedOutput, options) -> ConversionResult``
and writes through ``out``; :func:`convert_output` runs it so that a failed run, or one that
converted nothing, leaves no output behind.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from gt_toolkit.convert.options import ConversionResult, ConvertOptions, options_set
from gt_toolkit.errors import ConversionError, ValidationError

if TYPE_CHECKING:
    from gt_toolkit.convert.staging import StagedOutput
    from gt_toolkit.storage.files import ListedFolder, Location

__all__ = [
    "CONVERTERS",
    "ConversionResult",
    "ConvertOptions",
    "ConverterSpec",
    "Target",
    "convert_output",
]

Converter = Callable[["Location", "StagedOutput", ConvertOptions], ConversionResult]


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

    ``function`` is ``"module:function"`` under ``gt_toolkit.convert``; ``reads`` names the
    :class:`ConvertOptions` fields the target uses (any other one set is refused);
    ``input_kind`` is ``output-manifest`` for Ground Truth outputs, else the foreign format;
    ``copy_images`` is the target's default for that option when it reads it;
    ``input_folder`` names, as ``"module:CONSTANT"``, the name endings of the files the
    converter reads when its input is a folder (empty: its input is one file);
    ``folder_files`` and ``side_files`` are the files it always writes, by name, into a
    folder output (``OUT/<name>``) or beside a file output (``OUT.<name>``): known before
    the run, so an input there is refused instead of replaced; ``image_folders`` are the
    folders of a folder output where it writes a file per image (labels, copies), by names
    known only as it runs, so no other output of the run may go there, and ``copy_folders``
    those of them that hold the copied images (written only when it copies them; a target
    that does not read ``copy_images`` always does); ``file_ending`` is the ``-o`` ending
    that makes an output manifest's conversion one file, not a folder; ``names_by_id``
    says its classes are numbered by id, so two ids of one name would be two classes (an
    error), where ``class-folders`` files images by name and takes them as one.
    """

    function: str
    help: str
    reads: frozenset[str]
    input_kind: str = "output-manifest"
    copy_images: bool = False
    input_folder: str = ""
    folder_files: tuple[str, ...] = ()
    side_files: tuple[str, ...] = ()
    image_folders: tuple[str, ...] = ()
    copy_folders: tuple[str, ...] = ()
    file_ending: str = ""
    names_by_id: bool = True

    def writes_folder(self, out: str) -> bool:
        """Whether ``-o out`` is a folder (with ``folder_files``) or one file (``side_files``)."""
        if self.input_kind != "output-manifest":
            return False  # a foreign format becomes one input manifest
        return not (self.file_ending and out.endswith(self.file_ending))

    def filled_folders(self, copy_images: bool | None) -> tuple[str, ...]:
        """The ``image_folders`` a run fills (``copy_images``: as given, ``None``: the default)."""
        if "copy_images" not in self.reads:
            return self.image_folders
        copies = self.copy_images if copy_images is None else copy_images
        return tuple(n for n in self.image_folders if copies or n not in self.copy_folders)

    def load(self) -> Converter:
        """The converter function (its module is imported now)."""
        module, name = self.function.split(":")
        func: Converter = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return func

    def listed_input(self, source: str) -> ListedFolder | None:
        """The input folder and the files of it the converter reads (``None``: one file).

        Its module is imported now, as :meth:`load` does: reading the table imports none.
        """
        if not self.input_folder:
            return None
        from gt_toolkit.storage.files import ListedFolder

        module, name = self.input_folder.split(":")
        endings: tuple[str, ...] = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return ListedFolder(source, endings)


_READER = frozenset({"label_attribute", "policy", "rejects", "empty_policy"})
_BOXES = _READER | {"box_policy"}
_SPLIT = frozenset({"validation_fraction", "seed", "stratify"})
_MIRROR = frozenset({"images_dir", "images_prefix", "workers"})
_COPY = _MIRROR | {"copy_images"}
_PRIOR = frozenset(
    {"label_attribute", "policy", "rejects", "image_prefix", "job_name", "human_annotated"}
)

CONVERTERS: dict[Target, ConverterSpec] = {
    Target.AUGMENTED: ConverterSpec(
        "augmented:to_augmented",
        "train/validation augmented manifests + channels.json (built-in algorithms, Pipe mode)",
        _BOXES | _SPLIT | {"include_metadata", "channel_prefix"},
        folder_files=("train.manifest", "validation.manifest", "channels.json"),
    ),
    Target.OD_JSON: ConverterSpec(
        "odjson:to_od_json",
        "built-in object detection File mode: one JSON per image",
        _BOXES | _SPLIT | _COPY,
        copy_images=True,
        image_folders=("train", "validation", "train_annotation", "validation_annotation"),
        copy_folders=("train", "validation"),
    ),
    Target.LST: ConverterSpec(
        "classification:to_lst",
        "image classification .lst files (File mode)",
        _READER | _SPLIT | _COPY,
        copy_images=True,
        folder_files=("train.lst", "validation.lst", "class_index.json"),
        image_folders=("train", "validation"),
        copy_folders=("train", "validation"),
    ),
    Target.CLASS_FOLDERS: ConverterSpec(
        "classification:to_class_folders",
        "train/ and validation/ with one folder of images per class (JumpStart, PyTorch)",
        _READER | _SPLIT | _MIRROR,
        image_folders=("train", "validation"),
        copy_folders=("train", "validation"),
        names_by_id=False,
    ),
    Target.JUMPSTART_OD: ConverterSpec(
        "jumpstart:to_jumpstart_od",
        "images/ + annotations.json with xyxy boxes (JumpStart detection)",
        _BOXES | _COPY,
        copy_images=True,
        folder_files=("annotations.json",),
        image_folders=("images",),
        copy_folders=("images",),
    ),
    Target.COCO: ConverterSpec(
        "coco:to_coco",
        "COCO detection JSON (pycocotools-valid; a folder gets datumaro's layout)",
        _BOXES | _COPY,
        folder_files=("annotations/instances_default.json",),  # a .json output: that file
        image_folders=("images",),
        copy_folders=("images",),
        file_ending=".json",
    ),
    Target.YOLO: ConverterSpec(
        "yolo:to_yolo",
        "YOLO labels/ + data.yaml, split into train/val",
        _BOXES | _SPLIT | _COPY,
        folder_files=("data.yaml", "classes.txt", "sources.jsonl"),
        image_folders=("labels", "images"),
        copy_folders=("images",),
    ),
    Target.VOC: ConverterSpec(
        "voc:to_voc",
        "Pascal VOC XML + ImageSets train/val + labelmap.txt",
        _BOXES | _SPLIT | _COPY,
        folder_files=("ImageSets/Main/train.txt", "ImageSets/Main/val.txt", "labelmap.txt"),
        image_folders=("Annotations", "JPEGImages"),
        copy_folders=("JPEGImages",),
    ),
    Target.FROM_COCO: ConverterSpec(
        "from_coco:from_coco",
        "COCO JSON or results list -> input manifest with the boxes as a prior label",
        _PRIOR | {"coco_reference"},
        input_kind="coco",
        side_files=("categories.json",),
    ),
    Target.FROM_YOLO: ConverterSpec(
        "from_yolo:from_yolo",
        "YOLO folder -> input manifest with the boxes as a prior label",
        _PRIOR | {"polygon_boxes"},
        input_kind="yolo",
        input_folder="from_yolo:DATASET_READS",
    ),
}


def convert_output(
    target: Target | str,
    source: Location,
    out: Location,
    options: ConvertOptions | None = None,
    *,
    along: Callable[[ConversionResult], dict[str, bytes]] | None = None,
) -> ConversionResult:
    """Run one conversion: ``convert_output("coco", "output.manifest", "out/")``.

    ``along`` makes, from the result, files that belong with the output (``gt-convert``'s
    summary, by location): they appear with it, or a failed run leaves neither
    (:meth:`~gt_toolkit.convert.staging.StagedOutput.write_along`).

    Raises:
        ValidationError: an unknown target, or options set that the target does not read.
        ConversionError: the input cannot be converted, or nothing in it could be; nothing
            is written then (the rejects file, which says why, is kept).
    """
    try:
        spec = CONVERTERS[Target(target)]
    except ValueError:
        raise ValidationError(
            [f"unknown target {target!r}; one of {', '.join(Target)}"], what="conversion"
        ) from None
    options = options or ConvertOptions()
    unread = [name for name in options_set(options) if name not in spec.reads]
    if unread:
        raise ValidationError(
            [f"{Target(target).value} does not read option {name!r}" for name in unread],
            what=f"{Target(target).value} options",
        )
    from gt_toolkit.storage.s3 import prefix_problem

    # each makes s3:// URIs the run writes: source-refs, and augmented's channel S3Uris (a
    # channels.json of s3://b/train.manifest, or of a prefix without s3://, exited 0)
    problems = [
        f"{name} {problem}"
        for name, prefix in (
            ("image_prefix", options.image_prefix),
            ("channel_prefix", options.channel_prefix),
        )
        if prefix is not None and (problem := prefix_problem(prefix)) is not None
    ]
    if problems:
        raise ValidationError(problems, what=f"{Target(target).value} options")
    from gt_toolkit.convert.staging import StagedOutput  # boto3 behind it: not at import

    reads = [r for r in (source, options.images_dir, options.coco_reference) if r is not None]
    kind = Target(target).value
    with StagedOutput(out, store=options.store, kind=kind, reads=reads) as staged:
        result = spec.load()(source, staged, options)
        if result.stats.objects == 0:
            raise ConversionError(_nothing_converted(source, result, options))
        if spec.input_kind == "output-manifest" and spec.names_by_id:
            result.stats.class_map.refuse_shared_names()
        for location, data in (along(result) if along is not None else {}).items():
            staged.write_along(location, data)
    return result


def _nothing_converted(source: Location, result: ConversionResult, options: ConvertOptions) -> str:
    seen = "; ".join(result.stats.summary_lines()[1:])
    where = f" (rejects: {options.rejects})" if options.rejects and result.stats.rejected else ""
    return f"nothing was converted from {source}, so nothing was written: {seen}{where}"
