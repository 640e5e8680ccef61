"""Ground Truth manifests (JSON Lines): parse, validate, stream, write.

The pure core is :func:`parse_manifest_lines`, which maps raw byte lines to
:class:`ManifestLine` or :class:`RejectedLine` values. :func:`read_manifest` is the I/O edge:
it streams a local file or S3 object line by line, applies a :class:`RejectPolicy` and routes
rejects to a JSON Lines rejects file. Contract: ``docs/ground-truth-formats.md`` §1.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from gt_toolkit.errors import ManifestError, S3UriError
from gt_toolkit.storage.files import Location, atomic_output, iter_line_batches
from gt_toolkit.storage.s3 import S3Store, parse_s3_uri

__all__ = [
    "MAX_LINE_CHARS",
    "ManifestLine",
    "ReadStats",
    "RejectPolicy",
    "RejectReason",
    "RejectedLine",
    "dump_line",
    "iter_accepted_lines",
    "parse_manifest_lines",
    "read_manifest",
    "write_manifest",
]

logger = logging.getLogger(__name__)

MAX_LINE_CHARS = 100_000
_BOM = b"\xef\xbb\xbf"
# What parse_s3_uri accepts, as one anchored regex for the per-line fast path.
_S3_REF_RE = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.", re.S)


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


def _check_object(obj: dict[str, Any], require_source: bool) -> tuple[RejectReason, str] | None:
    for key in obj:
        if key.startswith("$"):
            return RejectReason.DOLLAR_ATTRIBUTE, f"attribute name {key!r} starts with '$'"
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
    problem = _check_object(obj, require_source)
    return problem if problem is not None else obj


def iter_accepted_lines(
    lines: Iterable[bytes],
    *,
    source: str,
    require_source: bool,
    on_reject: Callable[[RejectedLine], None],
    blank: list[int],
    on_close: Callable[[int], None] | None = None,
) -> Iterator[ManifestLine]:
    r"""The manifest hot path: yield accepted lines, hand every reject to ``on_reject``.

    ``lines`` must come without newline or trailing CR (:func:`iter_line_batches` strips both).

    Clearly valid lines take an inlined fast path (one ``orjson.loads``, two dict looks, one
    anchored regex, one tuple); anything unusual goes through :func:`parse_line`, which
    decides the reject reason. Measured in bench/manifest_throughput.py.
    """
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    ref_ok = _S3_REF_RE.match
    new = tuple.__new__  # NamedTuple's own __new__ is a Python function: 2x slower
    max_chars = MAX_LINE_CHARS
    known = "s3://"  # the last bucket prefix that passed the full check
    known_len = 99_999_999  # no ref is longer: nothing passes the cheap check before one full
    line_no = 0
    try:
        for line_no, raw in enumerate(lines, 1):
            # 36 is "$": a line without that byte cannot have a "$..." attribute name, and
            # an int membership test is a memchr (~20 ns). Lines come without CR (callers
            # strip it), so what passes here is exactly what parse_line would accept.
            if len(raw) <= max_chars and 36 not in raw:
                try:
                    obj = loads(raw)
                except decode_error:
                    obj = None
                if obj.__class__ is dict:
                    ref = obj.get("source-ref")
                    if ref.__class__ is str:
                        if len(ref) > known_len and ref.startswith(known):
                            yield new(ManifestLine, (line_no, obj, raw))
                            continue
                        if ref_ok(ref) is not None:
                            known = ref[: ref.index("/", 5) + 1]
                            known_len = len(known)
                            yield new(ManifestLine, (line_no, obj, raw))
                            continue
                    elif ref is None and obj.get("source").__class__ is str:
                        yield new(ManifestLine, (line_no, obj, raw))
                        continue
            if not raw.strip():
                blank.append(line_no)
                continue
            parsed = parse_line(raw, require_source=require_source)
            if isinstance(parsed, dict):
                yield ManifestLine(line_no, parsed, raw)
            else:
                on_reject(RejectedLine(source, line_no, parsed[0], parsed[1], raw))
    finally:
        if on_close is not None:
            on_close(line_no)


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
) -> Iterator[ManifestLine]:
    """Stream the accepted lines of a local or S3 manifest in constant memory.

    Args:
        location: a local path or ``s3://`` URI.
        policy: ``strict`` raises :class:`ManifestError` at the first bad line; ``collect``
            keeps going and writes every bad line to ``rejects``.
        rejects: where the JSON Lines rejects file goes (written atomically at the end, only
            when there is at least one reject). Without it, rejects are logged as warnings.
        stats: filled in when the read ends, for the caller's report.
        store: the S3 store for ``s3://`` locations.
        require_source: reject lines without ``source-ref``/``source`` (manifest rules).

    Raises:
        ManifestError: under the strict policy, naming ``file:line: reason``.
    """
    policy = RejectPolicy(policy)
    stats = stats if stats is not None else ReadStats()
    name = str(location)
    blank: list[int] = []
    sink: list[_RejectSink] = []
    rejected = stats.rejected.copy()

    def on_reject(item: RejectedLine) -> None:
        rejected[item.reason.value] += 1
        if policy is RejectPolicy.STRICT:
            raise ManifestError(name, item.line_no, f"{item.reason.value}: {item.detail}")
        if not sink:
            sink.append(_RejectSink(rejects, store))
        sink[0].add(item)

    def on_close(lines_read: int) -> None:
        new_rejects = sum(rejected.values()) - stats.rejected_total
        stats.rejected = rejected
        stats.lines += lines_read
        stats.blank += len(blank)
        stats.accepted += lines_read - len(blank) - new_rejects
        if sink:
            sink[0].close()

    # Returned, not delegated to with `yield from`: one generator layer less per line.
    return iter_accepted_lines(
        itertools.chain.from_iterable(iter_line_batches(location, store=store)),
        source=name,
        require_source=require_source,
        on_reject=on_reject,
        blank=blank,
        on_close=on_close,
    )


class _RejectSink:
    """Streams rejects to a temporary file that becomes the rejects file on close."""

    def __init__(self, location: Location | None, store: S3Store | None) -> None:
        self._cm = atomic_output(location, store=store) if location is not None else None
        self._fh = self._cm.__enter__() if self._cm is not None else None

    def add(self, item: RejectedLine) -> None:
        if self._fh is None:
            logger.warning("rejected %s", item)
            return
        self._fh.write(orjson.dumps(item.to_json()) + b"\n")

    def close(self) -> None:
        if self._cm is not None:
            self._cm.__exit__(None, None, None)


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

    Unchanged :class:`ManifestLine` values are written back byte for byte; lines are
    joined in batches so the per-line cost stays a list append.

    Returns:
        The number of lines written.
    """
    count = 0
    batch: list[bytes] = []
    append = batch.append
    dumps = orjson.dumps
    with atomic_output(location, store=store) as fh:
        for record in records:
            # Keep only bytes: holding the parsed lines themselves would make the cyclic
            # GC walk thousands of live dicts (measured: 40% slower).
            append(record.raw if record.__class__ is ManifestLine else dumps(record))
            if len(batch) == 4096:
                fh.write(b"\n".join(batch))
                fh.write(b"\n")
                count += 4096
                batch.clear()
        if batch:
            fh.write(b"\n".join(batch))
            fh.write(b"\n")
            count += len(batch)
    return count
