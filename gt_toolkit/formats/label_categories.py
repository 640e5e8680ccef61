"""Label category configuration files (``LabelCategoryConfigS3Uri``) and label rules.

Ground Truth reads the label list of a built-in job from a small JSON file::

    {"document-version": "2018-11-28", "labels": [{"label": "car"}, {"label": "bike"}]}

The rules it enforces (``docs/ground-truth-formats.md`` sections 1 and 5) are checked
here once, so the template renderer, the CLI and the labeling-job request builder agree:
labels are unique strings of 1 to 256 characters; bounding-box and multi-label jobs take at
most 50; classification jobs need at least 2. Writers emit the documented ``2018-11-28``
version; readers also accept ``2021-05-13`` (seen in real console jobs) and files without a
version (the AWS example notebooks omit it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from gt_toolkit.errors import ValidationError
from gt_toolkit.storage.files import Location, read_bytes
from gt_toolkit.storage.s3 import S3Store

__all__ = [
    "DOCUMENT_VERSION",
    "KNOWN_DOCUMENT_VERSIONS",
    "MAX_LABEL_LENGTH",
    "TASK_TYPES",
    "build_label_category_config",
    "label_limits",
    "parse_label_category_config",
    "read_label_category_config",
    "validate_labels",
]

DOCUMENT_VERSION: Final = "2018-11-28"
"""The version AWS documents; what we write."""

KNOWN_DOCUMENT_VERSIONS: Final = frozenset({"2018-11-28", "2021-05-13"})
"""Versions we read: the documented one and the one real console jobs write."""

MAX_LABEL_LENGTH: Final = 256

_UNSEEN: Final = frozenset({"Cf", "Cc"})  # Unicode categories a worker does not see

# task type -> (minimum labels, maximum labels or None for unlimited).
# Names follow the PRE-/ACS- Lambda suffixes. Limits: [DG] input-data-limits and the
# label-category-config rules (single-label classification is unlimited by API).
TASK_TYPES: Final[Mapping[str, tuple[int, int | None]]] = {
    "BoundingBox": (1, 50),
    "VerificationBoundingBox": (1, 50),
    "AdjustmentBoundingBox": (1, 50),
    "ImageMultiClass": (2, None),
    "TextMultiClass": (2, None),
    "ImageMultiClassMultiLabel": (2, 50),
    "TextMultiClassMultiLabel": (2, 50),
    "SemanticSegmentation": (1, None),
    "NamedEntityRecognition": (1, None),
    "Custom": (1, None),
}


def label_limits(task_type: str) -> tuple[int, int | None]:
    """``(minimum, maximum or None)`` label count for a task type.

    Raises:
        ValidationError: an unknown task type (the message lists the known ones).
    """
    try:
        return TASK_TYPES[task_type]
    except KeyError:
        known = ", ".join(sorted(TASK_TYPES))
        raise ValidationError(
            [f"unknown task type {task_type!r}; expected one of: {known}"], what="label list"
        ) from None


def validate_labels(labels: Sequence[object], *, task_type: str = "BoundingBox") -> list[str]:
    """Every problem with a label list for a task type; an empty list means it is valid.

    Checks what Ground Truth rejects (count, length, duplicates) plus what it accepts but
    workers cannot use: non-string labels, labels with nothing visible, and labels that differ
    only in spaces, invisible characters or accent encoding (see :func:`_looks`).

    Examples:
        >>> validate_labels(["car", "car"])
        ["label 'car' appears 2 times (labels must be unique)"]
    """
    low, high = label_limits(task_type)
    problems: list[str] = []
    if isinstance(labels, str | bytes):
        return [f"labels must be a list of strings, not a single {type(labels).__name__}"]
    count = len(labels)
    if count < low:
        need = "at least 2 labels" if low == 2 else "at least 1 label"
        problems.append(f"{task_type} jobs need {need}, got {count}")
    if high is not None and count > high:
        problems.append(f"{task_type} jobs allow at most {high} labels, got {count}")
    seen: dict[str, int] = {}
    for index, label in enumerate(labels):
        if not isinstance(label, str):
            problems.append(f"label #{index + 1} is a {type(label).__name__}, not a string")
            continue
        if not label:
            problems.append(f"label #{index + 1} is empty (labels need 1 to 256 characters)")
            continue
        if not _looks(label):
            problems.append(
                f"label #{index + 1} is only whitespace or invisible characters; "
                "workers could not see it"
            )
        if _OVERRIDES.search(label):  # '\u202erac' is drawn 'car', beside a label 'car'
            problems.append(
                f"label #{index + 1} ({ascii(label)[:60]}) holds a bidi override (U+202D or "
                "U+202E), which draws its letters in another order than it spells them; "
                "workers would read another label"
            )
        if len(label) > MAX_LABEL_LENGTH:
            problems.append(
                f"label #{index + 1} ({label[:20]!r}...) has {len(label)} characters; "
                f"the limit is {MAX_LABEL_LENGTH}"
            )
        seen[label] = seen.get(label, 0) + 1
    for label, times in seen.items():
        if times > 1:
            problems.append(f"label {label!r} appears {times} times (labels must be unique)")
    looks: dict[str, list[str]] = {}
    for label in seen:
        looks.setdefault(_looks(label), []).append(label)
    for same in looks.values():
        if len(same) > 1:  # "car" and "car ": two labels, one button text
            shown = " and ".join(ascii(x) for x in same)  # spelled out: they look alike
            problems.append(
                f"labels {shown} differ only in spaces, invisible characters or how an accent "
                "is encoded; workers could not tell them apart"
            )
    return problems


def _looks(label: str) -> str:
    """What a worker sees of a label, as a key: labels equal here show one button text.

    One accent encoding (NFC), no invisible format or control characters (zero-width spaces
    and joiners, bidi marks, soft hyphens, NUL), single spaces. ``"café"`` written with a
    precomposed é and with ``e`` plus a combining accent are two labels that show one text;
    so are ``"car"`` and ``"car"`` followed by a zero-width space. Two kinds of format
    character are seen and stay: the tags that make a black flag England's, Scotland's or
    Wales's (an emoji tag sequence, U+1F3F4 and tags; elsewhere tags are invisible), and the
    Arabic number signs and other prepended concatenation marks, drawn as a sign. Joiners
    and variation selectors count where they change the drawing (:func:`_seen`).
    """
    text = unicodedata.normalize("NFC", label)
    # a whole flag tag sequence is drawn (a flag); tags outside one, in one left unended (no
    # cancel tag) or of no recommended flag (a black flag is shown) are invisible. split()
    # puts the flags at odd places
    parts = _FLAG_SEQUENCE.split(text)
    kept = [part if i % 2 else _seen(part.translate(_BLANK)) for i, part in enumerate(parts)]
    return " ".join("".join(kept).split())


def _seen(text: str) -> str:
    """``text`` without the characters that draw nothing where they stand.

    A zero-width joiner or non-joiner is drawn where it changes the letters or emoji around
    it: after a virama (Devanagari's half forms, Sinhala's yansaya), between two Arabic
    letters (Persian's ZWNJ), a ZWJ between two emoji (a family, a rainbow flag, which are
    one picture, not the several the same emoji show alone). A variation selector picks a
    look only of a character that has several (an emoji, a CJK ideograph, a mathematical
    symbol): after a Latin, Greek or Cyrillic letter, a space or at the start it draws
    nothing.
    """
    kept: list[str] = []
    for i, ch in enumerate(text):
        if ch in _JOINERS:
            if _joins(kept[-1] if kept else "", text[i + 1 : i + 2], ch):
                kept.append(ch)
        elif _VARIATION.match(ch):
            if kept and not _plain_letter(kept[-1]) and not kept[-1].isspace():
                kept.append(ch)
        elif (
            ch in _DRAWN
            or ch.isspace()
            or (unicodedata.category(ch) not in _UNSEEN and ch not in _FILLERS)
        ):
            kept.append(ch)
    return "".join(kept)


def _joins(before: str, after: str, joiner: str) -> bool:
    """Whether a ZWJ or ZWNJ between ``before`` and ``after`` changes what is drawn."""
    if not before:
        return False
    if unicodedata.combining(before) == 9:  # a virama: the conjunct's form, and a ZWJ
        return bool(after) or joiner == "\u200d"  # ending a word its half form ('क्‍')
    if not after:
        return False
    if unicodedata.bidirectional(before) == "AL" and unicodedata.bidirectional(after) == "AL":
        return True  # two Arabic-script letters: joined or not
    return joiner == "\u200d" and _emoji(before) and _emoji(after)


def _emoji(ch: str) -> bool:
    """An emoji or what ends one in a ZWJ sequence (emoji presentation, a skin tone)."""
    return unicodedata.category(ch) == "So" or ch == "\ufe0f" or "\U0001f3fb" <= ch <= "\U0001f3ff"


def _plain_letter(ch: str) -> bool:
    """A letter of a script with no variation sequences (Latin, Greek, Cyrillic)."""
    return unicodedata.category(ch).startswith("L") and unicodedata.name(ch, "").startswith(
        ("LATIN ", "GREEK ", "CYRILLIC ")
    )


_OVERRIDES: Final = re.compile("[\u202d\u202e]")  # left-to-right and right-to-left override
_JOINERS: Final = "\u200c\u200d"
_VARIATION: Final = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


# letters and marks that draw nothing though their category is not Cf: the combining
# grapheme joiner, the Hangul fillers (U+3164 is a known 'invisible letter'), Khmer's
# inherent vowels and Mongolian's free variation selectors (Unicode's default-ignorable
# code points of other categories, but the variation selectors, which pick an emoji's look)
_FILLERS: Final = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\uffa0")
_BLANK: Final = str.maketrans({"\u2800": " "})  # Braille's blank cell: a space to the eye


def _tags(text: str) -> str:
    """``text`` in tag characters (U+E0020 plus its ASCII code), as a flag sequence spells it."""
    return "".join(chr(0xE0000 + ord(ch)) for ch in text)


_FLAG_SEQUENCE: Final = re.compile(
    "(\U0001f3f4(?:"
    + "|".join(_tags(region) for region in ("gbeng", "gbsct", "gbwls"))
    + ")\U000e007f)"
)
"""A flag drawn from a tag sequence: black flag, tag letters, cancel tag (Scotland's flag).

Only the three that Unicode recommends (England, Scotland, Wales) are drawn as flags; any
other tag sequence, well formed or not (``usca``, a typo ``gbsxt``), shows its black flag
alone (UTS #51, ED-14c), so its tags are invisible: it and a black flag were two labels of
one picture.
"""

# drawn as a sign though of category Cf (Prepended_Concatenation_Mark): Arabic, Syriac,
# Kaithi number signs and the like
_DRAWN: Final = frozenset(
    "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd"
)


def build_label_category_config(
    labels: Sequence[str],
    *,
    task_type: str = "BoundingBox",
    short_instruction: str | None = None,
    full_instruction: str | None = None,
    audit_label_attribute: str | None = None,
) -> dict[str, Any]:
    """The label category config document for ``LabelCategoryConfigS3Uri``.

    Args:
        labels: the label names, in the order workers should see them.
        task_type: the built-in task type (a key of :data:`TASK_TYPES`); sets the limits.
        short_instruction: NER jobs take their instructions from this file.
        full_instruction: as ``short_instruction``.
        audit_label_attribute: the label attribute of the job a video-frame or 3D
            adjustment job adjusts (``auditLabelAttributeName``).

    Raises:
        ValidationError: every problem :func:`validate_labels` finds, at once.

    Examples:
        >>> build_label_category_config(["car", "bike"])
        {'document-version': '2018-11-28', 'labels': [{'label': 'car'}, {'label': 'bike'}]}
    """
    problems = validate_labels(labels, task_type=task_type)
    if problems:
        raise ValidationError(problems, what="label list")
    config: dict[str, Any] = {
        "document-version": DOCUMENT_VERSION,
        "labels": [{"label": label} for label in labels],
    }
    if short_instruction is not None or full_instruction is not None:
        config["instructions"] = {
            "shortInstruction": short_instruction or "",
            "fullInstruction": full_instruction or "",
        }
    if audit_label_attribute is not None:
        config["auditLabelAttributeName"] = audit_label_attribute
    return config


def parse_label_category_config(document: Mapping[str, Any] | str | bytes) -> list[str]:
    """The label names in a label category config (either document version, or none).

    Raises:
        ValidationError: not JSON, an unknown version, or a malformed ``labels`` list.
    """
    if isinstance(document, str | bytes):
        try:
            document = orjson.loads(document)
        except orjson.JSONDecodeError as exc:
            raise ValidationError([f"not JSON: {exc}"], what="label category config") from exc
    if not isinstance(document, Mapping):
        raise ValidationError(
            [f"expected a JSON object, got {type(document).__name__}"],
            what="label category config",
        )
    problems: list[str] = []
    version = document.get("document-version")
    if version is not None and version not in KNOWN_DOCUMENT_VERSIONS:
        known = ", ".join(sorted(KNOWN_DOCUMENT_VERSIONS))
        problems.append(f"unknown document-version {version!r} (known: {known})")
    entries = document.get("labels")
    labels: list[str] = []
    if not isinstance(entries, list):
        problems.append('"labels" must be a list of {"label": ...} objects')
    else:
        for index, entry in enumerate(entries):
            name = entry.get("label") if isinstance(entry, Mapping) else None
            if not isinstance(name, str):
                problems.append(f'labels[{index}] has no string "label"')
            else:
                labels.append(name)
    if problems:
        raise ValidationError(problems, what="label category config")
    return labels


def read_label_category_config(location: Location, *, store: S3Store | None = None) -> list[str]:
    """Read a label category config from a local path or ``s3://`` URI; return the labels."""
    return parse_label_category_config(read_bytes(location, store=store))
