from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import ijson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd import json_stream
from gt_toolkit.formats.crowd.json_stream import MAX_DEPTH, _Guarded, json_items, open_json

# strings full of what the guard must not count: quotes, backslashes, brackets
_TEXT = st.text(alphabet=st.sampled_from('ab"\\[]{}é\n/'), max_size=8)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=20,
)


def depth(value: Any) -> int:
    """How deep arrays and objects nest in ``value``."""
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def read_through(data: bytes, chunk: int, max_depth: int) -> bytes:
    """``data`` read through the guard ``chunk`` bytes at a time (chunk edges anywhere)."""
    guard = _Guarded(io.BufferedReader(io.BytesIO(data)), "x.json", max_depth)
    out, buffer = bytearray(), bytearray(chunk)
    while n := guard.readinto(buffer):
        out += buffer[:n]
    return bytes(out)


@given(value=_JSON, ascii_only=st.booleans(), chunk=st.integers(1, 16))
def test_the_guard_counts_nesting_as_json_does(value: Any, ascii_only: bool, chunk: int) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert read_through(data, chunk, depth(value)) == data
    if depth(value) > 0:
        with pytest.raises(CrowdSourceError, match=r"nested more than \d+ levels deep"):
            read_through(data, chunk, depth(value) - 1)


def test_a_byte_order_mark_is_skipped_and_parsing_streams(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(b'\xef\xbb\xbf{"images": [{"id": 1}, {"id": 2}]}')
    with open_json(path) as stream:
        assert list(ijson.items(stream, "images.item")) == [{"id": 1}, {"id": 2}]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a": "caf\xe9"}', r"a\.json: byte 10: not UTF-8 text \(save the file as UTF-8\)$"),
        (b'{"a": "caf\xc3', r"a\.json: byte 10: not UTF-8 text"),  # cut inside a character
        ('{"a": 1}'.encode("utf-16-le"), r"a\.json: byte 1: not UTF-8 text: a NUL byte"),
        (b"[" * (MAX_DEPTH + 1), rf"a\.json: before byte {MAX_DEPTH + 1}: nested more than"),
    ],
)
def test_what_the_guard_refuses_is_one_line_naming_file_and_byte(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(data)
    with pytest.raises(CrowdSourceError, match=message), open_json(path) as stream:
        stream.read()


HUGE = 123456789012345678901234567890  # past 64 bits: yajl's float mode refuses it


def test_items_read_integers_of_any_size_and_fractions_as_floats(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    text = '{"images": [{"id": 1, "w": 1.5}, {"id": HUGE, "w": 0.1, "far": 1e400}, {"id": 3}]}'
    path.write_text(text.replace("HUGE", str(HUGE)))
    items = list(json_items(path, "images.item", starts=b"{", otherwise="not an object"))
    assert items == [{"id": 1, "w": 1.5}, {"id": HUGE, "w": 0.1, "far": math.inf}, {"id": 3}]
    assert [type(v) for item in items for v in item.values()] == [
        int,
        float,
        int,
        float,
        float,
        int,
    ]


def test_items_read_an_ordinary_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Any] = []
    real = json_stream.open_json
    monkeypatch.setattr(json_stream, "open_json", lambda *a, **k: opened.append(a) or real(*a, **k))
    path = tmp_path / "a.json"
    path.write_text('[{"id": 1, "w": 1.5}, {"id": 2}]')
    assert len(list(json_items(path, "item", starts=b"[", otherwise="no"))) == 2
    assert len(opened) == 1  # the fast float mode only: the exact one is for overflows
    path.write_text(f'[{{"id": 1, "w": 1.5}}, {{"id": {HUGE}}}]')
    assert len(list(json_items(path, "item", starts=b"[", otherwise="no"))) == 2
    assert len(opened) == 3


def test_items_after_an_overflow_still_refuse_what_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(f'[{{"id": {HUGE}}}, {{"id": 2}}, {{"id": }}]')
    read: list[Any] = []
    with pytest.raises(ijson.JSONError):
        read.extend(json_items(path, "item", starts=b"[", otherwise="no"))
    assert read == [{"id": HUGE}, {"id": 2}]


def test_items_refuse_a_document_of_another_shape(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"tasks": []}')
    with pytest.raises(CrowdSourceError, match=r"a\.json: not a list$"):
        list(json_items(path, "item", starts=b"[", otherwise="not a list"))


@settings(deadline=None)  # one-byte reads of 5,000-byte documents: slow on a busy machine
@given(
    chunk=st.sampled_from([1, 7, 64, 4299, 4300, 4301, 65536]),
    at=st.integers(0, 5000),
    sign=st.sampled_from([b"", b"-"]),
)
def test_the_guard_refuses_an_integer_python_reads_as_no_int(
    chunk: int, at: int, sign: bytes
) -> None:
    # ijson's exact mode, asked for such an int, crashed the process (a segmentation fault)
    limit = sys.get_int_max_str_digits()
    assume(limit > 0)
    pad = json.dumps("x" * at).encode()
    digits = b"7" * (limit + 1)
    long = b"[" + pad + b", " + sign + digits + b"]"
    with pytest.raises(CrowdSourceError, match="an integer of more than") as caught:
        read_through(long, chunk, 4)
    # the bytes it names hold the run's last digit past the limit
    first, last = map(int, re.findall(r"bytes (\d+) to (\d+)", str(caught.value))[0])
    assert first <= len(long) - 2 < last
    # as many digits in a string (a COCO RLE mask's counts), a fraction or after an integer
    # of the limit's length are no such integer
    for fine in (
        b"[" + pad + b', "' + digits + b'"]',
        b"[" + pad + b", " + sign + b"0." + digits + b"]",
        b"[" + pad + b", " + sign + digits[1:] + b".5, " + digits[1:] + b"]",
    ):
        assert read_through(fine, chunk, 4) == fine


def test_a_huge_integer_stops_a_crowd_read_in_one_line_not_a_crash(tmp_path: Path) -> None:
    # run in a child: the crash it guards against would take the test process with it
    path = tmp_path / "ls.json"
    path.write_text('[{"id": ' + "7" * 5000 + ', "data": {"image": "a.jpg"}, "annotations": []}]')
    code = (
        "import sys; from gt_toolkit import iter_crowd_images\n"
        "try:\n    list(iter_crowd_images(sys.argv[1], 'label-studio'))\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("CrowdSourceError")
    assert "an integer of more than 4300 digits" in done.stdout


def test_items_past_an_overflow_in_a_pipe_ask_for_a_file() -> None:
    # a second read of a pipe gives nothing: the restart said "premature EOF" of a sound file
    read_end, write_end = os.pipe()
    os.write(write_end, f'[{{"id": 1}}, {{"id": {HUGE}}}]'.encode())
    os.close(write_end)
    read: list[Any] = []
    try:
        with pytest.raises(CrowdSourceError, match="a pipe cannot give: save it to a file first"):
            read.extend(json_items(f"/dev/fd/{read_end}", "item", starts=b"[", otherwise="no"))
    finally:
        os.close(read_end)
    assert read == [{"id": 1}]


def test_items_past_an_exponent_no_reader_holds_is_one_line(tmp_path: Path) -> None:
    # 1e<5,000 digits> overflows the float mode, and Decimal then raised InvalidOperation
    # out of the reader: a traceback
    path = tmp_path / "a.json"
    path.write_text('[{"id": 1}, {"w": 1e' + "7" * 5000 + "}]")
    read: list[Any] = []
    with pytest.raises(CrowdSourceError, match="a number whose exponent no reader holds"):
        read.extend(json_items(path, "item", starts=b"[", otherwise="no"))
    assert read == [{"id": 1}]


@pytest.mark.parametrize("kind", ["label-studio", "coco-raters"])
def test_a_lone_surrogate_escape_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    """JSON's grammar allows "\\udce9", half of a character, which yajl decodes to bytes that
    are not UTF-8: the readers stopped with a UnicodeDecodeError traceback. It is the
    reader's one-line error, naming the file."""
    from gt_toolkit import iter_crowd_images
    from tests.helpers import CROWD

    source = CROWD / ("label-studio.json" if kind == "label-studio" else "coco-raters.json")
    text = source.read_text()
    key = '"image"' if kind == "label-studio" else '"file_name"'
    at = text.index('"', text.index(":", text.index(key))) + 1
    broken = tmp_path / source.name
    broken.write_text(text[:at] + "\\udce9" + text[at:])
    with pytest.raises(CrowdSourceError, match=r"escapes half a character"):
        list(iter_crowd_images(broken, kind))
