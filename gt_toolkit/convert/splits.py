"""Train/validation assignment for the targets that write both channels.

The rule is the toolkit's one split rule (:class:`gt_toolkit.formats.sampling.Splitter`),
applied per record in constant memory; stratified mode plans every object's split in a
first pass over the source.
"""

from __future__ import annotations

from collections.abc import Callable

from gt_toolkit.convert.options import ConvertOptions
from gt_toolkit.convert.records import DETECTION, read_records
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
        )
        splitter.plan((rec.source_ref, rec.labels) for rec in first)  # names present

    ask = splitter.__call__  # bound once: calling the instance goes through its type's slot

    def split(record: DetectionRecord | ClassificationRecord) -> SplitName:
        try:
            return ask(record.source_ref)
        except ValueError as exc:
            raise ConversionError(f"the input changed between the two passes: {exc}") from None

    return split
