"""The answer-source type every crowd reader implements, and what the readers share.

A :class:`CrowdSource` yields one :class:`CrowdItem` per image, pass after pass, in flat
memory, so a caller can fit a worker model on one pass and consolidate on the next. A first
pass told that another will follow (``items(again=True)``) keeps what it yields in a spool
file in the temporary folder, and later passes read the spool: a job on S3 is fetched once,
and every pass sees exactly the answers the first one read (an answer file that changes or
fails between passes cannot make them disagree). Sources whose files are not grouped by image
(:class:`IndexedSource`) load everything into an :class:`AnswerIndex` on the first pass
instead, and later passes read that.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import tempfile
import weakref
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePath, PurePosixPath
from typing import IO, Any, ClassVar, Literal

from gt_toolkit.errors import CrowdSourceError, NoMatchingObjectsError, StorageError
from gt_toolkit.formats.crowd import CrowdImage
from gt_toolkit.formats.crowd.answer_index import AnswerIndex
from gt_toolkit.formats.crowd.report import IngestReport, RejectHandler, Skipper, SkipReason
from gt_toolkit.formats.detection_label import image_side
from gt_toolkit.storage.files import Location, iter_chunks
from gt_toolkit.storage.s3 import S3Store, is_s3_uri
from gt_toolkit.text import not_utf8_at
from gt_toolkit.types import ImageSize, WorkerBox

__all__ = [
    "CrowdItem",
    "CrowdSource",
    "IndexedSource",
    "coordinate",
    "envelope",
    "first_line",
    "list_files",
    "open_stream",
    "positive_size",
]


@dataclass(frozen=True, slots=True)
class CrowdItem:
    """One image as a source read it, with what consolidation needs beyond the boxes.

    Attributes:
        image: the image and every annotator's boxes.
        time_spent: seconds per annotator (same order), where the tool records it.
        record: the manifest line a Ground Truth source read for this image (its output line
            starts from it); ``None`` for other tools, whose output line is built from the key.
        failure: why answers that exist could not be read; the image is then not
            consolidated but reported as failed.
        abstained: answers left out of ``image`` because none of their regions was read as
            a box (:attr:`IngestReport.abstained`): an image every answer abstained on has
            no annotators, but was answered.
    """

    image: CrowdImage
    time_spent: tuple[float | None, ...] = ()
    record: Mapping[str, Any] | None = None
    failure: str | None = None
    abstained: int = 0


class CrowdSource(ABC):
    """A multi-annotator source: one :class:`CrowdItem` per image, pass after pass.

    Args:
        location: the export (a file or folder, local or ``s3://``).
        store: the S3 store for ``s3://`` locations.
        on_reject: receives every broken record; ``None`` makes the first one a
            :class:`~gt_toolkit.errors.CrowdSourceError`.
    """

    kind: ClassVar[str]
    spools: ClassVar[bool] = True
    """Whether later passes replay the first pass's spool (``False``: the source re-reads
    something local and cheap, such as its own index)."""

    def __init__(
        self,
        location: Location,
        *,
        store: S3Store | None = None,
        on_reject: RejectHandler | None = None,
    ) -> None:
        self.location = os.fspath(location)
        self.store = store
        self.report = IngestReport()
        self.skip = Skipper(self.report, on_reject)
        self._started = False
        self._spool: str | None = None  # the first pass's items, once it ran to its end
        self._spool_files: list[weakref.finalize[[str], Any]] = []  # each deletes one

    @property
    def labels(self) -> list[str] | None:
        """The label list the export declares, in its order; ``None`` when it has none."""
        return None

    def items(self, *, again: bool = False) -> Iterator[CrowdItem]:
        """One item per image; ``again``: another pass will follow (module docstring).

        :attr:`report` describes the first pass: later passes count nothing again and hand
        no record to the reject handler twice. Without a spool (a first pass not told
        ``again``, or left unfinished) the next pass reads the source again.
        """
        if self._spool is not None:
            return _replay(self._spool)
        first = not self._started
        self._started = True
        items = self.read(first=first)
        if not first:
            return items
        counted = self._count(items)
        return self._spooled(counted) if again and self.spools else counted

    @abstractmethod
    def read(self, *, first: bool) -> Iterator[CrowdItem]:
        """One pass over the source (``first``: the pass that reports skips)."""

    def images(self) -> Iterator[CrowdImage]:
        """The images alone."""
        for item in self.items():
            yield item.image

    def close(self) -> None:
        """Release temporary files (the spool, finished or not; subclasses add their own)."""
        self._spool = None
        for remove in self._spool_files:
            remove()
        self._spool_files.clear()

    def __enter__(self) -> CrowdSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spooled(self, items: Iterable[CrowdItem]) -> Iterator[CrowdItem]:
        """``items`` as they come, each also pickled into a spool kept for later passes.

        The spool only saves reading the source again: when it cannot be written (a full
        temporary folder) this pass goes on without it, and the next reads the source.
        """
        fd, path = tempfile.mkstemp(prefix="gt-toolkit-crowd-", suffix=".spool")
        remove = weakref.finalize(self, _remove, path)  # also when close() is never called
        self._spool_files.append(remove)
        fh: IO[bytes] | None = os.fdopen(fd, "wb")
        try:
            for item in items:
                if fh is not None:
                    try:
                        pickle.dump(item, fh, protocol=pickle.HIGHEST_PROTOCOL)
                    except OSError:
                        _give_up(fh, remove)
                        fh = None
                yield item
            if fh is not None:
                try:
                    fh.close()
                except OSError:
                    remove()
                if remove.alive:  # written whole, and close() did not come first
                    self._spool = path
                fh = None
        finally:
            if fh is not None:  # the pass stopped early: nothing to replay
                _give_up(fh, remove)

    def _count(self, items: Iterable[CrowdItem]) -> Iterator[CrowdItem]:
        report = self.report
        for item in items:
            image = item.image
            report.images += 1
            report.answers += len(image.annotators)
            report.annotators.update(image.annotators)
            report.boxes += sum(len(b) for b in image.boxes)
            yield item


class IndexedSource(CrowdSource):
    """A source whose files are not grouped by image: loaded into an index on first use."""

    spools = False  # its index is its spool

    def __init__(
        self,
        location: Location,
        *,
        store: S3Store | None = None,
        on_reject: RejectHandler | None = None,
    ) -> None:
        super().__init__(location, store=store, on_reject=on_reject)
        self._index: AnswerIndex | None = None
        self._labels: dict[str, None] = {}  # ordered set

    @property
    def labels(self) -> list[str] | None:
        """Labels the files declare (CVAT label lists, COCO categories), first seen first."""
        self._loaded()
        return list(self._labels) or None

    def add_label(self, name: str) -> None:
        """Declare a label (kept in first-seen order; names reconcile labels across files)."""
        self._labels.setdefault(name, None)

    @abstractmethod
    def load(self, index: AnswerIndex) -> None:
        """Read every file into ``index``."""

    def _loaded(self) -> AnswerIndex:
        if self._index is None:
            index = AnswerIndex()
            try:
                self.load(index)
                superseded = index.finish()
            except BaseException:
                index.close()
                raise
            if superseded:
                self.report.skipped[SkipReason.SUPERSEDED.value] += superseded
            self._index = index
        return self._index

    def read(self, *, first: bool) -> Iterator[CrowdItem]:
        """The images in the order first seen, annotators in the order first seen."""
        index = self._loaded()
        for img, key, size in index.images():
            answers, abstained = [], 0
            for answer in index.answers(img):
                if answer.abstained is None:
                    answers.append(answer)
                    continue
                abstained += 1
                if first:
                    self.report.abstained[answer.abstained] += 1
            image = CrowdImage(
                key=key,
                image_size=size,
                annotators=tuple(a.annotator for a in answers),
                boxes=tuple(a.boxes for a in answers),
            )
            times = tuple(a.time_spent for a in answers)
            yield CrowdItem(image, time_spent=times, abstained=abstained)

    def close(self) -> None:
        """Delete the index."""
        super().close()
        if self._index is not None:
            self._index.close()
            self._index = None


def _replay(path: str) -> Iterator[CrowdItem]:
    """The items a first pass spooled, in its order, one at a time."""
    with Path(path).open("rb") as fh:
        while True:
            try:
                item: CrowdItem = pickle.load(fh)  # our own temporary file: trusted
            except EOFError:
                return
            yield item


def _give_up(fh: IO[bytes], remove: weakref.finalize[[str], Any]) -> None:
    """Close and delete an unfinished spool (an error closing it changes nothing then)."""
    with contextlib.suppress(OSError):
        fh.close()
    remove()


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


# -- shared helpers --------------------------------------------------------------------------


def first_line(exc: BaseException) -> str:
    """A parser's message without the multi-line context some parsers add (yajl's caret).

    yajl gives its message as bytes (holding the input's raw bytes): decoded, not ``repr``'d.
    """
    arg = exc.args[0] if len(exc.args) == 1 else None
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(exc)
    return next((line.strip() for line in text.splitlines() if line.strip()), repr(exc))


def coordinate(value: Any) -> float | None:
    """A finite number as a float; ``None`` for anything else (booleans included)."""
    if type(value) is float:  # the common case first: a fifth of the general test's cost
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer past the largest float
        return None
    return number if math.isfinite(number) else None


def attribute_turn(attributes: object) -> float | Literal["attributes", "attributes.rotation"]:
    """A COCO box's turn in ``attributes.rotation`` in degrees (0: none), else what is unread.

    CVAT's (datumaro's) COCO export keeps a turned box upright in ``bbox`` and its turn,
    clockwise about the centre, there: read without it, the box was taken for the upright
    one. The one reading of it for the crowd readers and ``from-coco`` (whose parser gives
    fractions as ``Decimal``).

    ``attributes`` absent, ``null``, ``{}`` or ``[]`` (some tools write an empty list for
    none) is no attributes. Anything else that is not an object (a list, a string, a
    number) gives ``"attributes"``: read as none, a box whose turn it may hold was taken for
    the upright one, silently. A rotation that is not a finite number gives
    ``"attributes.rotation"``.
    """
    if attributes is None or attributes == []:
        return 0.0
    if not isinstance(attributes, Mapping):
        return "attributes"
    turn = attributes.get("rotation")
    if turn is None:
        return 0.0
    degrees = coordinate(float(turn) if isinstance(turn, Decimal) else turn)
    return "attributes.rotation" if degrees is None else degrees


def positive_size(width: Any, height: Any) -> ImageSize | None:
    """An image size from two integers (or integral floats) in 1 to 2**31 - 1; else ``None``.

    The bound is :func:`~gt_toolkit.formats.detection_label.image_side`'s, every reader's:
    a larger number is a broken record, not an image.
    """
    w, h = coordinate(width), coordinate(height)
    side_w = None if w is None else image_side(w)
    side_h = None if h is None else image_side(h)
    if side_w is None or side_h is None:
        return None
    return {"width": side_w, "height": side_h}


def envelope(box: WorkerBox, degrees: float, *, pivot: Literal["top-left", "center"]) -> WorkerBox:
    """The axis-aligned envelope of ``box`` turned ``degrees`` clockwise about ``pivot``.

    Image y grows downwards, so clockwise on screen is the usual rotation matrix. Label
    Studio turns a rectangle about its top-left corner, CVAT about its centre.
    """
    left, top, width, height = box["left"], box["top"], box["width"], box["height"]
    px, py = (left, top) if pivot == "top-left" else (left + width / 2, top + height / 2)
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    xs, ys = [], []
    for x, y in (
        (left, top),
        (left + width, top),
        (left + width, top + height),
        (left, top + height),
    ):
        dx, dy = x - px, y - py
        xs.append(px + dx * cos - dy * sin)
        ys.append(py + dx * sin + dy * cos)
    return {
        "label": box["label"],
        "left": min(xs),
        "top": min(ys),
        "width": max(xs) - min(xs),
        "height": max(ys) - min(ys),
    }


def list_files(
    folder: Location, extensions: tuple[str, ...], *, store: S3Store | None = None
) -> list[str]:
    """The files directly or deeper under ``folder`` with one of ``extensions``, sorted.

    Raises:
        NoMatchingObjectsError: none found (or ``folder`` is not a folder).
        StorageError: a local file whose name is not UTF-8 (its name decodes to surrogates,
            which no rejects file, summary or annotator name can hold: the run stopped with
            a traceback at the first of them it wrote).
    """
    text = os.fspath(folder)
    if is_s3_uri(text):
        found = [
            o.uri
            for o in (store or S3Store()).iter_objects(
                text.rstrip("/") + "/", extensions=extensions
            )
        ]
    else:
        root = Path(text)
        found = sorted(
            str(p) for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(extensions)
        )
        for name in found:
            if not_utf8_at(name) is not None:
                raise StorageError(
                    f"{os.fsencode(name)!r}: the file name is not UTF-8, and the outputs name "
                    "each file read (an answers file or export also names its annotator) as "
                    "JSON text; rename it"
                )
    if not found:
        raise NoMatchingObjectsError(f"no {' or '.join(extensions)} files in {text}")
    return found


def _stem_names(path: PurePosixPath) -> tuple[str, str]:
    return path.stem, str(path.with_suffix(""))


def file_annotators(
    root: str,
    files: Sequence[str],
    *,
    names: Callable[[PurePosixPath], tuple[str, str]] = _stem_names,
    whole_path: bool = True,
) -> dict[str, str]:
    """The annotator each file under ``root`` names by itself: two files are one only by name.

    ``names`` gives a file's short name and its longer one from its path under ``root``
    (default: the stem, then the path without the extension). Each file takes the first of
    them no other file shares; else, with ``whole_path``, its whole path under ``root``.

    Raises:
        CrowdSourceError: two files would still name the same annotator, at the second one.
    """
    prefix = (root if is_s3_uri(root) else str(PurePath(root))).replace("\\", "/")
    prefix = prefix.rstrip("/") + "/"
    choices = {}
    for location in files:
        relative = location.replace("\\", "/").removeprefix(prefix)
        choices[location] = (*names(PurePosixPath(relative)), relative)
    last = 2 if whole_path else 1
    taken = [Counter(c[level] for c in choices.values()) for level in range(last)]
    named: dict[str, str] = {}
    first: dict[str, str] = {}
    for location, c in choices.items():
        name = next((c[n] for n in range(last) if taken[n][c[n]] == 1), c[last])
        if name in first:
            raise CrowdSourceError(
                location, "", f"names the same annotator {name!r} as {first[name]}"
            )
        first[name], named[location] = location, name
    return named


class _Chunks(io.RawIOBase):
    """A readable binary stream over an iterator of byte chunks (no copy of the rest)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = memoryview(b"")
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._at >= len(self._chunk):
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._chunk, self._at = memoryview(chunk), 0
        n = min(len(buffer), len(self._chunk) - self._at)
        buffer[:n] = self._chunk[self._at : self._at + n]
        self._at += n
        return n


@contextlib.contextmanager
def open_stream(
    location: Location, *, store: S3Store | None = None
) -> Iterator[io.BufferedReader[Any]]:
    """A buffered binary stream of a local file or S3 object (for streaming parsers).

    Raises:
        StorageError: the file or object cannot be opened.
    """
    text = os.fspath(location)
    if not is_s3_uri(text):
        try:
            stream = Path(text).open("rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise StorageError(f"cannot read {text}: {exc.strerror or exc}") from exc
        with stream:
            yield stream
        return
    chunks = iter_chunks(text, store=store)
    with io.BufferedReader(_Chunks(chunks), buffer_size=1 << 16) as buffered:
        try:
            yield buffered
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
