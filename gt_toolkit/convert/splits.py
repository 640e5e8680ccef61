"""Train/validation assignment for the targets that write both channels.

Plain mode is the toolkit's stable hash split (:func:`gt_toolkit.formats.sampling.split_name`)
per record, in constant memory. Stratified mode plans every object's split in a first pass.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

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
from gt_toolkit.formats.sampling import hash_unit
from gt_toolkit.storage.files import Location

__all__ = ["SplitName", "Splitter", "planned_splitter"]

SplitName = Literal["train", "validation"]
_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes


def _classes_of(record: DetectionRecord | ClassificationRecord) -> frozenset[str]:
    """The class names present on a record (for stratification)."""
    if isinstance(record, DetectionRecord):
        return frozenset(b.label for b in record.boxes)
    return frozenset(record.labels)


class Splitter:
    """Train/validation assignment: the foundation's stable hash split, or stratified.

    Stratified mode needs a first pass (:meth:`plan`): each object's stratum is its rarest
    class (images without classes form their own stratum), and within a stratum the objects
    with the smallest split hashes go to validation, so every stratum gets
    ``round(fraction * n)`` validation objects. It keeps 9 bytes per object.
    """

    def __init__(self, *, fraction: float, seed: int | str) -> None:
        if not 0 <= fraction <= 1:
            raise ConversionError(f"the validation fraction must be within 0..1, got {fraction}")
        self.fraction = fraction
        self.seed = seed
        self._plan: np.ndarray[Any, np.dtype[np.bool_]] | None = None
        self._salt = f"split:{seed}\x00".encode()
        self._index = 0

    def plan(self, records: Iterable[DetectionRecord | ClassificationRecord]) -> None:
        """First pass of stratified mode: decide every object's split."""
        hashes: list[float] = []
        set_ids: list[int] = []
        sets: dict[frozenset[str], int] = {}
        counts: Counter[str] = Counter()
        salt = f"split:{self.seed}"
        for rec in records:
            names = _classes_of(rec)
            counts.update(names)
            set_ids.append(sets.setdefault(names, len(sets)))
            hashes.append(hash_unit(rec.source_ref, salt))
        stratum_of_set = {
            sid: min(names, key=lambda n: (counts[n], n)) if names else ""
            for names, sid in sets.items()
        }
        h = np.asarray(hashes, dtype=np.float64)
        strata = np.asarray([stratum_of_set[s] for s in set_ids], dtype=object)
        plan = np.zeros(len(h), dtype=np.bool_)
        for stratum in set(stratum_of_set.values()):
            idx = np.flatnonzero(strata == stratum)
            k = round(self.fraction * len(idx))
            if k:
                plan[idx[np.argsort(h[idx], kind="stable")[:k]]] = True
        self._plan = plan
        self._index = 0

    def __call__(self, record: DetectionRecord | ClassificationRecord) -> SplitName:
        """The split of the next record (records must come in the planned order)."""
        if self._plan is None:
            # split_name's rule, inlined (it is per line): blake2b(salt, key) as a unit float.
            digest = _blake2b(self._salt + record.source_ref.encode(), digest_size=8).digest()
            return "validation" if _from_bytes(digest, "big") / 2**64 < self.fraction else "train"
        i = self._index
        self._index += 1
        if i >= len(self._plan):
            raise ConversionError("the input changed between the two passes of a stratified split")
        return "validation" if self._plan[i] else "train"


def planned_splitter(
    source: Location,
    options: ConvertOptions,
    *,
    kinds: frozenset[LabelKind] = DETECTION,
    default_empty: EmptyPolicy = EmptyPolicy.KEEP,
) -> Splitter:
    """The options' train/validation :class:`Splitter`, planned when ``stratify`` is on.

    A stratified split needs every record's classes before the first one is placed, so it
    reads ``source`` once more up front (quietly: no rejects file, no progress bar);
    ``kinds`` and ``default_empty`` must match the converting pass so both see one list.
    """
    splitter = Splitter(fraction=options.validation_fraction, seed=options.seed)
    if options.stratify:
        splitter.plan(
            read_records(
                source,
                options,
                kinds=kinds,
                stats=OutputStats(),
                default_empty=default_empty,
                first_pass=True,
            )
        )
    return splitter
