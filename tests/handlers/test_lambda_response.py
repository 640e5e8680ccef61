from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from gt_toolkit.handlers.lambda_response import TEXT_LIMIT, clip_text, omitted, returnable

URI = "s3://b/payload.json"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short", "short"),
        ("x" * TEXT_LIMIT, "x" * TEXT_LIMIT),
        ("x" * (TEXT_LIMIT + 5), "x" * TEXT_LIMIT + "... (5 more characters)"),
        ("car \ud800", "car ?"),  # a lone surrogate cannot be sent as UTF-8
        ("Straße 🚗", "Straße 🚗"),
    ],
    ids=["short", "at-limit", "over", "surrogate", "unicode"],
)
def test_clip_text(text: str, expected: str) -> None:
    assert clip_text(text) == expected
    clip_text(text).encode("utf-8")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ({"w": 2**64}, "Integer exceeds 64-bit range"),
        ({"label": "\ud800"}, "str is not valid UTF-8: surrogates not allowed"),
        ([[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]] * 20, None),  # shallow enough: kept
    ],
    ids=["2^64", "surrogate", "nested-17"],
)
def test_returnable_keeps_what_encodes_and_points_to_the_rest(value: Any, why: str | None) -> None:
    out = returnable(value, URI)
    if why is None:
        assert out == value
    else:
        assert out == omitted(f"cannot be encoded as JSON: {why}", 1, URI)
    orjson.dumps(out)


def test_returnable_points_to_an_answer_nested_300_deep() -> None:
    value: Any = "x"
    for _ in range(300):
        value = [value]
    out = returnable(value, URI)
    assert out["payload"] == URI and "Recursion" in out["omitted"]


def test_returnable_reads_nan_as_null_as_it_is_sent() -> None:
    assert returnable({"left": math.nan, "top": math.inf, "ok": 1.5}, URI) == {
        "left": None,
        "top": None,
        "ok": 1.5,
    }
