"""What a Lambda may return: JSON that encodes, and fits AWS Lambda's 6 MB response limit.

AWS Lambda refuses a synchronous response over 6 MB, and the Python runtime fails a whole
invocation whose return value cannot be encoded. For the post-annotation Lambda either one
fails every object of a batch, so everything it returns passes through here first:

* :func:`clip_text` bounds every diagnostic text (error messages quote broken answers, which
  can be megabytes long) and makes it valid UTF-8;
* :func:`returnable` keeps a raw value (a broken worker answer) only when it encodes as JSON,
  and otherwise puts a pointer to where the value is kept in its place;
* :data:`RESPONSE_BUDGET` is the most bytes a response may take, counted by
  :func:`runtime_size` the way the Python runtime encodes a handler's return value (a space
  after every comma and colon). The handler returns plain JSON values, as AWS documents;
  returning pre-encoded bytes would be smaller but relies on undocumented runtime behaviour.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = [
    "RESPONSE_BUDGET",
    "TEXT_LIMIT",
    "clip_text",
    "omitted",
    "returnable",
    "runtime_size",
    "sendable_text",
]

RESPONSE_BUDGET = 6_000_000
"""Bytes a Lambda response may take: AWS's limit is 6 MB (6,291,456 bytes); the rest is margin."""

TEXT_LIMIT = 1_000
"""Characters a diagnostic text keeps; the cut is said at its end."""


def clip_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters (saying how many were cut) and valid UTF-8.

    Examples:
        >>> clip_text("x" * 20, 5)
        'xxxxx... (15 more characters)'
    """
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return sendable_text(text)


def sendable_text(text: str) -> str:
    r"""``text`` as valid UTF-8: each lone surrogate (from a ``\ud800`` escape) as ``?``.

    The runtime sends a response as UTF-8 and fails on such a character.
    """
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def omitted(why: str, count: int, where: str) -> dict[str, Any]:
    """What stands in for a diagnostic left out of a response: why, how many, where it is."""
    return {"omitted": why, "count": count, "payload": where}


def returnable(value: Any, where: str) -> Any:
    """``value`` as the response will carry it, or :func:`omitted` when it cannot be encoded.

    JSON cannot carry an integer of 2^64 or more, a string with a lone surrogate, or (for
    orjson, and sensibly for any reader) nesting deeper than 255 levels. The value comes back
    as encoded and decoded once, so NaN and infinities read ``None`` as they are sent.
    """
    try:
        return orjson.loads(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        return omitted(f"cannot be encoded as JSON: {clip_text(str(exc))}", 1, where)


def runtime_size(value: Any) -> int:
    """Bytes ``value`` takes in the response, as the Python runtime's encoder writes it.

    The runtime puts a space after every comma and colon; non-ASCII text is counted escaped,
    the larger of the two forms runtimes use, so the count is an upper bound on every version.

    Raises:
        orjson.JSONEncodeError: ``value`` holds what a JSON reader cannot take (an integer
            of 2^64 or more, a lone surrogate, nesting deeper than 255 levels).
    """
    orjson.dumps(value)  # refuse what Ground Truth could not read, as for every answer
    return len(json.dumps(value))
