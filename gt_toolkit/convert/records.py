"""The records a target converts: read under the options, sized, named.

Targets read Ground Truth output manifests through
:func:`gt_toolkit.formats.output_manifest.iter_output_records` (which checks every label and
writes the rejects file); this module applies the conversion options to that reader and adds
what per-image targets need on top: the image size and a unique file name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, cast

from gt_toolkit.convert.images import ImageCopier, ImageNamer
from gt_toolkit.convert.options import ConvertOptions
from gt_toolkit.formats.output_manifest import (
    ClassificationRecord,
    DetectionRecord,
    EmptyPolicy,
    LabelKind,
    OutputStats,
    iter_output_records,
)
from gt_toolkit.progress import progress
from gt_toolkit.storage.files import Location
from gt_toolkit.storage.image_mirror import read_image_size
from gt_toolkit.types import ImageSize

if TYPE_CHECKING:
    from gt_toolkit.convert.staging import StagedOutput

__all__ = [
    "ANY",
    "CLASSIFICATION",
    "DETECTION",
    "once",
    "read_classifications",
    "read_records",
    "sized_detections",
]

DETECTION = frozenset({LabelKind.DETECTION})
CLASSIFICATION = frozenset({LabelKind.CLASSIFICATION, LabelKind.MULTILABEL})
ANY = DETECTION | CLASSIFICATION


def read_records(
    source: Location,
    options: ConvertOptions,
    *,
    kinds: frozenset[LabelKind],
    stats: OutputStats,
    default_empty: EmptyPolicy = EmptyPolicy.KEEP,
    first_pass: bool = False,
    desc: str = "objects",
    check: Callable[[DetectionRecord | ClassificationRecord], str | None] | None = None,
    out: StagedOutput | None = None,
    size_of: Callable[[str], ImageSize | None] | None = None,
) -> Iterator[DetectionRecord | ClassificationRecord]:
    """The records of ``source`` under the options; ``first_pass`` reports no rejects.

    ``check`` refuses a record the target cannot use, as a reject with the returned reason
    (see :func:`~gt_toolkit.formats.output_manifest.iter_output_records`), ``size_of``
    sizes the images of labels without ``image_size``. Each record's image is one the run
    reads, so ``out`` never removes it (:meth:`StagedOutput.read`).
    """
    records = iter_output_records(
        source,
        kinds=kinds,
        label_attribute=options.label_attribute,
        policy=options.policy,
        rejects=None if first_pass else options.rejects,
        stats=stats,
        store=options.store,
        box_policy=options.box_policy,
        empty_policy=options.empty_policy or default_empty,
        log_rejects=not first_pass,
        check=check,
        note=None if out is None else out.read,  # noted as checked: no layer of its own
        size_of=size_of,
    )
    if first_pass or not sys.stderr.isatty():
        return records
    return progress(records, desc=desc, unit="obj")


_HASH_BITS = (1 << 60) - 1  # below 2**60 a Python int is 32 bytes, past it 40


def ref_key(ref: str) -> int:
    """What a set of the source-refs a run has read holds for ``ref``: its 60-bit hash.

    A second line of one image is found by remembering every ref read, so the set grows with
    the manifest: at a million lines the refs themselves took 134 MB (``augmented`` peaked at
    199 MB), their hashes 66 MB (131 MB). Two refs of one hash (at a million refs, about one
    run in two million) make the second a ``duplicate-source-ref`` reject: said, with its
    line, and the run exits 1; a rerun hashes with another seed.
    """
    return hash(ref) & _HASH_BITS


def once() -> Callable[[DetectionRecord | ClassificationRecord], str | None]:
    """A ``check`` that takes each source-ref's first line only; a later one is refused.

    Its reason is ``duplicate-source-ref``: a reject with its file and line, counted as a
    loss. Every target takes one line per image: a second would be a second label file
    replacing the first, a second copy of the image, or a second training sample of it.
    """
    seen: set[int] = set()

    def check(rec: DetectionRecord | ClassificationRecord) -> str | None:
        key = ref_key(rec.source_ref)
        if key in seen:
            return "duplicate-source-ref"
        seen.add(key)
        return None

    return check


def read_classifications(
    source: Location,
    options: ConvertOptions,
    *,
    stats: OutputStats,
    out: StagedOutput,
    desc: str = "objects",
) -> Iterator[ClassificationRecord]:
    """Image-classification records (see :func:`read_records`), one per image.

    These targets copy each image under its class: a second line of a source-ref already
    read is a ``duplicate-source-ref`` reject, as for the per-image detection targets
    (concatenated jobs put ``a.jpg`` in both ``cat/`` and ``dog/``, and in ``.lst`` twice).
    """
    records = read_records(
        source, options, kinds=CLASSIFICATION, stats=stats, desc=desc, check=once(), out=out
    )
    for rec in records:
        if isinstance(rec, ClassificationRecord):
            yield rec


def _record_size(rec: DetectionRecord) -> tuple[int, int, int] | None:
    """``(width, height, depth)`` from the label, or from the image when it had none."""
    if rec.image_size is None:
        return None
    size = rec.image_size
    return size["width"], size["height"], size.get("depth", 3)


def _mirror_size(copier: ImageCopier) -> Callable[[str], ImageSize | None]:
    """The size of a source-ref's image read from its local mirror (``None``: none there)."""

    def size_of(source_ref: str) -> ImageSize | None:
        local = copier.local_path(source_ref)
        return read_image_size(local) if local is not None else None

    return size_of


def sized_detections(
    source: Location,
    options: ConvertOptions,
    *,
    stats: OutputStats,
    copier: ImageCopier,
    out: StagedOutput,
    desc: str,
    namer: ImageNamer | None = None,
) -> Iterator[tuple[DetectionRecord, tuple[int, int, int], str]]:
    """Detection records with their ``(width, height, depth)`` and a unique image file name.

    Every per-image target needs the size; a record without ``image_size`` is sized from a
    local mirror of its image, its boxes clipped to that size as to a label's own (a box past
    the image made YOLO centres and VOC edges outside it); one without either is a
    ``no-image-size`` reject, in the rejects file like any other.
    A second line of a source-ref already read is a ``duplicate-source-ref`` reject: its label
    file would overwrite the first one's (the first line wins; the run then reports a loss).
    ``namer`` names the images (default: names of files the run writes, :class:`ImageNamer`).
    """
    if namer is None:
        namer = ImageNamer()
    sizes: dict[int, tuple[int, int, int]] = {}
    seen: set[int] = set()

    def sized(rec: DetectionRecord | ClassificationRecord) -> str | None:
        key = ref_key(rec.source_ref)
        if key in seen:
            return "duplicate-source-ref"
        size = _record_size(cast(DetectionRecord, rec))
        if size is None:
            return "no-image-size"
        seen.add(key)
        sizes[rec.line_no] = size
        return None

    records = read_records(
        source,
        options,
        kinds=DETECTION,
        stats=stats,
        desc=desc,
        check=sized,
        out=out,
        size_of=_mirror_size(copier),
    )
    for rec in cast(Iterator[DetectionRecord], records):  # kinds=DETECTION: nothing else
        yield rec, sizes.pop(rec.line_no), namer(rec.source_ref)
