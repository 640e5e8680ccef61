"""Ground Truth manifests (JSON Lines): parse, validate, stream, write.

The pure core is :func:`parse_manifest_lines`, which maps raw byte lines to
:class:`ManifestLine` or :class:`RejectedLine` values. :func:`read_manifest` is the I/O edge:
it streams a local file or S3 object line by line, applies a :class:`RejectPolicy` and routes
rejects to a JSON Lines rejects file. Contract: ``docs/ground-truth-formats.md`` §1.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any, NamedTuple

import orjson

from gt_toolkit.errors import ManifestError, S3UriError
from gt_toolkit.storage.files import Location, atomic_output, iter_line_batches, write_lines
from gt_toolkit.storage.s3 import S3Store, parse_s3_uri
from gt_toolkit.text import utf8_text

__all__ = [
    "MAX_LINE_CHARS",
    "ManifestLine",
    "ReadStats",
    "RejectPolicy",
    "RejectReason",
    "RejectedLine",
    "RejectsSink",
    "dataset_object_id",
    "dump_line",
    "iter_accepted_lines",
    "parse_manifest_lines",
    "read_manifest",
    "write_manifest",
]

logger = logging.getLogger(__name__)

MAX_LINE_CHARS = 100_000
_BOM = b"\xef\xbb\xbf"
_SOURCE_KEYS = ("source-ref", "source")
_MISSING: Any = object()


class RejectReason(StrEnum):
    """Why a manifest line was rejected; the value is what the rejects file records."""

    INVALID_UTF8 = "invalid-utf8"
    BOM = "utf8-bom"
    TOO_LONG = "line-too-long"
    INVALID_JSON = "invalid-json"
    NOT_OBJECT = "not-an-object"
    NO_SOURCE = "no-source"
    BAD_SOURCE_REF = "bad-source-ref"
    BAD_SOURCE = "bad-source"
    DUPLICATE_SOURCE = "duplicate-source"
    DOLLAR_ATTRIBUTE = "dollar-attribute"


class RejectPolicy(StrEnum):
    """What to do with a bad line: stop at once, or keep going and collect it."""

    STRICT = "strict"
    COLLECT = "collect"


class ManifestLine(NamedTuple):
    """One accepted line: its 1-based number, the parsed object and the raw bytes.

    A named tuple, not a dataclass: one is made per line, and tuple construction is several
    times cheaper on this hot path. ``raw`` is what :func:`write_manifest` writes back, so a
    caller that changes ``data`` must write ``data`` itself, not the line.
    """

    line_no: int
    data: dict[str, Any]
    raw: bytes


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """One rejected line, with everything needed to find and fix it."""

    source: str
    line_no: int
    reason: RejectReason
    detail: str
    raw: bytes

    def to_json(self) -> dict[str, Any]:
        """The rejects-file record; undecodable bytes are kept as backslash escapes."""
        return {
            "file": self.source,
            "line": self.line_no,
            "reason": self.reason.value,
            "detail": self.detail,
            "raw": self.raw.decode("utf-8", "backslashreplace"),
        }

    def __str__(self) -> str:
        return f"{self.source}:{self.line_no}: {self.reason.value}: {self.detail}"


@dataclass(slots=True)
class ReadStats:
    """Counts from one read; ``rejected`` maps reason to count."""

    lines: int = 0
    accepted: int = 0
    blank: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def rejected_total(self) -> int:
        """All rejected lines, whatever the reason."""
        return sum(self.rejected.values())

    def summary(self) -> str:
        """One line for a person: what was read, kept, skipped and rejected."""
        parts = [f"{self.lines} lines", f"{self.accepted} accepted"]
        if self.blank:
            parts.append(f"{self.blank} blank skipped")
        if self.rejected:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items()))
            parts.append(f"{self.rejected_total} rejected ({detail})")
        return ", ".join(parts)


def _check_object(
    obj: dict[str, Any], raw: bytes, require_source: bool
) -> tuple[RejectReason, str] | None:
    """The manifest rules for one parsed line (``docs/ground-truth-formats.md`` §1)."""
    for key in obj:
        if key.startswith("$"):
            return RejectReason.DOLLAR_ATTRIBUTE, f"attribute name {key!r} starts with '$'"
    repeated = _repeated_source_key(raw)
    if repeated is not None:
        return RejectReason.DUPLICATE_SOURCE, repeated
    if "source-ref" in obj:
        ref = obj["source-ref"]
        try:
            parse_s3_uri(ref)
        except S3UriError as exc:
            return RejectReason.BAD_SOURCE_REF, f"source-ref: {exc}"
    elif "source" in obj:
        if not isinstance(obj["source"], str):
            return RejectReason.BAD_SOURCE, "source must be a string"
    elif require_source:
        return RejectReason.NO_SOURCE, "the object has neither 'source-ref' nor 'source'"
    return None


def _may_repeat_source(raw: bytes) -> bool:
    r"""False when the line cannot hold ``source-ref`` or ``source`` twice at the top level.

    A JSON parser keeps the last of two equal keys, so ``{"source-ref": "bad", "source-ref":
    "s3://ok/a"}`` would pass; a repeat needs two ``"source`` texts, or a key spelled with
    ``\u00XX`` escapes.
    """
    return raw.count(b'"source') > 1 or b"\\u00" in raw


def _repeated_source_key(raw: bytes) -> str | None:
    """Why the line names ``source-ref`` or ``source`` more than once, or ``None``."""
    if not _may_repeat_source(raw):
        return None
    top: list[tuple[str, Any]] = []

    def keep_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        top[:] = pairs  # the top-level object is decoded last
        return {}

    try:
        json.loads(raw, object_pairs_hook=keep_pairs)
    except RecursionError:  # orjson allows deeper nesting than the stdlib parser
        return "nested too deeply to check its keys"
    except ValueError:  # pragma: no cover - orjson accepted the line, and json is laxer
        return None
    counts = Counter(key for key, _ in top)
    twice = [key for key in _SOURCE_KEYS if counts[key] > 1]
    if not twice:
        return None
    return f"{twice[0]!r} appears {counts[twice[0]]} times (a reader would keep only the last)"


def parse_line(
    raw: bytes, *, require_source: bool = True
) -> dict[str, Any] | tuple[RejectReason, str]:
    """Parse one raw line (no newline) into an object, or a ``(reason, detail)`` pair."""
    if raw.startswith(_BOM):
        return RejectReason.BOM, "line starts with a UTF-8 byte order mark"
    if len(raw) > MAX_LINE_CHARS:
        try:
            chars = len(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            return RejectReason.INVALID_UTF8, f"invalid UTF-8 at byte {exc.start}"
        if chars > MAX_LINE_CHARS:
            return RejectReason.TOO_LONG, f"{chars} characters, the limit is {MAX_LINE_CHARS}"
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return RejectReason.INVALID_UTF8, f"invalid UTF-8 at byte {uexc.start}"
        return RejectReason.INVALID_JSON, str(exc)
    if not isinstance(obj, dict):
        return RejectReason.NOT_OBJECT, f"a JSON {type(obj).__name__}, not an object"
    problem = _check_object(obj, raw, require_source)
    return problem if problem is not None else obj


def _valid_ref(ref: str) -> bool:
    try:
        parse_s3_uri(ref)
    except S3UriError:
        return False
    return True


def iter_accepted_lines(
    lines: Iterable[bytes],
    *,
    source: str,
    require_source: bool,
    on_reject: Callable[[RejectedLine], None],
    blank: list[int],
    on_close: Callable[[int, BaseException | None], None] | None = None,
) -> Iterator[ManifestLine]:
    r"""The manifest hot path: yield accepted lines, hand every reject to ``on_reject``.

    ``lines`` must come without newline or trailing CR (:func:`iter_line_batches` strips both).
    ``on_close`` gets the number of lines read and the exception that ended the read, if any
    (``None`` also when the caller stopped early).

    Clearly valid lines take an inlined fast path (one ``orjson.loads``, two dict looks, a
    prefix compare); anything unusual goes through :func:`parse_line`, which decides the
    reject reason. The fast path accepts a line only where :func:`parse_line` would (a
    property test checks it). Measured in bench/manifest_throughput.py.
    """
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    new = tuple.__new__  # NamedTuple's own __new__ is a Python function: 2x slower
    line_type = ManifestLine  # globals bound once: looked up per line otherwise
    missing = _MISSING
    max_chars = MAX_LINE_CHARS
    known = "s3://"  # "s3://<bucket>/" of the last source-ref that passed the full check
    known_len = 99_999_999  # no ref is longer: nothing passes the cheap check before one full
    line_no = 0
    error: BaseException | None = None
    try:
        for line_no, raw in enumerate(lines, 1):
            # 36 is "$" and 92 "\\": a line without "$" (nor a \\u00XX escape) cannot have
            # a "$..." attribute name, and an int membership test is a memchr (~20 ns). With
            # no escape and one '"source', no source key is repeated (_may_repeat_source).
            # Lines come without CR (callers strip it).
            if (
                len(raw) <= max_chars
                and 36 not in raw
                and (92 not in raw or b"\\u00" not in raw)
                and raw.count(b'"source') < 2
            ):
                try:
                    obj = loads(raw)
                except decode_error:
                    obj = None
                if obj.__class__ is dict:
                    ref = obj.get("source-ref", missing)
                    if ref.__class__ is str:
                        if len(ref) > known_len and ref.startswith(known):
                            yield new(line_type, (line_no, obj, raw))
                            continue
                        if _valid_ref(ref):
                            known = ref[: ref.index("/", 5) + 1]
                            known_len = len(known)
                            yield new(line_type, (line_no, obj, raw))
                            continue
                    elif ref is missing and obj.get("source").__class__ is str:
                        yield new(line_type, (line_no, obj, raw))
                        continue
            if not raw.strip():
                blank.append(line_no)
                continue
            parsed = parse_line(raw, require_source=require_source)
            if isinstance(parsed, dict):
                yield ManifestLine(line_no, parsed, raw)
            else:
                on_reject(RejectedLine(source, line_no, parsed[0], parsed[1], raw))
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        if on_close is not None:
            on_close(line_no, error)


def parse_manifest_lines(
    lines: Iterable[bytes],
    *,
    source: str,
    require_source: bool = True,
    blank: list[int] | None = None,
    strip_cr: bool = True,
) -> Iterator[ManifestLine | RejectedLine]:
    r"""Map raw lines to accepted or rejected values in line order, numbering from 1.

    Blank lines are skipped; their numbers are appended to ``blank`` when given, so callers
    can report them. A trailing ``\r`` (CRLF files) is removed; lines from
    :func:`~gt_toolkit.storage.files.iter_raw_lines` come without one, so ``strip_cr=False`` spares
    that per-line pass.
    """
    rejected: list[RejectedLine] = []
    for line in iter_accepted_lines(
        (line[:-1] if line.endswith(b"\r") else line for line in lines) if strip_cr else lines,
        source=source,
        require_source=require_source,
        on_reject=rejected.append,
        blank=blank if blank is not None else [],
    ):
        if rejected:
            yield from rejected
            rejected.clear()
        yield line
    yield from rejected


def read_manifest(
    location: Location,
    *,
    policy: RejectPolicy | str = RejectPolicy.STRICT,
    rejects: Location | None = None,
    stats: ReadStats | None = None,
    store: S3Store | None = None,
    require_source: bool = True,
    blank_lines: list[int] | None = None,
) -> Iterator[ManifestLine]:
    """Stream the accepted lines of a local or S3 manifest in constant memory.

    Args:
        location: a local path or ``s3://`` URI.
        policy: ``strict`` raises :class:`ManifestError` at the first bad line; ``collect``
            keeps going and writes every bad line to ``rejects``.
        rejects: where the JSON Lines rejects file goes (see :class:`RejectsSink`). Without
            it, rejects are logged as warnings.
        stats: filled in when the read ends, for the caller's report.
        store: the S3 store for ``s3://`` locations.
        require_source: reject lines without ``source-ref``/``source`` (manifest rules).
        blank_lines: an empty list, given the number of each blank line before the next
            accepted line is yielded (what :func:`dataset_object_id` needs).

    Raises:
        ManifestError: under the strict policy, naming ``file:line: reason``.
    """
    stats = stats if stats is not None else ReadStats()
    name = str(location)
    blank = blank_lines if blank_lines is not None else []
    sink = RejectsSink(rejects, policy=RejectPolicy(policy), source=name, store=store)
    rejected = stats.rejected.copy()

    def on_reject(item: RejectedLine) -> None:
        rejected[item.reason.value] += 1
        sink.add(item.to_json())

    def on_close(lines_read: int, error: BaseException | None) -> None:
        new_rejects = sum(rejected.values()) - stats.rejected_total
        stats.rejected = rejected
        stats.lines += lines_read
        stats.blank += len(blank)
        stats.accepted += lines_read - len(blank) - new_rejects
        sink.close(error)

    # Returned, not delegated to with `yield from`: one generator layer less per line.
    return iter_accepted_lines(
        itertools.chain.from_iterable(iter_line_batches(location, store=store)),
        source=name,
        require_source=require_source,
        on_reject=on_reject,
        blank=blank,
        on_close=on_close,
    )


def dataset_object_id(line_no: int, blank_lines: Sequence[int]) -> int:
    """Ground Truth's ``datasetObjectId`` of the manifest line ``line_no`` (1-based).

    Ground Truth numbers a manifest's data objects from 0 in file order, and a data object
    is a line holding a JSON object: a blank line is none and takes no number, any other
    line takes one, even one a reader rejects, so a bad line shifts no other object
    (``docs/ground-truth-formats.md`` §2.3). ``blank_lines``: the numbers of the blank lines
    before ``line_no``, in order (``read_manifest(blank_lines=...)`` collects them).
    """
    return line_no - 1 - bisect.bisect_left(blank_lines, line_no)


def _utf8_only(value: Any) -> Any:
    """``value`` with every string's surrogates escaped (:func:`~gt_toolkit.text.utf8_text`).

    A file named in bytes that are not UTF-8 is read as surrogates (PEP 383), which JSON text
    cannot hold: its reject stopped the run with a traceback ('str is not valid UTF-8').
    """
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, Mapping):
        return {_utf8_only(k): _utf8_only(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_utf8_only(v) for v in value]
    return value


class RejectsSink:
    """Where rejected records go: an error (strict), a JSON Lines rejects file, or the log.

    The one rejects writer of the toolkit: manifest readers, the crowd sources and the
    ``from-*`` converters all route their rejects through one of these. Each record is a
    JSON object with ``file``, a position (``line`` for manifests, ``position`` elsewhere),
    ``reason``, ``detail`` and ``raw``. The rejects file is created at the first reject, so a
    clean read writes none, and appears (atomically) when the read ends; a read that fails
    leaves none. ``count`` says how many records were routed. Use as a context manager, or
    call :meth:`close`.

    Args:
        location: the rejects file; ``None`` logs each reject as a warning instead.
        policy: ``strict`` raises :class:`ManifestError` at the first reject.
        source: the manifest's name, for the strict error.
        store: the S3 store when ``location`` is an ``s3://`` URI.
        log: with no ``location``, whether to log (``False``: a first pass over a file
            that a second pass reports on).
    """

    def __init__(
        self,
        location: Location | None,
        *,
        policy: RejectPolicy,
        source: str,
        store: S3Store | None = None,
        log: bool = True,
    ) -> None:
        self._location = location
        self._policy = policy
        self._source = source
        self._store = store
        self._log = log
        self._output: contextlib.AbstractContextManager[IO[bytes]] | None = None
        self._fh: IO[bytes] | None = None
        self.count = 0

    def __enter__(self) -> RejectsSink:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close(exc)

    def add(self, item: Mapping[str, Any]) -> None:
        """Route one reject record.

        Raises:
            ManifestError: under the strict policy.
        """
        if self._policy is RejectPolicy.STRICT:
            raise ManifestError(
                self._source, int(item["line"]), f"{item['reason']}: {item['detail']}"
            )
        self.count += 1
        if self._location is None:
            if self._log:
                where = item.get("line", item.get("position"))
                logger.warning(
                    "rejected %s:%s: %s: %s", item["file"], where, item["reason"], item["detail"]
                )
            return
        if self._fh is None:
            self._output = atomic_output(self._location, store=self._store)
            self._fh = self._output.__enter__()
        try:
            line = orjson.dumps(item)
        except TypeError:  # a file named in bytes that are not UTF-8 (read as surrogates)
            line = orjson.dumps(_utf8_only(item))
        self._fh.write(line + b"\n")

    def close(self, error: BaseException | None = None) -> None:
        """Publish the rejects file, or drop it when the read failed with ``error``."""
        output, self._output, self._fh = self._output, None, None
        if output is None:
            return
        if error is None:
            output.__exit__(None, None, None)
        else:
            output.__exit__(type(error), error, error.__traceback__)


def dump_line(record: ManifestLine | Mapping[str, Any]) -> bytes:
    """Serialise one record as a manifest line (no newline); unchanged lines keep their bytes."""
    if isinstance(record, ManifestLine):
        return record.raw
    return orjson.dumps(record)


def write_manifest(
    records: Iterable[ManifestLine | Mapping[str, Any]],
    location: Location,
    *,
    store: S3Store | None = None,
) -> int:
    """Write records as JSON Lines atomically (local rename or S3 upload when complete).

    Unchanged :class:`ManifestLine` values are written back byte for byte (:func:`dump_line`).
    Only bytes are kept until written: holding the parsed lines themselves would make the
    cyclic GC walk thousands of live dicts (measured: 40% slower).

    Returns:
        The number of lines written.
    """
    dumps = orjson.dumps  # dump_line inlined: a call per line was a tenth of the write
    return write_lines(
        location,
        (r.raw if isinstance(r, ManifestLine) else dumps(r) for r in records),
        store=store,
    )
