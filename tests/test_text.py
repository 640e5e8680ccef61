"""The one check of 'can UTF-8 write this name', shared by every caller that refuses one."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.text import not_utf8_at


@given(st.text(alphabet=st.characters(codec=None, min_codepoint=0), max_size=20))
def test_not_utf8_at_is_where_utf8_stops(text: str) -> None:
    """``None`` exactly when UTF-8 writes the text, else the first character it cannot."""
    at = not_utf8_at(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        assert at == exc.start
        assert 0xD800 <= ord(text[at]) <= 0xDFFF
        assert not_utf8_at(text[:at]) is None
    else:
        assert at is None


def test_a_name_in_bytes_that_are_not_utf8_is_found_at_its_first_such_byte() -> None:
    name = os.fsdecode(b"caf\xe9-\xff.json")  # as the file system hands it to Python
    assert not_utf8_at(name) == 3
    assert not_utf8_at("café.json") is None
