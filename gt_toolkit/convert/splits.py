"""Train/validation assignment for the targets that write both channels.

The rule is the toolkit's one split rule (:class:`gt_toolkit.formats.sampling.Splitter`),
applied per record in constant memory; stratified mode plans every object's split in a
first pass over the source.
"""

from __future__ import annotations

from collections.abc import Callable

from gt_toolkit.convert.options import ConvertOptions
from gt_toolkit.convert.records import DETECTION, read_records, ref_key
from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.output_manifest import (
    ClassificationRecord,
    DetectionRecord,
    EmptyPolicy,
    LabelKind,
    OutputStats,
)
from gt_toolkit.formats.sampling import SplitName, Splitter
from gt_toolkit.storage.files import Location
from gt_toolkit.storage.image_mirror import ImageMirror, read_image_size
from gt_toolkit.types import ImageSize

__all__ = ["RecordSplitter", "planned_splitter"]

RecordSplitter = Callable[[DetectionRecord | ClassificationRecord], SplitName]
"""A record's split, ``"train"`` or ``"validation"``."""


def planned_splitter(
    source: Location,
    options: ConvertOptions,
    *,
    kinds: frozenset[LabelKind] = DETECTION,
    default_empty: EmptyPolicy = EmptyPolicy.KEEP,
) -> RecordSplitter:
    """Each record's split under the options, planned first when ``stratify`` is on.

    A stratified split needs every record's classes before the first one is placed, so it
    reads ``source`` once more up front (quietly: no rejects file, no progress bar);
    ``kinds`` and ``default_empty`` must match the converting pass so both see one list.
    The plan counts the records the converting pass writes (:func:`_written`): a second
    line of one source-ref counted in its stratum, so the written lines of that stratum
    got more (or fewer) validation items than their share.

    Raises:
        ConversionError: a validation fraction outside 0..1, or (later, per record) more
            records than the stratified plan counted.
    """
    try:
        splitter = Splitter(validation_fraction=options.validation_fraction, seed=options.seed)
    except ValueError as exc:
        raise ConversionError(f"the validation fraction: {exc}") from None
    if options.stratify:
        first = read_records(
            source,
            options,
            kinds=kinds,
            stats=OutputStats(),
            default_empty=default_empty,
            first_pass=True,
            check=_written(sized=kinds == DETECTION),
            size_of=_mirror_size(options) if kinds == DETECTION else None,
        )
        splitter.plan((rec.source_ref, rec.labels) for rec in first)  # names present

    ask = splitter.__call__  # bound once: calling the instance goes through its type's slot

    def split(record: DetectionRecord | ClassificationRecord) -> SplitName:
        try:
            return ask(record.source_ref)
        except ValueError as exc:
            raise ConversionError(f"the input changed between the two passes: {exc}") from None

    return split


def _written(*, sized: bool) -> Callable[[DetectionRecord | ClassificationRecord], str | None]:
    """The converting pass's refusals, for the plan: each source-ref's first line, sized.

    Every target with a split takes one line per image (``duplicate-source-ref``); the
    detection targets (``sized``) also refuse an image without a size (``no-image-size``),
    and a line so refused leaves its source-ref to a later line, as the converting pass does.
    """
    seen: set[int] = set()

    def check(rec: DetectionRecord | ClassificationRecord) -> str | None:
        key = ref_key(rec.source_ref)
        if key in seen:
            return "duplicate-source-ref"
        if sized and isinstance(rec, DetectionRecord) and rec.image_size is None:
            return "no-image-size"
        seen.add(key)
        return None

    return check


def _mirror_size(options: ConvertOptions) -> Callable[[str], ImageSize | None] | None:
    """The image sizes the converting pass reads from ``--images-dir`` (``None``: no mirror)."""
    if options.images_dir is None:
        return None
    mirror = ImageMirror(options.images_dir, options.images_prefix)

    def size_of(source_ref: str) -> ImageSize | None:
        local = mirror.local_path(source_ref)
        return read_image_size(local) if local is not None else None

    return size_of
