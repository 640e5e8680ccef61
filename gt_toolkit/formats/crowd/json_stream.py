"""A JSON export opened for a streaming parser: BOM skipped, UTF-8 checked, nesting bounded.

ijson keeps the path to the value it is in as a string for every event, so a document nested
thousands of levels deep costs memory growing with the square of its depth: a 60 KB file
nested 30,000 deep took 2 GB. Real exports nest a handful of levels (COCO about 5, Label
Studio about 8), so :func:`open_json` refuses a document nested deeper than
:data:`MAX_DEPTH` before the parser sees the bytes that go too deep. It checks each chunk
as it passes (brackets outside strings), in constant memory and without a second read.

The crowd readers and ``from-coco``, which stream their exports, open them with
:func:`open_json` (rules in ``docs/crowd-sources.md``); ``evaluate`` loads its COCO file
whole with orjson (no nesting to fear) and only skips the BOM. The crowd readers take the
items of a list through :func:`json_items`, which gives numbers as floats (ijson's fast
mode) yet reads integers of any size.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import sys
from array import array
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from itertools import accumulate, islice
from pathlib import Path
from typing import Any

from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.base import first_line, open_stream
from gt_toolkit.storage.files import Location
from gt_toolkit.storage.s3 import S3Store, is_s3_uri

__all__ = ["MAX_DEPTH", "broken_entry", "json_items", "open_json"]

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects a JSON export may have."""

_BOM = codecs.BOM_UTF8
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
# what the guard follows outside strings: brackets, and numbers with what ends them
_NOT_FOLLOWED = bytes(b for b in range(256) if b not in b'[]{}"0123456789.eE+-,: \t\r\n')
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = bytes.maketrans(b"[{]}", bytes([1, 1, 255, 255]))  # as signed bytes: +1, -1
_DIGIT_MARKS = bytes(49 if 48 <= b <= 57 else 48 for b in range(256))  # digits -> b"1", else b"0"


@contextlib.contextmanager
def open_json(
    location: Location, *, store: S3Store | None = None, max_depth: int = MAX_DEPTH
) -> Iterator[io.BufferedReader[Any]]:
    """A buffered binary stream of a JSON file for ijson, guarded as the module says.

    Reading it raises :class:`~gt_toolkit.errors.CrowdSourceError` (naming the file and the
    byte) at text that is not UTF-8 or at nesting deeper than ``max_depth``.

    Raises:
        StorageError: the file or object cannot be opened.
    """
    with (
        open_stream(location, store=store) as raw,
        io.BufferedReader(_Guarded(raw, os.fspath(location), max_depth), 1 << 16) as stream,
    ):
        yield stream


def json_items(
    location: Location,
    prefix: str,
    *,
    starts: bytes,
    otherwise: str,
    store: S3Store | None = None,
) -> Iterator[Any]:
    """The items under ``prefix`` (``"item"``, ``"images.item"``) of a JSON file, streamed.

    Fractions come as floats and integers as ints of any size. ijson's float mode (the fast
    one) holds numbers in C types: yajl refuses an integer past 64 bits or a number past
    the largest double, a valid document that some exporters write (a 30-digit id). On
    that error the file is read again in ijson's exact mode (ints and ``Decimal``, a third
    slower) from the start, past the items already given, its ``Decimal`` numbers turned
    to floats (``1e400``: ``inf``, which the readers refuse as a coordinate).

    Raises:
        CrowdSourceError: the document does not start with ``starts`` (the message is
            ``otherwise``); text :func:`open_json` refuses.
        ijson.JSONError: not JSON (the caller names the item it was reading).
    """
    try:
        yield from _json_items(location, prefix, starts=starts, otherwise=otherwise, store=store)
    except UnicodeDecodeError:  # "\udce9": an escape of half a character, which yajl
        # decodes to bytes that are not UTF-8 (a UnicodeDecodeError traceback, before)
        raise CrowdSourceError(
            os.fspath(location),
            "",
            "a string escapes half a character (a lone surrogate such as \\udce9), which is "
            "no text",
        ) from None


def _json_items(
    location: Location, prefix: str, *, starts: bytes, otherwise: str, store: S3Store | None
) -> Iterator[Any]:
    import ijson  # not on the import path of from-coco's registry entry (json_stream is)

    given = 0
    with open_json(location, store=store) as stream:
        if stream.peek(64).lstrip()[:1] != starts:
            raise CrowdSourceError(os.fspath(location), "", otherwise)
        try:
            for item in ijson.items(stream, prefix, use_float=True):
                yield item
                given += 1
            return
        except ijson.JSONError as exc:
            if "overflow" not in first_line(exc):  # yajl: "integer overflow", "numeric
                raise  # (floating point) overflow"; the python backend: "float overflow"
    text = os.fspath(location)
    if not is_s3_uri(text) and not Path(text).is_file():  # read again, a pipe gives nothing
        raise CrowdSourceError(
            text,
            "",
            f"a number past 64 bits (after {given} entries) needs a second read of the file, "
            "which a pipe cannot give: save it to a file first",
        )
    with open_json(location, store=store) as stream:
        try:
            for item in islice(ijson.items(stream, prefix), given, None):
                yield _floats(item)
        except InvalidOperation:  # 1e<5,000 digits>: valid JSON that Decimal cannot hold
            raise CrowdSourceError(text, "", "a number whose exponent no reader holds") from None


def broken_entry(location: Location, *, store: S3Store | None = None) -> str:
    """Where a file that is not JSON breaks: ``images[3]``, the entry its parser was in.

    yajl's messages name no position, and a reader of one section (COCO's ``categories``)
    meets a fault in another; this second read, only on failure, follows the parser's
    events. Entries of a top-level list are ``[3]``. ``""``: outside any entry, or a
    file that reads whole this time.
    """
    import ijson

    section, entry, where = "", -1, ""
    with open_json(location, store=store) as stream:
        try:
            for prefix, event, _ in ijson.parse(stream):
                if prefix == "item" or prefix.startswith("item."):  # a top-level list
                    head, rest = "", prefix
                else:
                    head, _, rest = prefix.partition(".")
                if rest == "item" and event not in ("map_key", "end_map", "end_array"):
                    entry = entry + 1 if head == section else 0  # an entry starts
                    section = head
                if rest == "item" and event in ("end_map", "end_array"):
                    where = f"{section}[{entry + 1}]"  # the next one, or the list's end
                elif rest == "item" or rest.startswith("item."):
                    where = f"{section}[{entry}]"
                else:
                    where = ""
        except ijson.JSONError:
            return where
    return ""


def _floats(value: Any) -> Any:
    """A parsed value with its ``Decimal`` numbers as floats, as the float mode gives them."""
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return float(value) if isinstance(value, Decimal) else value


class _Guarded(io.RawIOBase):
    """The bytes of ``raw`` without a leading UTF-8 BOM, each chunk checked before it is read."""

    def __init__(self, raw: io.BufferedReader[Any], name: str, max_depth: int) -> None:
        self._raw = raw
        self._name = name
        self._max_depth = max_depth
        self._offset = 0  # bytes of the file checked so far
        self._depth = 0
        self._in_string = False
        self._escaped = False  # the chunk ended inside a string, just after a backslash
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._max_digits = sys.get_int_max_str_digits()  # 0: no limit
        self._run = 0  # the digits the text outside strings so far ends with
        self._run_int = False  # and whether they are an integer part
        self._before = b""  # the last two bytes outside strings before the chunk

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._raw.read(len(buffer))
        if self._offset == 0 and chunk.startswith(_BOM):
            chunk, self._offset = chunk[len(_BOM) :], len(_BOM)
        self._check_text(chunk)
        self._check_outside(chunk)
        self._offset += len(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _fail(self, position: str, reason: str) -> CrowdSourceError:
        return CrowdSourceError(self._name, position, reason)

    def _check_text(self, chunk: bytes) -> None:
        nul = chunk.find(b"\0")
        if nul >= 0:  # valid UTF-8 but never in JSON text: a UTF-16 or UTF-32 file
            raise self._fail(
                f"byte {self._offset + nul}",
                "not UTF-8 text: a NUL byte (UTF-16? save the file as UTF-8)",
            )
        pending = len(self._utf8.getstate()[0])  # bytes of a character the last chunk began
        try:
            self._utf8.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            at = self._offset - pending + exc.start
            raise self._fail(f"byte {at}", "not UTF-8 text (save the file as UTF-8)") from None

    def _check_outside(self, chunk: bytes) -> None:
        r"""Follow the text outside strings: its nesting, and the integers in it.

        Escapes (``\x``, only ever inside strings) are dropped first, so every quote left
        opens or closes a string; what is outside strings is every other piece between them.
        """
        end = self._offset + len(chunk)
        if self._escaped:  # the last chunk ended on a backslash: this byte is escaped
            chunk, self._escaped = chunk[1:], False
        if b"\\" in chunk:
            chunk = _ESCAPE.sub(b"", chunk)
            if chunk.endswith(b"\\"):  # a backslash whose escaped byte is in the next chunk
                chunk, self._escaped = chunk[:-1], True
        pieces = chunk.translate(None, _NOT_FOLLOWED).split(b'"')
        outside = b"".join(pieces[int(self._in_string) :: 2])
        self._in_string ^= len(pieces) % 2 == 0  # an odd number of quotes
        if not outside:
            return
        if self._max_digits:
            self._check_integers(outside, end)
        steps = array("b", outside.translate(_STEP, _NOT_BRACKET))
        if steps and max(accumulate(steps, initial=self._depth)) > self._max_depth:
            raise self._fail(
                f"before byte {end}", f"nested more than {self._max_depth} levels deep"
            )
        self._depth += sum(steps)

    def _check_integers(self, outside: bytes, end: int) -> None:
        """Refuse an integer longer than Python turns into an int (4,300 digits by default).

        ijson's C parser, asked for such an integer, crashed the process (a segmentation
        fault). Digits in strings (a COCO RLE mask's counts) and a fraction's or an
        exponent's digits are no integer: they pass.
        """
        limit = self._max_digits
        marks = outside.translate(_DIGIT_MARKS)
        lead = len(marks) - len(marks.lstrip(b"1"))
        # the run the chunk begins with: the last chunk's, going on, or a new one
        integer = self._run_int if self._run else _integer_part(self._before)
        start = self._offset  # where this chunk begins in the file
        if lead and integer and self._run + lead > limit:
            raise self._too_long(start - self._run, end)
        needle = b"1" * (limit + 1)
        at = marks.find(needle, lead)
        while at >= 0:  # a long run inside the chunk: after a byte that is no digit
            if _integer_part(self._two_before(outside, at)):
                raise self._too_long(start, end)
            rest = marks[at:]
            at = marks.find(needle, at + len(rest) - len(rest.lstrip(b"1")))
        tail = len(marks) - len(marks.rstrip(b"1"))
        if tail == len(marks):  # all digits: the run goes on
            self._run, self._run_int = self._run + tail, integer
        else:
            at = len(outside) - tail
            self._run, self._run_int = (
                tail,
                bool(tail) and _integer_part(self._two_before(outside, at)),
            )
        self._before = self._two_before(outside, len(outside))

    def _two_before(self, outside: bytes, at: int) -> bytes:
        """The two bytes outside strings before ``outside[at]``, the last chunk's included."""
        return (self._before + outside[max(at - 2, 0) : at])[-2:]

    def _too_long(self, start: int, end: int) -> CrowdSourceError:
        """The refusal, naming the bytes it lies in (the text checked has no byte offsets)."""
        limit = self._max_digits
        return self._fail(
            f"bytes {max(start, 0)} to {end}",
            f"an integer of more than {limit} digits, which Python reads as no int",
        )


def _integer_part(before: bytes) -> bool:
    """Whether digits after ``before`` (two bytes outside strings) are an integer part.

    Not after a decimal point, an exponent's ``e`` or its sign.
    """
    last = before[-1:]
    if last in (b".", b"e", b"E", b"+"):
        return False
    return not (last == b"-" and before[:1] in (b"e", b"E"))
