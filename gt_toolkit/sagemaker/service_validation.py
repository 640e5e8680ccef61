r"""Check a request dict against botocore's own service model, completely.

botocore's client-side ``ParamValidator`` checks types, required members and *minimum*
lengths/values only; it leaves ``max``, ``pattern`` and ``enum`` to the service, which means a
``ValidationException`` one field at a time after the user already waited for the call. This
module walks the same shape model and checks every constraint it declares, returning *all*
problems with their paths, so a builder can refuse a bad request before anything is paid for.
One rule the model states only in prose is checked too: tag keys may not start with ``aws:``
(:func:`gt_toolkit.sagemaker.tags.reserved_tag_key`).

Patterns in the model are Java regular expressions matched against the whole value; they use
``\p{L}``-style classes and UTF-16 surrogate ranges, so they are compiled with the ``regex``
package after a small translation.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import regex
from botocore.validate import ParamValidator

from gt_toolkit.errors import ValidationError
from gt_toolkit.sagemaker.tags import RESERVED_TAG_PREFIX, reserved_tag_key

if TYPE_CHECKING:
    from botocore.model import OperationModel, ServiceModel, Shape

__all__ = [
    "Problem",
    "botocore_report",
    "check_request",
    "operation_model",
    "problems_as_strings",
    "validate_request",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: where (``HumanTaskConfig.TaskKeywords[0]``) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@functools.cache
def _service_model(service: str) -> ServiceModel:
    """Load (once) the model botocore itself uses for ``service``."""
    import botocore.session

    return botocore.session.get_session().get_service_model(service)


def operation_model(operation: str, service: str = "sagemaker") -> OperationModel:
    """The botocore operation model, e.g. ``operation_model("CreateTrainingJob")``."""
    return _service_model(service).operation_model(operation)


# Java-isms that Python's ``regex`` reads differently. A supplementary character is a
# surrogate pair in Java's UTF-16 but one code point in Python.
_JAVA_TO_PYTHON = (
    (r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF"),
    ("${1,256}", "$"),
    ("${1,128}", "$"),
)


_JAVA_DOT: Final = "[^\\n\\r\\u0085\\u2028\\u2029]"
"""What ``.`` matches in Java: anything but its line terminators (Python's ``.`` stops at
``\\n`` only, so ``.*`` let a value with ``\\r`` or U+2028 through that the service refuses)."""


def _java_dots(pattern: str) -> str:
    """``pattern`` with each ``.`` outside a character class read as Java reads it."""
    out: list[str] = []
    depth = 0  # inside how many [...] (Java nests them: [a-z&&[^b]])
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        elif char == "." and not depth:
            char = _JAVA_DOT
        out.append(char)
        i += 1
    return "".join(out)


@functools.cache
def _compiled(pattern: str) -> regex.Pattern[str] | None:
    """Compile a model pattern, or ``None`` when it cannot be read faithfully (left unchecked)."""
    translated = pattern
    for java, python in _JAVA_TO_PYTHON:
        translated = translated.replace(java, python)
    translated = _java_dots(translated)
    try:
        return regex.compile(translated)
    except regex.error:
        return None


# The tag-key shapes of the services the toolkit calls: their ``aws:`` rule is prose, not model.
_TAG_KEY_SHAPES: Final = frozenset({"TagKey", "tagKeyType"})
_MAX_ENUM_SHOWN = 12  # instance-type enums run to hundreds of values


def _short(value: object, limit: int = 60) -> str:
    """``repr`` cut to ``limit`` characters so a huge value does not drown the message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: object) -> str:
    return type(value).__name__


class _Walker:
    """Collects problems while walking ``params`` alongside the shape tree."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def walk(self, value: Any, shape: Shape, path: str) -> None:
        kind = shape.type_name
        if kind == "structure" and getattr(shape, "is_document_type", False):
            return  # free-form JSON: nothing to check
        handler = getattr(self, f"_{kind}", None)
        if handler is not None:
            handler(value, shape, path)

    def _range(self, path: str, number: float, shape: Shape, what: str) -> None:
        low = shape.metadata.get("min")
        high = shape.metadata.get("max")
        if low is not None and number < low:
            self.add(path, f"{what} {number} is below the minimum {low}")
        if high is not None and number > high:
            self.add(path, f"{what} {number} is above the maximum {high}")

    def _structure(self, value: Any, shape: Shape, path: str) -> None:
        if not isinstance(value, Mapping):
            self.add(path, f"expected an object (dict), got {_type_name(value)}")
            return
        members = shape.members  # type: ignore[attr-defined]
        for name in shape.metadata.get("required", []):
            if name not in value:
                self.add(_join(path, name), "missing required member")
        for name in value:
            if name not in members:
                self.add(
                    _join(path, str(name)),
                    f"unknown member; valid members: {', '.join(members)}",
                )
        if getattr(shape, "is_tagged_union", False) and len(value) != 1:
            self.add(path, f"set exactly one of: {', '.join(members)} (got {len(value)})")
        for name, item in value.items():
            if name in members:
                self.walk(item, members[name], _join(path, name))

    def _list(self, value: Any, shape: Shape, path: str) -> None:
        if not isinstance(value, list | tuple):
            self.add(path, f"expected a list, got {_type_name(value)}")
            return
        self._range(path, len(value), shape, "item count")
        member = shape.member  # type: ignore[attr-defined]
        for i, item in enumerate(value):
            self.walk(item, member, f"{path}[{i}]")

    def _map(self, value: Any, shape: Shape, path: str) -> None:
        if not isinstance(value, Mapping):
            self.add(path, f"expected a map (dict), got {_type_name(value)}")
            return
        self._range(path, len(value), shape, "entry count")
        for key, item in value.items():
            self.walk(key, shape.key, f"{path} key {_short(key)}")  # type: ignore[attr-defined]
            self.walk(item, shape.value, f"{path}[{key!r}]")  # type: ignore[attr-defined]

    def _string(self, value: Any, shape: Shape, path: str) -> None:
        if not isinstance(value, str):
            self.add(path, f"expected a string, got {_type_name(value)} {_short(value)}")
            return
        self._range(path, len(value), shape, "length")
        enum: list[str] = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            shown = ", ".join(enum[:_MAX_ENUM_SHOWN])
            more = (
                f" ... ({len(enum) - _MAX_ENUM_SHOWN} more)" if len(enum) > _MAX_ENUM_SHOWN else ""
            )
            self.add(path, f"{_short(value)} is not one of: {shown}{more}")
        pattern = shape.metadata.get("pattern")
        if pattern:
            compiled = _compiled(pattern)
            if compiled is not None and compiled.fullmatch(value) is None:
                self.add(path, f"{_short(value)} does not match the pattern {pattern}")
        if shape.name in _TAG_KEY_SHAPES and reserved_tag_key(value):
            self.add(
                path, f"{_short(value)}: the prefix {RESERVED_TAG_PREFIX!r} is reserved for AWS"
            )

    def _integer(self, value: Any, shape: Shape, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"expected an integer, got {_type_name(value)} {_short(value)}")
            return
        self._range(path, value, shape, "value")

    _long = _integer

    def _double(self, value: Any, shape: Shape, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
            self.add(path, f"expected a number, got {_type_name(value)} {_short(value)}")
            return
        self._range(path, float(value), shape, "value")

    _float = _double

    def _boolean(self, value: Any, shape: Shape, path: str) -> None:
        if not isinstance(value, bool):
            self.add(path, f"expected true or false, got {_type_name(value)} {_short(value)}")

    def _timestamp(self, value: Any, shape: Shape, path: str) -> None:
        if isinstance(value, dt.datetime | dt.date | int | float) and not isinstance(value, bool):
            return
        if isinstance(value, str):
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                self.add(path, f"{_short(value)} is not an ISO 8601 timestamp")
            return
        self.add(path, f"expected a timestamp, got {_type_name(value)}")

    def _blob(self, value: Any, shape: Shape, path: str) -> None:
        if not (isinstance(value, bytes | bytearray | str) or hasattr(value, "read")):
            self.add(path, f"expected bytes or a file, got {_type_name(value)}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate_request(
    operation: str, params: Mapping[str, Any], *, service: str = "sagemaker"
) -> list[Problem]:
    """Every way ``params`` breaks the ``operation`` input shape (empty list = valid).

    Checks types, required and unknown members, tagged unions, min/max lengths, counts and
    values, enums and patterns (whole-value match). botocore's own validator runs too; should it
    ever object to something the walk missed, its report is added, so a request that passes
    here also passes the client.

    Examples:
        >>> validate_request("CreateEndpoint", {"EndpointName": "ep", "EndpointConfigName": "c"})
        []
    """
    shape = operation_model(operation, service).input_shape
    walker = _Walker()
    if shape is not None:
        walker.walk(params, shape, "")
    if not walker.problems:
        report = botocore_report(operation, params, service=service)
        walker.problems.extend(Problem("", line) for line in report)
    return walker.problems


def botocore_report(
    operation: str, params: Mapping[str, Any], *, service: str = "sagemaker"
) -> list[str]:
    """What botocore's own ``ParamValidator`` says about ``params`` (one line per error)."""
    shape = operation_model(operation, service).input_shape
    if shape is None:
        return []
    report = ParamValidator().validate(dict(params), shape)
    if not report.has_errors():
        return []
    return [line for line in report.generate_report().splitlines() if line.strip()]


def problems_as_strings(problems: Sequence[Problem]) -> list[str]:
    """``["path: message", ...]`` for a :class:`ValidationError`."""
    return [str(p) for p in problems]


def check_request(operation: str, params: Mapping[str, Any], *, service: str = "sagemaker") -> None:
    """Raise one :class:`ValidationError` listing every problem :func:`validate_request` finds."""
    problems = validate_request(operation, params, service=service)
    if problems:
        raise ValidationError(problems_as_strings(problems), what=f"{operation} request")
