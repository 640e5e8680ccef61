"""Find the label attributes of one manifest line: pure, and light enough for the Lambdas.

A label attribute is a key ``X`` whose partner ``X-metadata`` is an object
(``docs/ground-truth-formats.md`` §2). This module holds only that rule and its date
parsing, with no I/O imports, so the pre-annotation Lambda and the template preview can use
the same rule as the output-manifest reader (:mod:`gt_toolkit.formats.output_manifest`, which
re-exports it)
without loading boto3.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gt_toolkit.formats.detection_label import DETECTION_TYPE

__all__ = [
    "CLASSIFICATION_TYPE",
    "METADATA_SUFFIX",
    "MULTILABEL_TYPE",
    "LabelAttribute",
    "LabelKind",
    "detect_label_attributes",
    "parse_creation_date",
]

METADATA_SUFFIX = "-metadata"
CLASSIFICATION_TYPE = "groundtruth/image-classification"
MULTILABEL_TYPE = "groundtruth/image-classification-multilabel"


class LabelKind(StrEnum):
    """What a label attribute holds, as far as conversion is concerned."""

    DETECTION = "object-detection"
    CLASSIFICATION = "image-classification"
    MULTILABEL = "image-classification-multilabel"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"


_KINDS: dict[str, LabelKind] = {
    DETECTION_TYPE: LabelKind.DETECTION,
    CLASSIFICATION_TYPE: LabelKind.CLASSIFICATION,
    MULTILABEL_TYPE: LabelKind.MULTILABEL,
}


_DATE_FIX = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d+))?\s*(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_creation_date(value: object) -> dt.datetime | None:
    """Parse a ``creation-date`` leniently; naive times are UTC. ``None`` when unreadable.

    Ground Truth writes ``2024-03-01T10:11:12.123456`` (no zone) in image jobs and
    ``+0000`` in video jobs; hand-made files drop the fraction or use seven digits.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        match = _DATE_FIX.match(text)
        if match is None:
            return None
        day, clock, frac, zone = match.groups()
        if clock.count(":") == 1:
            clock += ":00"
        rebuilt = f"{day}T{clock}"
        if frac:
            rebuilt += "." + frac[:6].ljust(6, "0")
        if zone:
            rebuilt += "+00:00" if zone == "Z" else zone
        try:
            parsed = dt.datetime.fromisoformat(rebuilt)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


@dataclass(frozen=True, slots=True)
class LabelAttribute:
    """One ``<name>`` + ``<name>-metadata`` pair found on a manifest line.

    ``type`` is the metadata's ``type`` as written (empty when absent, as in failed objects);
    ``kind`` is what the toolkit can do with it; ``failed`` means the metadata carries a
    ``failure-reason``, whatever else the line holds: the post-annotation Lambda writes a
    failed object as an empty label plus ``failure-reason``, and that empty label is not a
    negative.
    """

    name: str
    type: str
    creation_date: dt.datetime | None
    kind: LabelKind
    failed: bool = False
    failure_reason: str | None = None

    @property
    def convertible(self) -> bool:
        """True for object detection and image classification (single or multi-label)."""
        return self.kind in (LabelKind.DETECTION, LabelKind.CLASSIFICATION, LabelKind.MULTILABEL)


def _kind_of(name: str, type_: str, value: object) -> LabelKind:
    kind = _KINDS.get(type_.lower())
    if kind is not None:
        return kind
    if not type_ and isinstance(value, Mapping) and isinstance(value.get("annotations"), list):
        return LabelKind.DETECTION  # hand-made outputs sometimes drop "type"
    return LabelKind.UNSUPPORTED


def detect_label_attributes(data: Mapping[str, Any]) -> list[LabelAttribute]:
    """Every label attribute of one output-manifest line, newest ``creation-date`` first.

    A label attribute is a key ``X`` whose partner ``X-metadata`` is an object; the partner
    alone is enough (failed objects have no ``X``). Ties and missing dates keep file order.
    """
    found: list[LabelAttribute] = []
    for key, meta in data.items():
        if not key.endswith(METADATA_SUFFIX) or not isinstance(meta, Mapping):
            continue
        name = key[: -len(METADATA_SUFFIX)]
        if not name or name in ("source", "source-ref"):
            continue
        raw_type = meta.get("type")
        type_ = raw_type if isinstance(raw_type, str) else ""
        reason = meta.get("failure-reason")
        failed = reason is not None
        kind = LabelKind.FAILED if failed and not type_ else _kind_of(name, type_, data.get(name))
        found.append(
            LabelAttribute(
                name=name,
                type=type_,
                creation_date=parse_creation_date(meta.get("creation-date")),
                kind=kind,
                failed=failed,
                failure_reason=str(reason) if reason is not None else None,
            )
        )
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    # sorted() is stable, so equal dates keep file order.
    return sorted(found, key=lambda a: a.creation_date or oldest, reverse=True)
