"""What every converter shares: options, the result, splits, image names and copies.

Converters read records with :mod:`gt_toolkit.formats.output_manifest` and write with
:mod:`gt_toolkit.storage.files`,
so every target takes local paths or ``s3://`` locations on both sides.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gt_toolkit.errors import ConversionError
from gt_toolkit.formats.manifest import RejectPolicy
from gt_toolkit.formats.output_manifest import (
    BoxPolicy,
    ClassificationRecord,
    DetectionRecord,
    EmptyPolicy,
    LabelKind,
    OutputStats,
    iter_output_records,
)
from gt_toolkit.formats.sampling import SplitName, Splitter
from gt_toolkit.progress import progress
from gt_toolkit.storage.files import Location, join_location, write_bytes
from gt_toolkit.storage.image_mirror import ImageMirror, read_image_size
from gt_toolkit.storage.s3 import S3Store, is_s3_uri

__all__ = [
    "CLASSIFICATION",
    "DETECTION",
    "ConversionResult",
    "ConvertOptions",
    "ImageCopier",
    "ImageNamer",
    "read_records",
]

DETECTION = frozenset({LabelKind.DETECTION})
CLASSIFICATION = frozenset({LabelKind.CLASSIFICATION, LabelKind.MULTILABEL})
ANY = DETECTION | CLASSIFICATION


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertOptions:
    """Options of every target; each target reads the ones it needs.

    ``empty_policy`` and ``copy_images`` are ``None`` for "the target's default".
    """

    label_attribute: str | None = None
    policy: RejectPolicy | str = RejectPolicy.COLLECT
    rejects: Location | None = None
    box_policy: BoxPolicy | str = BoxPolicy.CLIP
    empty_policy: EmptyPolicy | str | None = None
    validation_fraction: float = 0.2
    seed: int | str = 0
    stratify: bool = False
    include_metadata: bool = False
    copy_images: bool | None = None
    images_dir: str | None = None
    images_prefix: str | None = None
    workers: int = 16
    channel_prefix: str | None = None
    image_prefix: str | None = None
    job_name: str = "prelabel"
    human_annotated: bool = False
    store: S3Store | None = None


@dataclass(slots=True)
class ConversionResult:
    """What a conversion wrote and saw; ``to_json`` is the summary file.

    ``notes`` are things the user must act on before training (an empty channel, local
    ``S3Uri`` values); they are printed with the summary, not only buried in a file.
    """

    target: str
    stats: OutputStats
    outputs: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    image_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Stats, outputs and target-specific facts, ready for ``summary.json``."""
        out: dict[str, Any] = {"target": self.target, **self.stats.to_json()}
        out["outputs"] = self.outputs
        out.update(self.extra)
        out["image_errors"] = len(self.image_errors)
        if self.image_errors:
            out["image_error_examples"] = self.image_errors[:20]
        if self.notes:
            out["notes"] = self.notes
        return out

    def summary_lines(self) -> list[str]:
        """The printed summary."""
        lines = [f"gt-convert {self.target}:", *(f"  {x}" for x in self.stats.summary_lines())]
        lines += [f"  wrote {k}: {v}" for k, v in self.outputs.items()]
        if self.image_errors:
            lines.append(
                f"  {len(self.image_errors)} image copies FAILED, e.g. {self.image_errors[0]}"
            )
        lines += [f"  note: {note}" for note in self.notes]
        return lines


def read_records(
    source: Location,
    options: ConvertOptions,
    *,
    kinds: frozenset[LabelKind],
    stats: OutputStats,
    default_empty: EmptyPolicy = EmptyPolicy.KEEP,
    first_pass: bool = False,
    desc: str = "objects",
) -> Iterator[DetectionRecord | ClassificationRecord]:
    """The records of ``source`` under the options; ``first_pass`` reports no rejects."""
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
    )
    if first_pass or not sys.stderr.isatty():
        return records
    return progress(records, desc=desc, unit="obj")


def classes_of(record: DetectionRecord | ClassificationRecord) -> set[str]:
    """The class names present on a record (for stratification)."""
    if isinstance(record, DetectionRecord):
        return {b.label for b in record.boxes}
    return set(record.labels)


class ImageNamer:
    """Unique, stable file names for images: the source-ref's base name, de-duplicated.

    Two source-refs with one stem (``a/img.jpg``, ``b/img.jpg``, ``c/img.png``) must not
    overwrite each other's image or annotation file; later ones get a short hash of their
    source-ref before the extension.
    """

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}

    def __call__(self, source_ref: str) -> str:
        """The file name for ``source_ref``."""
        p = PurePosixPath(PurePosixPath(source_ref).name or "image")
        owner = self._owner.setdefault(p.stem, source_ref)
        if owner == source_ref:
            return p.name
        digest = hashlib.blake2b(source_ref.encode(), digest_size=4).hexdigest()
        stem = f"{p.stem}-{digest}"
        self._owner.setdefault(stem, source_ref)
        return f"{stem}{p.suffix}"


class ImageCopier:
    """Copy images to an output location with a bounded thread pool.

    Sources are ``source-ref`` URIs; with ``images_dir`` they are looked up in that local
    mirror first (:class:`~gt_toolkit.storage.image_mirror.ImageMirror`), so no download is
    needed. At most ``4 * workers`` copies are in flight, so memory stays
    bounded; failures are collected, not raised, so one bad image does not lose the rest.
    """

    def __init__(
        self,
        *,
        store: S3Store | None,
        workers: int = 16,
        images_dir: str | None = None,
        images_prefix: str | None = None,
    ) -> None:
        self.store = store if store is not None else S3Store()
        self.workers = max(1, workers)
        self.mirror = ImageMirror(images_dir, images_prefix) if images_dir else None
        self.errors: list[str] = []
        self.copied = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: set[Future[None]] = set()
        self._bar: Any = None

    def local_path(self, source_ref: str) -> Path | None:
        """The local mirror file of ``source_ref``, if there is one."""
        return self.mirror.local_path(source_ref) if self.mirror is not None else None

    def __enter__(self) -> ImageCopier:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="gt-copy")
        return self

    def __exit__(self, *exc: object) -> None:
        self.drain()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def submit(self, source_ref: str, dest: Location) -> None:
        """Queue one copy; blocks while too many are in flight."""
        self._run(self._copy, source_ref, os.fspath(dest), what=source_ref)

    def submit_write(self, dest: Location, data: bytes) -> None:
        """Queue one small file write (annotation files on S3 are many round trips)."""
        if not is_s3_uri(os.fspath(dest)):
            # One small file per image: an fsync each would dominate (measured 98 s for 200k).
            write_bytes(dest, data, durable=False)
            return
        self._run(write_bytes, dest, data, what=os.fspath(dest), store=self.store)

    def _run(self, fn: Callable[..., None], *args: Any, what: str, **kwargs: Any) -> None:
        if self._pool is None:
            raise RuntimeError("ImageCopier must be used as a context manager")
        while len(self._pending) >= 4 * self.workers:
            done, self._pending = wait(self._pending, return_when=FIRST_COMPLETED)
            self._collect(done)
        future = self._pool.submit(fn, *args, **kwargs)
        future.what = what  # type: ignore[attr-defined]
        self._pending.add(future)

    def drain(self) -> None:
        """Wait for every queued copy."""
        done, _ = wait(self._pending)
        self._collect(done)
        self._pending = set()

    def _collect(self, done: Iterable[Future[None]]) -> None:
        for future in done:
            exc = future.exception()
            if exc is not None:
                self.errors.append(f"{future.what}: {exc}")  # type: ignore[attr-defined]
            else:
                self.copied += 1

    def _copy(self, source_ref: str, dest: str) -> None:
        local = self.local_path(source_ref)
        if local is not None:
            if is_s3_uri(dest):
                self.store.upload_file(local, dest)
            else:
                Path(dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, dest)
            return
        if not is_s3_uri(source_ref):
            raise ConversionError(f"no local copy of {source_ref} and it is not an s3:// URI")
        if is_s3_uri(dest):
            self.store.put_bytes(dest, self.store.get_bytes(source_ref))
        else:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            self.store.download_file(source_ref, dest)


def out_path(base: Location, *parts: str) -> str:
    """A location under an output folder or ``s3://`` prefix."""
    return join_location(base, *parts)


def record_size(rec: DetectionRecord, copier: ImageCopier | None) -> tuple[int, int, int] | None:
    """``(width, height, depth)`` from the label, else from a local mirror of the image."""
    if rec.image_size is not None:
        size = rec.image_size
        return size["width"], size["height"], size.get("depth", 3)
    local = copier.local_path(rec.source_ref) if copier is not None else None
    found = read_image_size(local) if local is not None else None
    if found is None:
        return None
    return found["width"], found["height"], 3


def skip_record(stats: OutputStats, reason: str) -> None:
    """Count a record a target cannot use (after the reader accepted it) as a reject."""
    stats.objects -= 1
    stats.rejected[reason] += 1


def num(x: float) -> int | float:
    """Whole pixel values as integers (how Ground Truth and most readers write them)."""
    return int(x) if float(x).is_integer() else round(x, 3)


def read_detections(
    source: Location, options: ConvertOptions, *, stats: OutputStats, desc: str = "objects"
) -> Iterator[DetectionRecord]:
    """Object-detection records (see :func:`read_records`)."""
    for rec in read_records(source, options, kinds=DETECTION, stats=stats, desc=desc):
        if isinstance(rec, DetectionRecord):
            yield rec


def read_classifications(
    source: Location, options: ConvertOptions, *, stats: OutputStats, desc: str = "objects"
) -> Iterator[ClassificationRecord]:
    """Image-classification records (see :func:`read_records`)."""
    for rec in read_records(source, options, kinds=CLASSIFICATION, stats=stats, desc=desc):
        if isinstance(rec, ClassificationRecord):
            yield rec


def copier_for(options: ConvertOptions) -> ImageCopier:
    """An :class:`ImageCopier` configured from the options."""
    return ImageCopier(
        store=options.store,
        workers=options.workers,
        images_dir=options.images_dir,
        images_prefix=options.images_prefix,
    )


def planned_splitter(
    source: Location,
    options: ConvertOptions,
    *,
    kinds: frozenset[LabelKind] = DETECTION,
    default_empty: EmptyPolicy = EmptyPolicy.KEEP,
) -> Callable[[DetectionRecord | ClassificationRecord], SplitName]:
    """Each record's split under the options (:class:`~gt_toolkit.formats.sampling.Splitter`).

    A stratified split needs every record's classes before the first one is placed, so it
    reads ``source`` once more up front (quietly: no rejects file, no progress bar);
    ``kinds`` and ``default_empty`` must match the converting pass so both see one list.
    """
    try:
        splitter = Splitter(validation_fraction=options.validation_fraction, seed=options.seed)
    except ValueError as exc:
        raise ConversionError(str(exc)) from None
    if options.stratify:
        first = read_records(
            source,
            options,
            kinds=kinds,
            stats=OutputStats(),
            default_empty=default_empty,
            first_pass=True,
        )
        splitter.plan((rec.source_ref, classes_of(rec)) for rec in first)

    def split(record: DetectionRecord | ClassificationRecord) -> SplitName:
        try:
            return splitter(record.source_ref)
        except ValueError as exc:
            raise ConversionError(str(exc)) from None

    return split


def sized_detections(
    source: Location,
    options: ConvertOptions,
    *,
    stats: OutputStats,
    copier: ImageCopier,
    desc: str,
) -> Iterator[tuple[DetectionRecord, tuple[int, int, int], str]]:
    """Detection records with their ``(width, height, depth)`` and a unique image file name.

    Every per-image target needs the size; a record without ``image_size`` and without a
    local mirror of its image is counted as a ``no-image-size`` reject and skipped.
    """
    namer = ImageNamer()
    for rec in read_detections(source, options, stats=stats, desc=desc):
        size = record_size(rec, copier)
        if size is None:
            skip_record(stats, "no-image-size")
            continue
        yield rec, size, namer(rec.source_ref)
