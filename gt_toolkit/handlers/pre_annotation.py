"""Pre-annotation: turn one data object into the ``taskInput`` a worker's template sees.

Ground Truth calls the pre-annotation Lambda once per data object
(``docs/ground-truth-formats.md`` §3). :func:`handle_pre_annotation` is the whole
logic as a pure function of the event and the settings, so the Lambda in
``lambdas/pre_annotation.py`` is one call and every rule is unit-tested without Lambda.

Rules:

* ``taskObject`` is the ``source-ref`` (an image) or the ``source`` text.
* ``labels`` and ``header`` are added when configured (environment variables, or a label
  category file in S3 read once at cold start by :func:`load_pre_annotation_settings`).
* A prior bounding-box label on the data object (a chained or adjustment job, or model
  pre-labels) becomes ``initialValue`` in the ``<crowd-bounding-box initial-value>`` shape,
  ``[{label, left, top, width, height}]``, so workers adjust instead of redraw.
* Optional skip rule: when every prior box has a confidence of at least
  ``skip_min_confidence`` (and there is at least one), ``isHumanAnnotationRequired`` is false.
  A confidence outside [0, 1] (a raw model score, ``1e400`` read as infinity) is no
  confidence: it is listed in ``errors`` and the human is asked.
* The response is JSON the runtime can send whatever the line holds: a number JSON cannot
  carry (NaN, an infinity) goes back as null and a lone surrogate as ``?``, each said in
  ``errors``.
* A malformed data object never raises: the error is logged and listed in
  ``taskInput["errors"]``, and a human still gets the task.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from gt_toolkit.errors import ValidationError
from gt_toolkit.formats.detection_label import DETECTION_TYPE, parse_detection_label
from gt_toolkit.formats.label_attributes import detect_label_attributes
from gt_toolkit.handlers.lambda_response import clip_text, sendable_text
from gt_toolkit.types import WorkerBox

if TYPE_CHECKING:
    from gt_toolkit.storage.s3 import S3Store

__all__ = [
    "PreAnnotationResponse",
    "PreAnnotationSettings",
    "find_prior_detection_attribute",
    "handle_pre_annotation",
    "load_pre_annotation_settings",
]

logger = logging.getLogger(__name__)


class TaskInput(TypedDict):
    """``taskInput``: what the worker template reads as ``task.input``."""

    taskObject: str
    labels: NotRequired[list[str]]
    header: NotRequired[str]
    initialValue: NotRequired[list[WorkerBox]]
    errors: NotRequired[list[str]]
    metadata: NotRequired[dict[str, Any]]


class PreAnnotationResponse(TypedDict):
    """The pre-annotation Lambda's response (documented key, JSON boolean)."""

    taskInput: TaskInput
    isHumanAnnotationRequired: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PreAnnotationSettings:
    """How the pre-annotation Lambda builds ``taskInput``.

    Attributes:
        labels: label choices for the worker; ``None`` leaves them to the template.
        header: the question above the image.
        labels_uri: a label category file (``s3://``) to read ``labels`` from at cold start.
        prior_attribute: the label attribute holding prior boxes; ``None`` finds it by its
            ``-metadata`` type ``groundtruth/object-detection``.
        skip_min_confidence: skip the human task when every prior box has at least this
            confidence; ``None`` never skips.
        pass_through: data-object keys copied into ``taskInput["metadata"]`` for the template.
    """

    labels: tuple[str, ...] | None = None
    header: str | None = None
    labels_uri: str | None = None
    prior_attribute: str | None = None
    skip_min_confidence: float | None = None
    pass_through: tuple[str, ...] = field(default=())

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PreAnnotationSettings:
        """Read settings from environment variables (pure: the label file is not read here).

        Variables: ``GT_LABELS`` (see :func:`labels_variable`), ``GT_HEADER``,
        ``GT_LABELS_S3_URI``, ``GT_PRIOR_LABEL_ATTRIBUTE``, ``GT_SKIP_MIN_CONFIDENCE`` (a
        number in [0, 1]) and ``GT_PASS_THROUGH_KEYS`` (comma-separated).

        Raises:
            ValidationError: every malformed variable, listed at once.
        """
        problems: list[str] = []
        labels = labels_variable(env.get("GT_LABELS", ""), problems)
        skip = _skip_threshold(env.get("GT_SKIP_MIN_CONFIDENCE", "").strip(), problems)
        labels_uri = env.get("GT_LABELS_S3_URI", "").strip() or None
        if labels_uri is not None and not labels_uri.startswith("s3://"):
            problems.append(f"GT_LABELS_S3_URI must be an s3:// URI, got {labels_uri!r}")
        if problems:
            raise ValidationError(problems, what="pre-annotation settings")
        pass_through = tuple(
            k.strip() for k in env.get("GT_PASS_THROUGH_KEYS", "").split(",") if k.strip()
        )
        return cls(
            labels=labels,
            header=env.get("GT_HEADER") or None,
            labels_uri=labels_uri,
            prior_attribute=env.get("GT_PRIOR_LABEL_ATTRIBUTE") or None,
            skip_min_confidence=skip,
            pass_through=pass_through,
        )


def labels_variable(raw: str, problems: list[str]) -> tuple[str, ...] | None:
    """``GT_LABELS``, which both Lambdas read: a JSON array, or names separated by commas.

    The JSON array form keeps every label exactly. The comma form splits at each comma and
    drops the spaces that start a name (``car, bike`` is ``car`` and ``bike``); everything
    else is kept, trailing spaces included (``car ,bike`` is ``"car "`` and ``bike``: a
    warning is logged, as this is more often a typo than a label). A label that starts with
    a space or holds a comma needs the JSON form; an empty name is a problem. Unset or blank
    means no labels.

    Examples:
        >>> labels_variable("car, bike", [])
        ('car', 'bike')
        >>> labels_variable('["car ", " bike"]', [])
        ('car ', ' bike')
    """
    if not raw.strip():
        return None
    if raw.lstrip().startswith("["):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(f"GT_LABELS is not a JSON array: {exc}")
            return None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return _unicode_labels(tuple(parsed), problems)
        problems.append(f"GT_LABELS must be an array of strings, got {parsed!r}")
        return None
    names = tuple(name.lstrip(" ") for name in raw.split(","))
    empty = [i + 1 for i, name in enumerate(names) if not name]
    if empty:
        problems.append(f"GT_LABELS has an empty label at position(s) {empty}: {raw!r}")
        return None
    spaced = [name for name in names if name != name.rstrip()]
    if spaced:
        logger.warning(
            "pre_annotation.label_trailing_space %s",
            json.dumps({"labels": spaced}),
            extra={"gt": {"labels": spaced}},
        )
    return _unicode_labels(names, problems)


def _unicode_labels(labels: tuple[str, ...], problems: list[str]) -> tuple[str, ...] | None:
    r"""``labels``, or ``None`` with a problem when one is not valid Unicode.

    A lone surrogate (the JSON form's ``"\ud800"``, or an environment's undecodable byte)
    goes into every response, which the runtime then cannot encode as UTF-8: every call
    of the Lambda failed, where a bad variable should stop it at cold start.
    """
    bad = [label for label in labels if not _is_unicode(label)]
    if bad:
        shown = ", ".join(ascii(label) for label in bad)
        problems.append(
            f"GT_LABELS has labels that are not valid Unicode (lone surrogates): {shown}"
        )
        return None
    return labels


def _is_unicode(text: str) -> bool:
    return sendable_text(text) == text


def _skip_threshold(raw: str, problems: list[str]) -> float | None:
    """``GT_SKIP_MIN_CONFIDENCE``: a number in [0, 1], or unset."""
    if not raw:
        return None
    try:
        skip = float(raw)
    except ValueError:
        problems.append(f"GT_SKIP_MIN_CONFIDENCE must be a number, got {raw!r}")
        return None
    if not 0.0 <= skip <= 1.0:
        problems.append(f"GT_SKIP_MIN_CONFIDENCE must be in [0, 1], got {skip}")
    return skip


def load_pre_annotation_settings(
    env: Mapping[str, str], *, store: S3Store | None = None
) -> PreAnnotationSettings:
    """Settings from the environment, with labels read from ``GT_LABELS_S3_URI`` if set.

    Called once at cold start; the result is reused while the Lambda stays warm. Labels given
    in ``GT_LABELS`` win over the file. A bad file raises, because a job whose workers see no
    label choices is worse than a Lambda that fails loudly at start.

    Raises:
        ValidationError: bad variables or a malformed label category file.
        StorageError: the file cannot be read.
    """
    settings = PreAnnotationSettings.from_env(env)
    if settings.labels is None and settings.labels_uri is not None:
        from gt_toolkit.formats.label_categories import read_label_category_config

        labels = read_label_category_config(settings.labels_uri, store=store)
        settings = replace(settings, labels=tuple(labels))
    return settings


def find_prior_detection_attribute(data: Mapping[str, Any]) -> str | None:
    """The label attribute of the newest bounding-box label on a data object, if any.

    Label attributes are found as the output-manifest reader finds them
    (:func:`gt_toolkit.formats.label_attributes.detect_label_attributes`). One counts when its
    value is an object, its metadata ``type`` is ``groundtruth/object-detection`` and it has no
    ``failure-reason``. With several (a chain of jobs), the latest ``creation-date`` wins, then
    the last in key order: a chained job appends its pair after the one it started from.
    """
    found = [
        attr
        for attr in detect_label_attributes(data)
        if attr.type == DETECTION_TYPE
        and attr.failure_reason is None
        and isinstance(data.get(attr.name), Mapping)
    ]
    if not found:
        return None
    newest = found[0].creation_date
    return [attr for attr in found if attr.creation_date == newest][-1].name


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _prior_boxes(
    data: Mapping[str, Any], settings: PreAnnotationSettings, errors: list[str]
) -> tuple[str | None, list[WorkerBox], list[float | None]]:
    """Prior boxes as ``initialValue`` plus their confidences; problems go to ``errors``."""
    attribute = settings.prior_attribute or find_prior_detection_attribute(data)
    if attribute is None:
        return None, [], []
    value = data.get(attribute)
    metadata = data.get(f"{attribute}-metadata")
    if value is None:
        # Explicitly configured attribute that this object lacks: nothing to pre-load.
        return attribute, [], []
    if not isinstance(value, Mapping) or not (metadata is None or isinstance(metadata, Mapping)):
        errors.append(f"prior label {attribute!r} is not a bounding-box label object")
        return attribute, [], []
    if metadata is not None and metadata.get("failure-reason") is not None:
        # docs §2.1: a failed label is failed whatever boxes it holds (the named attribute
        # is held to the rule the detected one is): no priors, no skip
        errors.append(f"prior label {attribute!r} is marked failed: {metadata['failure-reason']}")
        return attribute, [], []
    try:
        _, boxes = parse_detection_label(value, metadata)
    except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError) as exc:
        # parse_detection_label promises ValueError, but the data object is user input and
        # this Lambda must answer for it whatever slips through (an Infinity class_id
        # overflows int(), a list where an object belongs has no .get).
        errors.append(f"prior label {attribute!r} is malformed: {exc}")
        return attribute, [], []
    initial: list[WorkerBox] = []
    confidences: list[float | None] = []
    known = set(settings.labels) if settings.labels is not None else None
    for box in boxes:
        coords = (box.left, box.top, box.width, box.height)
        if not all(_finite(c) for c in coords) or box.width <= 0 or box.height <= 0:
            errors.append(f"prior box dropped, bad geometry: {coords}")
            continue
        if known is not None and box.label not in known:
            # The crowd element only offers the configured labels; a box with another one
            # could not be edited by the worker.
            errors.append(f"prior box dropped, label {box.label!r} is not a label choice")
            continue
        initial.append(box.worker_box())
        score = box.score
        if score is not None and not 0.0 <= score <= 1.0:  # NaN too: no confidence at all
            # a raw model score, or 1e400 read as infinity: "at least" any threshold, it
            # skipped the human on a number that is no confidence
            errors.append(f"prior box confidence {score} is not in [0, 1]: the human is asked")
            score = None
        confidences.append(score)
    return attribute, initial, confidences


def _sendable(value: Any) -> tuple[Any, bool]:
    r"""``value`` as the runtime can send it, and whether anything had to change.

    The runtime's parser reads ``1e400`` as an infinity (older ones ``NaN`` too) and the
    escape of a lone surrogate (``"\ud800"``) as one; its encoder writes the number back as
    ``Infinity``, which no JSON reader takes, and fails on the surrogate (3.12 sends text
    unescaped, as UTF-8): either way the object failed. Such a number is sent as null, such a
    character as ``?``.
    """
    if isinstance(value, float):
        return (value, False) if math.isfinite(value) else (None, True)
    if isinstance(value, str):
        fixed = sendable_text(value)
        return fixed, fixed != value
    if isinstance(value, list):
        pairs = [_sendable(v) for v in value]
        return [v for v, _ in pairs], any(changed for _, changed in pairs)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            name, renamed = _sendable(key)
            out[name], altered = _sendable(item)
            changed = changed or renamed or altered
        return out, changed
    return value, False


def _sent(value: Any, what: str, errors: list[str]) -> Any:
    """:func:`_sendable`'s value; what had to change is said in ``errors``."""
    try:
        fixed, changed = _sendable(value)
    except RecursionError:  # nested deeper than the runtime could encode it either
        errors.append(f"{what} is nested too deep to be sent: sent as null")
        return None
    if changed:
        errors.append(
            f"{what} holds a number JSON cannot carry (NaN, an infinity) or text that is not "
            "valid Unicode (a lone surrogate): sent as null and '?'"
        )
    return fixed


def _should_skip(confidences: Sequence[float | None], threshold: float | None) -> bool:
    """Skip only with at least one prior box and every confidence known and >= threshold."""
    if threshold is None or not confidences:
        return False
    return all(c is not None and c >= threshold for c in confidences)


def _task_object(data: Mapping[str, Any], errors: list[str]) -> str:
    """The ``source-ref`` (an image) or the ``source`` text; problems go to ``errors``."""
    source_ref = data.get("source-ref")
    source = data.get("source")
    if isinstance(source_ref, str) and source_ref:
        if not source_ref.startswith("s3://"):
            errors.append(f"source-ref is not an s3:// URI: {source_ref!r}")
        return source_ref
    if isinstance(source, str):
        return source
    if source_ref == "":
        errors.append("source-ref is empty")
        return ""
    if source_ref is not None or source is not None:
        bad = source_ref if source_ref is not None else source
        errors.append(f"source-ref/source must be a string, got {bad!r}")
        return json.dumps(bad, default=str)
    errors.append("dataObject has neither 'source-ref' nor 'source'")
    return ""


def handle_pre_annotation(
    event: Mapping[str, Any], *, settings: PreAnnotationSettings
) -> PreAnnotationResponse:
    """Build the pre-annotation response for one Ground Truth event; never raises on bad data.

    Examples:
        >>> handle_pre_annotation(
        ...     {"dataObject": {"source-ref": "s3://b/1.jpg"}},
        ...     settings=PreAnnotationSettings(labels=("car",)),
        ... )
        {'taskInput': {'taskObject': 's3://b/1.jpg', 'labels': ['car']}, \
'isHumanAnnotationRequired': True}
    """
    errors: list[str] = []
    job = event.get("labelingJobArn") if isinstance(event, Mapping) else None
    data = event.get("dataObject") if isinstance(event, Mapping) else None
    initial: list[WorkerBox] = []
    confidences: list[float | None] = []
    attribute: str | None = None
    if not isinstance(data, Mapping):
        errors.append(f"dataObject must be a JSON object, got {type(data).__name__}")
        data = {}
        task_object = ""
    else:
        task_object = _task_object(data, errors)
        attribute, initial, confidences = _prior_boxes(data, settings, errors)

    task_input: TaskInput = {"taskObject": _sent(task_object, "taskObject", errors)}
    if settings.labels is not None:
        task_input["labels"] = list(settings.labels)
    if settings.header is not None:
        task_input["header"] = settings.header
    if initial:
        task_input["initialValue"] = _sent(initial, "initialValue", errors)
    passed = {
        k: _sent(data[k], f"pass-through key {k!r}", errors)
        for k in settings.pass_through
        if k in data
    }
    if passed:
        task_input["metadata"] = passed
    if errors:
        task_input["errors"] = [_sendable(e)[0] for e in errors]  # quotes of the line's text
    skip = not errors and _should_skip(confidences, settings.skip_min_confidence)
    fields = {  # texts clipped: a source line is up to 100 KB of the customer's data
        "labelingJobArn": job,
        "taskObject": clip_text(task_object),
        "priorAttribute": attribute,
        "initialBoxes": len(initial),
        "skip": skip,
    }
    if errors:
        shown = [clip_text(e) for e in errors]
        logger.error(
            "pre_annotation.malformed %s",
            json.dumps({**fields, "errors": shown}, default=str),
            extra={"gt": {**fields, "errors": shown}},
        )
    else:
        logger.info("pre_annotation.ok %s", json.dumps(fields), extra={"gt": fields})
    return {"taskInput": task_input, "isHumanAnnotationRequired": not skip}
