"""Image, category and rater ids of COCO files: one rule for every reader.

COCO writes integers; some exporters write strings, and a float-typed column writes ``7.0``.
The crowd readers, ``gt-convert from-coco`` and ``evaluate`` all match ids by this rule
(``docs/crowd-sources.md``): the three readers had three rules, so one file's annotation could
meet its image in one command and be an orphan in another.
"""

from __future__ import annotations

from decimal import Decimal

__all__ = ["coco_id", "coco_int"]


def coco_int(value: object) -> int | None:
    """An integer id: ``7``, or ``7.0`` as a float-typed column (or an exact parser) gives it.

    ``None`` for anything else: strings, booleans, fractions, infinities, ``null``, and a
    number past :data:`_MAX_DIGITS` digits.
    """
    if value.__class__ is int:  # the common case first
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():  # False for inf and NaN
        return int(value)
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < _MAX_DIGITS
        and value == value.to_integral_value()
    ):
        return int(value)
    return None


_MAX_DIGITS = 4300
"""The most digits an id may have: Python's limit for turning an integer into text (and
text into an integer, so no JSON integer past it is read at all). ``from-coco``'s streaming
reader reads ``1E+5000`` as a whole ``Decimal``: as an id it stopped the run with a
``ValueError`` traceback, and ``1E+100000000`` (14 bytes) spent seconds and hundreds of
megabytes making the integer first."""


def coco_id(value: object) -> str | None:
    """An id as the text ids match by: ``7``, ``7.0`` and ``"7"`` are one id.

    ``None`` when it is no id: ``null``, booleans, fractions, lists and objects. Compared
    as text, an annotation without ``image_id`` had matched an image whose id was ``null``,
    and ``[1]`` an image whose id was ``[1]``.
    """
    kind = value.__class__  # the common cases first: this runs twice per annotation
    if kind is int:
        return str(value)
    if kind is str:
        return value  # type: ignore[return-value]
    number = coco_int(value)
    if number is not None:
        return str(number)
    return str(value) if isinstance(value, str) else None
