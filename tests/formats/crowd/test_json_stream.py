from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import ijson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.errors import CrowdSourceError
from gt_toolkit.formats.crowd.json_stream import MAX_DEPTH, _Guarded, open_json

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
