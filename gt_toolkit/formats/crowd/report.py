"""What reading a crowd source did: counts, and every record it could not use, with why.

Nothing is dropped silently. A record is either read, or *skipped* with a
:class:`SkipReason`: a deliberate skip (a cancelled annotation, a result that is not a box)
is counted; a record that is broken (:attr:`SkipReason.is_reject`) is also handed to the
caller's reject handler with its file and position, or, without a handler, stops the read
with a :class:`~gt_toolkit.errors.CrowdSourceError`.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from gt_toolkit.errors import CrowdSourceError

__all__ = [
    "CrowdReject",
    "IngestReport",
    "RejectHandler",
    "SkipReason",
    "Skipper",
    "unread_reason",
]

_RAW_CHARS = 2000  # what a rejects-file record keeps of the broken input


class SkipReason(StrEnum):
    """Why a record of a crowd source did not become an annotator's box or answer."""

    CANCELLED = "cancelled-annotation"
    """Label Studio: ``was_cancelled`` (or the old ``skipped``): the annotator skipped it."""
    NOT_A_BOX = "not-a-box"
    """A result of another kind (choices, polygons, keypoints, tracks) in a box export."""
    CROWD_REGION = "crowd-region"
    """COCO ``iscrowd: 1``: a region covering several objects, not one object's box."""
    SUPERSEDED = "superseded-answer"
    """An annotator answered the same image twice; the later answer is kept."""
    DUPLICATE_ANSWER = "duplicate-answer"
    """A second answer to an image by an annotator whose first answer came from elsewhere
    (two CVAT job files of one assignee covering the same frame); the first is kept."""
    MALFORMED = "malformed"
    """A record whose fields are missing or of the wrong type."""
    NO_IMAGE_SIZE = "no-image-size"
    """A box in percent of an image whose size the export does not give."""
    NO_IMAGE = "no-image-reference"
    """A task or annotation that names no image."""
    UNKNOWN_IMAGE = "unknown-image"
    """A COCO annotation, or a worker answer, for an image the file does not list."""
    UNKNOWN_CATEGORY = "unknown-category"
    """A COCO annotation whose ``category_id`` is not in ``categories``."""
    NO_ANNOTATOR = "no-annotator"
    """An annotation that does not say who drew it."""
    RATER_NOT_LISTED = "rater-not-listed"
    """A multi-rater COCO annotation by a rater missing from the image's ``rater_list``."""
    UNREADABLE_ANSWER = "unreadable-answer"
    """A worker-response file that could not be read or decoded."""

    @property
    def is_reject(self) -> bool:
        """A broken record (kept in the rejects file), not a deliberate skip."""
        return self not in _DELIBERATE


_DELIBERATE = frozenset(
    {SkipReason.CANCELLED, SkipReason.NOT_A_BOX, SkipReason.CROWD_REGION, SkipReason.SUPERSEDED}
)


def unread_reason(known: str | None, reason: SkipReason) -> str:
    """Why an annotator's regions on an image were not read, folding in one more region.

    The first reason met, except that a rejected region (broken data) outranks one skipped
    on purpose (a polygon): the summary then counts the abstention where the rejects are.
    """
    if known is None or (reason.is_reject and not SkipReason(known).is_reject):
        return reason.value
    return known


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None``, as orjson writes them (never ``Infinity``).

    Strict JSON has no ``Infinity``: the standard library would write one, and a reader of
    the rejects file would refuse its line.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class CrowdReject:
    """One broken record, with everything needed to find and fix it."""

    source: str
    position: str
    reason: SkipReason
    detail: str
    raw: Any = None

    def to_json(self) -> dict[str, Any]:
        """The rejects-file record (the raw input trimmed to a readable size)."""
        raw = self.raw
        if raw is not None and not isinstance(raw, str):
            try:
                raw = orjson.dumps(raw, default=str).decode()
            except TypeError:  # an integer past 64 bits: valid JSON that orjson cannot write
                raw = json.dumps(
                    _finite(raw), default=str, ensure_ascii=False, separators=(",", ":")
                )
        return {
            "file": self.source,
            "position": self.position,
            "reason": self.reason.value,
            "detail": self.detail[:_RAW_CHARS],
            "raw": raw[:_RAW_CHARS] if isinstance(raw, str) else None,
        }

    def __str__(self) -> str:
        return f"{self.source}: {self.position}: {self.reason.value}: {self.detail}"


RejectHandler = Callable[[CrowdReject], None]
"""Receives each broken record; ``None`` instead makes the first one an error."""


@dataclass
class IngestReport:
    """Counts of one read of a crowd source.

    Attributes:
        images: images yielded (one per image, whoever saw it).
        annotators: distinct annotators seen.
        answers: (image, annotator) pairs, including annotators who drew nothing.
        boxes: boxes read.
        rotated: rotated rectangles read as their axis-aligned envelope (also in ``boxes``).
        flipped: rectangles drawn with a negative width or height, read as the box between
            their edges (also in ``boxes``).
        several_labels: regions given more than one label, read with their first (also in
            ``boxes``): a box is one object of one class.
        skipped: records not used, by :class:`SkipReason` value (skipped on purpose and
            rejected alike; the summary and the JSON tell the two apart).
        abstained: (image, annotator) pairs left out because none of the annotator's
            regions on the image was read as a box (not in ``answers``), by
            :func:`unread_reason`: their polygons say nothing for or against the others'
            boxes, where an annotator who drew nothing says there is nothing.
        failed_images: images whose answers exist but could not be read (listed as rejects).
    """

    images: int = 0
    annotators: set[str] = field(default_factory=set)
    answers: int = 0
    boxes: int = 0
    rotated: int = 0
    flipped: int = 0
    several_labels: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    abstained: Counter[str] = field(default_factory=Counter)
    failed_images: int = 0

    @property
    def rejected(self) -> int:
        """Broken records: what the rejects file holds."""
        return sum(n for reason, n in self.skipped.items() if SkipReason(reason).is_reject)

    def summary(self) -> str:
        """One line for a person."""
        parts = [
            f"{self.images} images",
            f"{len(self.annotators)} annotators",
            f"{self.answers} answers",
            f"{self.boxes} boxes read",
        ]
        if self.rotated:
            parts.append(f"{self.rotated} rotated boxes read as their axis-aligned envelope")
        if self.flipped:
            parts.append(f"{self.flipped} boxes of negative width or height read flipped")
        if self.several_labels:
            parts.append(f"{self.several_labels} boxes of several labels read with their first")
        for kind, counts in (("skipped", self._by_kind(False)), ("rejected", self._by_kind(True))):
            if counts:
                parts.append(f"{kind}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if self.abstained:
            left = ", ".join(f"{k} {v}" for k, v in sorted(self.abstained.items()))
            parts.append(f"answers without a box read, left out: {left}")
        return "; ".join(parts)

    def _by_kind(self, reject: bool) -> dict[str, int]:
        """The reasons skipped on purpose (``reject=False``) or rejected, sorted, with counts."""
        return {
            reason: n
            for reason, n in sorted(self.skipped.items())
            if SkipReason(reason).is_reject is reject
        }

    def to_json(self) -> dict[str, Any]:
        """The counts as plain JSON (annotators as a count)."""
        return {
            "images": self.images,
            "annotators": len(self.annotators),
            "answers": self.answers,
            "boxes": self.boxes,
            "rotated": self.rotated,
            "flipped": self.flipped,
            "several_labels": self.several_labels,
            "skipped": self._by_kind(False),
            "rejected": self.rejected,
            "rejected_by_reason": self._by_kind(True),
            "abstained": dict(sorted(self.abstained.items())),
            "failed_images": self.failed_images,
        }


@dataclass
class Skipper:
    """Counts skips into a report and routes broken records to the handler (or raises)."""

    report: IngestReport
    on_reject: RejectHandler | None

    def __call__(
        self, source: str, position: str, reason: SkipReason, detail: str = "", raw: Any = None
    ) -> None:
        """Record one skipped record.

        Raises:
            CrowdSourceError: a broken record and no reject handler.
        """
        self.report.skipped[reason.value] += 1
        if not reason.is_reject:
            return
        if self.on_reject is None:
            raise CrowdSourceError(source, position, f"{reason.value}: {detail}")
        self.on_reject(CrowdReject(source, position, reason, detail, raw))
