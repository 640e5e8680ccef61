"""Post-annotation (consolidation): one bounding-box label per data object, never one lost.

Ground Truth calls the post-annotation Lambda once per batch with a pointer to a payload file
in S3 listing every object and its workers' answers (``docs/ground-truth-formats.md`` §3).
:func:`handle_post_annotation` reads it, consolidates each object with
:func:`gt_toolkit.consolidation.engine.consolidate_image` and returns exactly one entry per
``datasetObjectId``, in payload order, in the built-in bounding-box output shape (§2.1), so the
output manifest of a custom job reads like a built-in one. An answer kept in S3 (``s3Uri``,
read when ``content`` is absent or null) is the crowd element's output or a worker-response
file (§2.3); such answers are read one window of objects ahead of the consolidation, so a
batch of any size holds at most two windows of them in memory. The Lambda returns them as plain
JSON values, which the runtime encodes (sizes counted as it does:
:mod:`gt_toolkit.handlers.lambda_response`).

What fails a worker's answer, an object, or the whole call:

* **A worker.** A broken answer (undecodable ``content``, unreadable ``s3Uri``, not a
  bounding-box answer, a number beyond
  :data:`~gt_toolkit.formats.worker_answers.MAX_PIXELS`) drops only that worker: it is
  listed under ``worker-errors`` and kept verbatim under ``worker-answers``. Boxes the engine
  drops are listed under ``dropped-boxes`` with the reason.
* **An object.** An object whose answers are all broken, or that fails in any other way
  (each object is consolidated in its own ``try``, its entry encoded there too), comes back
  with empty ``annotations``, a ``failure-reason`` and its raw answers.
* **Every object of the batch, answered.** When most boxes of the batch carry labels not in
  ``labelCategories`` (case, spelling: the rule is
  :func:`gt_toolkit.consolidation.label_check.label_mismatch`), every object keeps the boxes
  that matched and gets a ``failure-reason`` naming the labels seen and expected; the log
  says it once (``post_annotation.label_mismatch``). Nothing is lost: the payload file keeps
  every answer for offline re-consolidation with the right labels.
* **The objects not yet consolidated, at the deadline.** Given the Lambda context, the
  handler stops consolidating when the time left no longer covers one more object and
  answering the rest (:class:`~gt_toolkit.handlers.deadline.Deadline`), and waits for the
  answers it reads from S3 no longer than that (a read that hangs is retried by botocore for
  minutes, and is then left running); every object left is answered as failed
  (``deadline: ...``, its raw answers left in the payload file) and one WARNING line
  (``post_annotation.deadline``) gives the counts. Lambda would otherwise end the call at
  its timeout and every answer of the batch would be lost.
* **The call.** The payload unreadable, or an event without ``labelAttributeName`` or
  ``payload.s3Uri``: there is nothing to answer with, and Ground Truth retries the batch.
* Payload items without a usable ``datasetObjectId`` (missing, not a string or a 64-bit
  integer, longer than 1,024 characters) cannot be answered; they are logged (level ERROR)
  and skipped. Ground Truth never sends them. **Duplicate ids** (not expected either) are
  merged: answers consolidated together, once, at the first occurrence, with
  ``duplicate-entries`` saying how many items were merged.

**Lambda's 6 MB response limit** (:data:`~gt_toolkit.handlers.lambda_response.RESPONSE_BUDGET`,
counted exactly on the bytes returned). Every diagnostic text is cut to
:data:`~gt_toolkit.handlers.lambda_response.TEXT_LIMIT` characters. If the response is still
too big, the diagnostics are replaced, biggest object first, by a count and the payload's URI
(raw answers and dropped boxes first, then error texts). If the labels alone cannot fit, the
biggest objects are answered as failed (``response-too-large``) until the rest fit, and one
ERROR line (``post_annotation.response_too_large``) names the batch size and says to lower
the job's ``MaxConcurrentTaskCount``.

The result depends only on the event and the S3 objects it names (and ``creation-date``), so a
retried call returns the same labels; only a call that reaches its deadline answers fewer
objects than one with more time.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import orjson

from gt_toolkit.consolidation.engine import ConsolidationSettings, consolidate_image
from gt_toolkit.consolidation.label_check import LabelMismatch, LabelTally
from gt_toolkit.consolidation.worker_model import WorkerModel, read_worker_model
from gt_toolkit.errors import ConsolidationError, GtToolkitError, StorageError, ValidationError
from gt_toolkit.formats.crowd import anonymous_worker
from gt_toolkit.formats.detection_label import build_detection_label, now_creation_date
from gt_toolkit.formats.worker_answers import BoundingBoxAnswer, parse_bounding_box_answer
from gt_toolkit.handlers.deadline import Deadline, LambdaContext
from gt_toolkit.handlers.lambda_response import (
    RESPONSE_BUDGET,
    clip_text,
    omitted,
    returnable,
    runtime_size,
)
from gt_toolkit.handlers.pre_annotation import labels_variable
from gt_toolkit.storage.assumed_role import assumed_role_store_factory as assumed_role_store_factory
from gt_toolkit.storage.s3 import S3Store, is_s3_uri
from gt_toolkit.types import ConsolidatedBox, ImageSize

__all__ = [
    "ConsolidatedAnnotation",
    "PostAnnotationResult",
    "PostAnnotationSettings",
    "StoreFactory",
    "assumed_role_store_factory",
    "handle_post_annotation",
    "load_post_annotation_settings",
]

logger = logging.getLogger(__name__)

StoreFactory = Callable[[str], S3Store]
"""Role ARN -> an :class:`S3Store` acting as that role (for ``event["roleArn"]``); the AWS one
is :func:`gt_toolkit.storage.assumed_role.assumed_role_store_factory`, re-exported here."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_ID_LIMIT = 1_024  # characters of a datasetObjectId (Ground Truth's are short numbers)
_NAME_LIMIT = 127  # characters of a name: Ground Truth's limit for a label attribute name
_LOG_LIMIT = 10_000  # characters of a value shown in a log line
_MISMATCH_LIMIT = 500  # characters of the label-mismatch reason on each object
_OVER_LIMIT = "over the Lambda response size limit"
_OUT_OF_TIME = "not read: the Lambda ran out of time"
_READ_AHEAD = 256  # answers read from S3 ahead of the consolidation (one window of objects)
# Diagnostics replaced when a response is too big, in this order (labels never are).
_BULKY = (("worker-answers", "dropped-boxes"), ("worker-errors",))


class ConsolidatedAnnotation(TypedDict):
    """``consolidatedAnnotation``: ``content`` holds ``<attr>`` and ``<attr>-metadata``."""

    content: dict[str, Any]


class PostAnnotationResult(TypedDict):
    """One entry of the post-annotation response."""

    datasetObjectId: str | int
    consolidatedAnnotation: ConsolidatedAnnotation


@dataclass(frozen=True, slots=True, kw_only=True)
class PostAnnotationSettings:
    """How the post-annotation Lambda reads and consolidates.

    Attributes:
        consolidation: engine settings (IoU threshold, minimum support, fusion).
        assume_role: read the payload and answers as ``event["roleArn"]`` instead of the
            Lambda's own role.
        element_name: the crowd element's ``name`` in the answers; ``None`` = the single one.
        fetch_threads: concurrent reads of answers stored at ``s3Uri``.
        worker_model: the worker table ``GT_WORKER_MODEL_S3_URI`` names, read at cold start:
            it fuses, and with ``GT_KEEP=model`` it also keeps objects by its posterior
            instead of the head count (``docs/consolidation.md``, rule 8).
    """

    consolidation: ConsolidationSettings = field(default_factory=ConsolidationSettings)
    assume_role: bool = False
    element_name: str | None = None
    fetch_threads: int = 16
    worker_model: WorkerModel | None = None
    labels: tuple[str, ...] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PostAnnotationSettings:
        """Read settings from the Lambda's environment variables.

        Variables: ``GT_IOU_THRESHOLD``, ``GT_MIN_SUPPORT``, ``GT_FUSION``, ``GT_QUORUM``,
        ``GT_KEEP``, ``GT_ASSUME_ROLE`` (true/false), ``GT_ELEMENT_NAME``, ``GT_FETCH_THREADS``
        and ``GT_LABELS`` (the job's labels, for class ids when the event's
        ``labelCategories`` is null, as console jobs send it).

        Raises:
            ValidationError: every unusable variable, listed at once.
        """
        problems: list[str] = []
        consolidation = ConsolidationSettings()
        try:
            consolidation = ConsolidationSettings.from_env(env)
        except GtToolkitError as exc:
            problems.append(str(exc))
        raw_assume = env.get("GT_ASSUME_ROLE", "").strip().lower()
        if raw_assume not in _TRUE | _FALSE:
            problems.append(f"GT_ASSUME_ROLE must be true or false, got {raw_assume!r}")
        threads = 16
        raw_threads = env.get("GT_FETCH_THREADS", "").strip()
        if raw_threads:
            if raw_threads.isdigit() and int(raw_threads) >= 1:
                threads = int(raw_threads)
            else:
                problems.append(f"GT_FETCH_THREADS must be an integer >= 1, got {raw_threads!r}")
        labels = labels_variable(env.get("GT_LABELS", ""), problems)
        if problems:
            raise ValidationError(problems, what="post-annotation settings")
        return cls(
            consolidation=consolidation,
            assume_role=raw_assume in _TRUE,
            element_name=env.get("GT_ELEMENT_NAME", "").strip() or None,
            fetch_threads=threads,
            labels=labels,
        )


_Fetched = Mapping[str, bytes | Exception]
"""Answers read from S3 for one window of objects: the bytes, or why they could not be read."""


@dataclass
class _Item:
    """One data object of the payload (duplicates merged)."""

    object_id: str | int
    annotations: list[Any]
    entries: int = 1


@dataclass(frozen=True, slots=True)
class _Batch:
    """What every object of one call shares."""

    attribute: str
    labels: list[str] | None
    job_name: str
    creation_date: str
    settings: PostAnnotationSettings
    payload_uri: str


@dataclass(slots=True)
class _Answer:
    """One object's entry, its exact encoding, and what the batch-wide checks need."""

    item: _Item
    entry: PostAnnotationResult
    size: int  # bytes of the entry as the Python runtime encodes it
    failed: bool
    labels: LabelTally = field(default_factory=LabelTally)  # for the label-list check
    encode_s: float = 0.0  # seconds the encoding took, for the deadline
    # with a worker table: answers consolidated, and those by workers the table does not know
    table_answers: int = 0
    unknown_answers: int = 0

    def metadata(self, attribute: str) -> dict[str, Any]:
        meta: dict[str, Any] = self.entry["consolidatedAnnotation"]["content"][
            f"{attribute}-metadata"
        ]
        return meta

    def reencode(self) -> int:
        """Encode the entry again after a change; returns the bytes it shrank by."""
        before = self.size
        self.size = runtime_size(self.entry)
        return before - self.size


# -- phase 1: the event and the payload ------------------------------------------------------


def _event_problems(event: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """Validate the parts of the event without which nothing can be answered."""
    problems: list[str] = []
    attribute = event.get("labelAttributeName")
    if not isinstance(attribute, str) or not attribute:
        problems.append(f"labelAttributeName must be a non-empty string, got {attribute!r:.200}")
        attribute = ""
    elif attribute.endswith("-metadata"):
        problems.append(f"labelAttributeName must not end with -metadata: {attribute!r:.200}")
    elif len(attribute) > _NAME_LIMIT or clip_text(attribute) != attribute:
        problems.append(
            f"labelAttributeName must be at most {_NAME_LIMIT} characters of valid "
            f"text, got {attribute!r:.200}"
        )
    payload = event.get("payload")
    uri = payload.get("s3Uri") if isinstance(payload, Mapping) else None
    if not is_s3_uri(uri):
        problems.append(f"payload.s3Uri must be an s3:// URI, got {uri!r:.200}")
        uri = ""
    return attribute, str(uri), problems


def _labels(event: Mapping[str, Any], configured: tuple[str, ...] | None) -> list[str] | None:
    """The job's label list: the event's ``labelCategories``, else ``GT_LABELS``.

    Class ids follow it. Without either, each object's own labels are sorted, so one label
    can get different ids on different objects: a warning says so (the built-in detector
    reads ``class_id``, not ``class-map``). An empty list is no label list (a bounding-box
    job has at least one label): read as one, it would drop every box as unknown.
    """
    raw = event.get("labelCategories")
    if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        return list(raw)
    if raw is not None:
        logger.warning(
            "post_annotation.bad_label_categories %s",
            _for_log({"labelCategories": raw}),
            extra={"gt": {"labelCategories": raw}},
        )
    if configured is not None:
        return list(configured)
    logger.warning(  # console-created jobs send null
        "post_annotation.no_label_list %s",
        _for_log({"hint": "set GT_LABELS: class ids differ between objects without it"}),
        extra={"gt": {"labelCategories": raw}},
    )
    return None


def _job_name(event: Mapping[str, Any]) -> str:
    arn = event.get("labelingJobArn")
    if isinstance(arn, str) and "labeling-job/" in arn:
        arn = arn.split("labeling-job/", 1)[1]
    return clip_text(arn, _NAME_LIMIT) if isinstance(arn, str) and arn else "unknown"


def _read_payload(store: S3Store, uri: str) -> list[Any]:
    """The payload file's list of items.

    orjson reads it; what orjson refuses but JSON allows (a number beyond a double, a lone
    surrogate escape, nesting beyond 1,024 levels) is read by the standard library instead,
    so one odd value is a problem of its object, not of the batch.

    Raises:
        StorageError: unreadable, not JSON, or not a list.
    """
    body = store.get_bytes(uri)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise StorageError(f"payload {uri} is not JSON: {clip_text(str(exc))}") from exc
    if not isinstance(payload, list):
        raise StorageError(f"payload {uri} must be a JSON list, got {type(payload).__name__}")
    return payload


def _answerable_id(raw: Any) -> str | int | None:
    """The item's ``datasetObjectId`` if it can be sent back exactly; else ``None``."""
    object_id = raw.get("datasetObjectId") if isinstance(raw, Mapping) else None
    if isinstance(object_id, bool) or not isinstance(object_id, str | int):
        return None
    if isinstance(object_id, str) and len(object_id) > _ID_LIMIT:
        return None
    try:
        orjson.dumps(object_id)  # an integer of 2^64 or more, a lone surrogate
    except orjson.JSONEncodeError:
        return None
    return object_id


def _group(payload: list[Any]) -> list[_Item]:
    """Payload items keyed by ``datasetObjectId`` in first-seen order; duplicates merged."""
    items: dict[str | int, _Item] = {}
    for position, raw in enumerate(payload):
        object_id = _answerable_id(raw)
        if object_id is None:
            logger.error(
                "post_annotation.unanswerable_item %s",
                _for_log({"position": position, "item": raw}),
                extra={"gt": {"position": position, "item": raw}},
            )
            continue
        raw_annotations = raw.get("annotations")
        annotations = (  # absent: no answers; not a list: kept as one broken answer
            list(raw_annotations)
            if isinstance(raw_annotations, list)
            else ([] if raw_annotations is None else [raw_annotations])
        )
        if object_id in items:
            items[object_id].annotations.extend(annotations)
            items[object_id].entries += 1
            logger.warning(
                "post_annotation.duplicate_object %s",
                _for_log({"datasetObjectId": object_id}),
                extra={"gt": {"datasetObjectId": object_id}},
            )
        else:
            items[object_id] = _Item(object_id, annotations)
    return list(items.values())


def _stored_at(data: Mapping[str, Any]) -> str | None:
    """The ``s3Uri`` to read an answer from: set, and no ``content`` (absent or null).

    The documented ``annotationData`` lists both keys; a payload writer that fills the unused
    one with null must not turn an answer kept in S3 into a broken one.
    """
    uri = data.get("s3Uri")
    return uri if isinstance(uri, str) and data.get("content") is None else None


def _s3_uris(item: _Item) -> list[str]:
    """The ``s3Uri`` of each of the object's answers kept in S3."""
    uris = []
    for ann in item.annotations:
        data = ann.get("annotationData") if isinstance(ann, Mapping) else None
        uri = _stored_at(data) if isinstance(data, Mapping) else None
        if uri is not None:
            uris.append(uri)
    return uris


_Window = tuple[Sequence[_Item], list[str]]


def _windows(items: Sequence[_Item]) -> Iterator[_Window]:
    """The objects in payload order, cut where their answers in S3 reach :data:`_READ_AHEAD`.

    Each window comes with the distinct URIs to read for it, collected once.
    """
    start = reads = 0
    uris: dict[str, None] = {}
    for end, item in enumerate(items, 1):
        stored = _s3_uris(item)
        uris.update(dict.fromkeys(stored))
        reads += len(stored)
        if reads >= _READ_AHEAD:
            yield items[start:end], list(uris)
            start, reads, uris = end, 0, {}
    if start < len(items):
        yield items[start:], list(uris)


def _start_reads(
    pool: ThreadPoolExecutor, store: S3Store, window: _Window | None
) -> list[Future[tuple[str, bytes | Exception]]]:
    """Start reading one window's answers; a failed read is kept as its exception."""

    def one(uri: str) -> tuple[str, bytes | Exception]:
        try:
            return uri, store.get_bytes(uri)
        except (GtToolkitError, ValueError) as exc:  # ValueError: a key boto3 cannot encode
            return uri, exc

    return [pool.submit(one, uri) for uri in (window[1] if window is not None else ())]


# -- phase 2: each object on its own ---------------------------------------------------------


def _decode(annotation: Any, fetched: _Fetched) -> Mapping[str, Any]:
    """One worker's ``annotationData`` as the decoded answer content.

    Raises:
        GtToolkitError | ValueError | RecursionError: the answer cannot be read or is not a
            JSON object.
    """
    if not isinstance(annotation, Mapping):
        raise ConsolidationError("annotation is not an object")
    data = annotation.get("annotationData")
    if not isinstance(data, Mapping):
        raise ConsolidationError("annotationData is missing or not an object")
    uri = _stored_at(data)
    if uri is not None:
        body = fetched[uri]
        if isinstance(body, Exception):
            raise body
        decoded = json.loads(body)
    elif "content" in data:
        content = data["content"]
        decoded = json.loads(content) if isinstance(content, str | bytes) else content
    else:
        raise ConsolidationError("annotationData has neither content nor s3Uri")
    if isinstance(decoded, Mapping) and "answerContent" in decoded:
        decoded = decoded["answerContent"]  # a worker-response style wrapper
    if not isinstance(decoded, Mapping):
        raise ConsolidationError(
            f"answer content must be a JSON object, got {type(decoded).__name__}"
        )
    return decoded


def _parse(
    content: Mapping[str, Any], annotation: Mapping[str, Any], worker: str, element: str | None
) -> BoundingBoxAnswer:
    """One worker's answer, also when ``s3Uri`` names a worker-response file.

    A worker-response file (``{"answers": [...]}``, the shape Ground Truth keeps under
    ``worker-response/iteration-N/``, ``docs/ground-truth-formats.md`` §2.3) gives the answer
    whose ``workerId`` is the annotation's, or its only answer.

    Raises:
        ConsolidationError: not a bounding-box answer, or no single answer of this worker.
    """
    if not isinstance(content.get("answers"), list):
        return parse_bounding_box_answer(content, worker_id=worker, element_name=element)
    from gt_toolkit.formats.crowd.gt_job import parse_worker_response  # rare: not at cold start

    found = parse_worker_response(content, element_name=element)
    mine = [a for a in found if a.worker_id == annotation.get("workerId")]
    if not mine and len(found) == 1:
        mine = found
    if len(mine) != 1:
        raise ConsolidationError(
            f"the worker-response file holds {len(found)} answers, {len(mine)} by this worker"
        )
    return replace(mine[0], worker_id=worker)


def _worker_id(annotation: Any, index: int) -> tuple[str, str]:
    """The answer's worker name, and the name a worker table knows it by.

    An answer without a ``workerId`` is ``worker-<index>`` in the output, but no worker of a
    table: a table may hold a real worker of that name. For the table it is an anonymous
    answer (:func:`~gt_toolkit.formats.crowd.anonymous_worker`), a name no table read back
    holds (``WorkerModel.from_json`` drops them all): it takes the crowd's skills.
    Only the output's name is cut to ``_NAME_LIMIT``: a table (an offline fit reads whole
    ids) knows the worker by the whole id, and two ids alike in their first 127 characters
    read the same once cut.
    """
    wid = annotation.get("workerId") if isinstance(annotation, Mapping) else None
    if isinstance(wid, str) and wid:
        return clip_text(wid, _NAME_LIMIT), wid
    return f"worker-{index}", anonymous_worker(0, index)


def _read_answers(
    item: _Item, batch: _Batch, fetched: _Fetched
) -> tuple[list[BoundingBoxAnswer], list[str], list[dict[str, str]], list[Any]]:
    """The usable answers and their workers' names in a table; the others' reasons and raw.

    The names in a table are :func:`_worker_id`'s second.
    """
    answers: list[BoundingBoxAnswer] = []
    known_as: list[str] = []
    errors: list[dict[str, str]] = []
    broken: list[Any] = []
    for index, annotation in enumerate(item.annotations):
        worker, table_name = _worker_id(annotation, index)
        try:
            content = _decode(annotation, fetched)
            answers.append(_parse(content, annotation, worker, batch.settings.element_name))
            known_as.append(table_name)
        except (GtToolkitError, ValueError, TypeError, KeyError, RecursionError) as exc:
            errors.append({"workerId": worker, "reason": clip_text(f"{type(exc).__name__}: {exc}")})
            broken.append(annotation)
    return answers, known_as, errors, broken


def _image_size(answers: Sequence[BoundingBoxAnswer]) -> ImageSize | None:
    """The size most workers reported (ties: the first reported)."""
    sizes = [a.image_size for a in answers if a.image_size is not None]
    if not sizes:
        return None
    counts = Counter((s["width"], s["height"]) for s in sizes)
    best = max(counts.values())
    return next(s for s in sizes if counts[(s["width"], s["height"])] == best)


def _dropped_box(answers: Sequence[BoundingBoxAnswer], drop: Mapping[str, Any]) -> dict[str, Any]:
    """One ``dropped-boxes`` record: who drew it, the box, why it was dropped."""
    answer = answers[drop["worker"]]
    box = {**answer.boxes[drop["box"]]}
    box["label"] = clip_text(box["label"])
    record = {"workerId": answer.worker_id, "box": box, "reason": str(drop["reason"])}
    if drop.get("detail"):
        record["detail"] = clip_text(str(drop["detail"]))
    return record


def _answer(
    item: _Item,
    batch: _Batch,
    boxes: Sequence[ConsolidatedBox],
    size: ImageSize | None,
    extra: dict[str, Any],
    *,
    failed: bool,
) -> _Answer:
    """The object's entry, encoded.

    Raises:
        orjson.JSONEncodeError: the entry cannot be sent (a label a worker typed with a lone
            surrogate, say); the caller answers the object as failed instead.
    """
    if item.entries > 1:
        extra["duplicate-entries"] = item.entries
    content = build_detection_label(
        batch.attribute,
        boxes,
        image_size=size,
        labels=batch.labels,
        job_name=batch.job_name,
        creation_date=batch.creation_date,
        extra_metadata=extra,
    )
    entry: PostAnnotationResult = {
        "datasetObjectId": item.object_id,
        "consolidatedAnnotation": {"content": content},
    }
    started = time.perf_counter()
    encoded = runtime_size(entry)
    return _Answer(item, entry, encoded, failed, encode_s=time.perf_counter() - started)


def _failed(item: _Item, batch: _Batch, reason: str, *, omit: str | None = None) -> _Answer:
    """Empty label, the reason and the raw answers: the object is answered, nothing lost.

    With ``omit`` (why), a pointer to the payload file stands in for the raw answers, which
    are then not even encoded (dense answers take milliseconds each). Never raises: every
    part is either built here or passed through :func:`returnable`.
    """
    answers: Any = (
        omitted(omit, len(item.annotations), batch.payload_uri)
        if omit
        else [returnable(a, batch.payload_uri) for a in item.annotations]
    )
    extra = {"failure-reason": clip_text(reason), "worker-answers": answers}
    return _answer(item, batch, [], None, extra, failed=True)


def _consolidate_item(item: _Item, batch: _Batch, fetched: _Fetched) -> _Answer:
    """Consolidate one object: its usable answers, the broken ones kept with their reasons."""
    answers, known_as, errors, broken = _read_answers(item, batch, fetched)
    if not answers:
        reasons = "; ".join(f"{e['workerId']}: {e['reason']}" for e in errors)
        reason = f"no usable worker answer ({reasons})" if errors else "no worker answers"
        return _failed(item, batch, reason)
    size = _image_size(answers)
    boxes = [a.boxes for a in answers]
    result = consolidate_image(
        boxes,
        settings=batch.settings.consolidation,
        labels=batch.labels,
        image_size=size,
        worker_model=batch.settings.worker_model,
        annotators=known_as if batch.settings.worker_model else None,
    )
    extra: dict[str, Any] = {"worker-count": result.workers}
    if errors:
        extra["worker-errors"] = errors
        extra["worker-answers"] = [returnable(a, batch.payload_uri) for a in broken]
    if result.dropped:
        dropped = [_dropped_box(answers, d) for d in result.dropped]
        extra["dropped-boxes"] = returnable(dropped, batch.payload_uri)  # NaN edges read null
    answer = _answer(item, batch, result.boxes, size, extra, failed=False)
    answer.labels.add(boxes, result)
    model = batch.settings.worker_model
    if model is not None:
        answer.table_answers = len(known_as)
        answer.unknown_answers = sum(1 for name in known_as if name not in model.workers)
    return answer


def _answer_one(item: _Item, batch: _Batch, fetched: _Fetched) -> _Answer:
    """One object's answer; whatever goes wrong with it fails only that object."""
    try:
        return _consolidate_item(item, batch, fetched)
    except Exception as exc:  # the one broad except: one object never fails the batch
        logger.exception(
            "post_annotation.object_failed %s",
            _for_log({"datasetObjectId": item.object_id}),
            extra={"gt": {"datasetObjectId": item.object_id}},
        )
        return _failed(item, batch, f"{type(exc).__name__}: {exc}")


def _answer_all(
    items: Sequence[_Item], batch: _Batch, store: S3Store, deadline: Deadline
) -> tuple[list[_Answer], int]:
    """One answer per object, in order, and how many answers were read from S3.

    Answers kept in S3 are read one window (:func:`_windows`) ahead of the consolidation, so
    at most two windows of them are held at once, whatever the batch size. Once the
    ``deadline`` has passed, the reads not yet started are cancelled and every object left
    is answered by :func:`_out_of_time`.
    """
    answered: list[_Answer] = []
    reads = 0
    windows = _windows(items)
    pool = ThreadPoolExecutor(max_workers=batch.settings.fetch_threads)
    pending: list[Future[tuple[str, bytes | Exception]]] = []
    try:
        window = next(windows, None)
        pending = _start_reads(pool, store, window)
        while window is not None:
            late = _wait_reads(pending, deadline, len(items) - len(answered))
            if late:
                deadline.stop(len(items) - len(answered))
                left = items[len(answered) :]
                answered.extend(_out_of_time(left, len(answered), batch, deadline, late))
                return answered, reads
            fetched = dict(future.result() for future in pending)
            reads += len(fetched)
            following = next(windows, None)
            pending = _start_reads(pool, store, following)
            for item in window[0]:
                if deadline.passed(len(items) - len(answered)):
                    left = items[len(answered) :]
                    answered.extend(_out_of_time(left, len(answered), batch, deadline))
                    return answered, reads
                started = time.perf_counter()
                answer = _answer_one(item, batch, fetched)
                deadline.record(time.perf_counter() - started, answer.encode_s)
                answered.append(answer)
            window = following
    finally:
        # reads still running when time is up are not waited for: one that hangs would take
        # the Lambda past its timeout, and every answer with it
        pool.shutdown(wait=not any(f.running() for f in pending), cancel_futures=True)
    return answered, reads


def _wait_reads(
    pending: Sequence[Future[tuple[str, bytes | Exception]]], deadline: Deadline, unanswered: int
) -> int:
    """Wait for one window's reads while the deadline allows; how many are still unread.

    The clock is asked only for a window with answers to read.
    """
    if not pending:
        return 0
    _, late = wait(pending, timeout=deadline.wait_s(unanswered))
    return len(late)


def _out_of_time(
    items: Sequence[_Item], consolidated: int, batch: _Batch, deadline: Deadline, unread: int = 0
) -> list[_Answer]:
    """The objects left when the deadline passed, failed, and one WARNING line with counts.

    ``unread``: the answers in S3 still being read then (a wait for them ran out of time).
    Their answers stay in the payload file, from which offline re-consolidation labels them.
    """
    reads = f", with {unread} answer{'s' * (unread != 1)} in S3 still being read" if unread else ""
    reason = (
        f"deadline: {deadline.remaining_ms} ms of the Lambda's time were left and "
        f"{deadline.reserve_ms:.0f} ms were needed to consolidate another object and still "
        f"answer the {len(items)} not consolidated{reads}: raise the function's timeout or "
        f"lower the labeling job's MaxConcurrentTaskCount; the answers are in "
        f"{batch.payload_uri}"
    )
    failed = [_failed(item, batch, reason, omit=_OUT_OF_TIME) for item in items]
    fields = {
        "payload": batch.payload_uri,
        "objects": consolidated + len(items),
        "consolidated": consolidated,
        "failedDeadline": len(items),
        "remainingMs": deadline.remaining_ms,
        "reserveMs": round(deadline.reserve_ms),
        "slowestObjectMs": round(deadline.slowest_ms),
        "unreadAnswers": unread,
    }
    logger.warning(
        "post_annotation.deadline: %d objects not consolidated, answered as failed %s",
        len(items),
        _for_log(fields),
        extra={"gt": fields},
    )
    return failed


# -- phase 3: what only the whole batch shows ------------------------------------------------


def _check_labels(answered: Sequence[_Answer], batch: _Batch) -> LabelMismatch | None:
    """Fail every object of a batch whose boxes mostly carry labels not in the label list.

    The rule is :func:`gt_toolkit.consolidation.label_check.label_mismatch`. Each object keeps
    the boxes that did match and gets ``failure-reason``; the log says it once.
    """
    if batch.labels is None:
        return None
    tally = LabelTally()
    for answer in answered:
        tally += answer.labels
    mismatch = tally.mismatch(batch.labels)
    if mismatch is None:
        return None
    reason = clip_text(mismatch.message, _MISMATCH_LIMIT)
    for answer in answered:
        if not answer.failed:
            answer.metadata(batch.attribute)["failure-reason"] = reason
            answer.failed = True
            answer.reencode()
    fields = {"payload": batch.payload_uri, "objects": len(answered), "message": mismatch.message}
    logger.error("post_annotation.label_mismatch %s", _for_log(fields), extra={"gt": fields})
    return mismatch


def _size(answered: Sequence[_Answer]) -> int:
    """Bytes of the response: the entries, a comma between each two, and the brackets."""
    return sum(a.size for a in answered) + 2 * max(len(answered) - 1, 0) + 2


def _trim_diagnostics(answered: Sequence[_Answer], batch: _Batch, budget: int) -> int:
    """Replace diagnostics, biggest objects first, until the response fits; returns objects.

    First the raw answers and dropped boxes, then (if still needed) the error texts; each
    becomes :func:`~gt_toolkit.handlers.lambda_response.omitted` pointing to the payload file,
    which holds every raw answer. Labels are left alone.
    """
    size = _size(answered)
    trimmed: set[int] = set()
    for keys in _BULKY:
        for index in sorted(range(len(answered)), key=lambda i: -answered[i].size):
            if size <= budget:
                return len(trimmed)
            meta = answered[index].metadata(batch.attribute)
            present = [k for k in keys if isinstance(meta.get(k), list)]
            for key in present:
                meta[key] = omitted(_OVER_LIMIT, len(meta[key]), batch.payload_uri)
            if present:
                size -= answered[index].reencode()
                trimmed.add(index)
    return len(trimmed)


def _fail_biggest(answered: list[_Answer], batch: _Batch, budget: int) -> int:
    """When the labels alone cannot fit, answer the biggest objects as failed; returns how many.

    Failing the fewest objects keeps the most labels; a failed object's answers stay in the
    payload file, from which offline re-consolidation can label it.
    """
    size = needed = _size(answered)
    if size <= budget:
        return 0
    text = (
        f"a batch of {len(answered)} objects needs {needed:,} bytes of labels, over the "
        f"{budget:,}-byte Lambda response limit: lower the labeling job's "
        "MaxConcurrentTaskCount"
    )
    reason = f"response-too-large: {text}; the answers are in {batch.payload_uri}"
    failed = 0
    for index in sorted(range(len(answered)), key=lambda i: -answered[i].size):
        if size <= budget:
            break
        replacement = _failed(answered[index].item, batch, reason, omit=_OVER_LIMIT)
        saved = answered[index].size - replacement.size
        if saved > 0:
            answered[index] = replacement
            size -= saved
            failed += 1
    fields = {"objects": len(answered), "bytes": needed, "budget": budget, "failed": failed}
    logger.error(
        "post_annotation.response_too_large: %s; %d objects answered as failed %s",
        text,
        failed,
        _for_log({**fields, "payload": batch.payload_uri}),
        extra={"gt": fields},
    )
    return failed


def _for_log(value: Any) -> str:
    """A value as one bounded JSON text for a log line, whatever it holds."""
    try:
        text = orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError as exc:
        text = f"(cannot be shown as JSON: {exc})"
    return clip_text(text, _LOG_LIMIT)


# -- the handler -----------------------------------------------------------------------------


def _respond(
    event: Mapping[str, Any],
    store: S3Store,
    settings: PostAnnotationSettings,
    store_for_role: StoreFactory | None,
    creation_date: str | None,
    budget: int,
    deadline: Deadline,
) -> list[_Answer]:
    """Every phase in order; see :func:`handle_post_annotation`."""
    started = time.perf_counter()
    attribute, uri, problems = _event_problems(event)
    role = event.get("roleArn")
    if settings.assume_role:
        if not isinstance(role, str) or not role:
            problems.append("GT_ASSUME_ROLE is set but the event has no roleArn")
        if store_for_role is None:
            problems.append("GT_ASSUME_ROLE is set but no store factory was given")
    if problems:
        raise ValidationError(problems, what="post-annotation event")
    if settings.assume_role:
        assert store_for_role is not None and isinstance(role, str)  # checked above
        store = store_for_role(role)
    payload = _read_payload(store, uri)
    items = _group(payload)
    batch = _Batch(
        attribute=attribute,
        labels=_labels(event, settings.labels),
        job_name=_job_name(event),
        creation_date=creation_date or now_creation_date(),
        settings=settings,
        payload_uri=uri,
    )
    answered, reads = _answer_all(items, batch, store, deadline)
    mismatch = _check_labels(answered, batch)
    trimmed = _trim_diagnostics(answered, batch, budget)
    if trimmed:
        fields = {"payload": uri, "objects": trimmed, "budget": budget}
        logger.warning(
            "post_annotation.diagnostics_trimmed %s", _for_log(fields), extra={"gt": fields}
        )
    too_large = _fail_biggest(answered, batch, budget)
    _log_unknown_workers(answered, settings, uri)
    fields = {
        "labelingJobArn": event.get("labelingJobArn"),
        "payload": uri,
        "items": len(payload),
        "objects": len(answered),
        "failed": sum(a.failed for a in answered),
        "failedDeadline": deadline.left,
        "labelMismatch": mismatch is not None,
        "diagnosticsTrimmed": trimmed,
        "failedTooLarge": too_large,
        "bytes": _size(answered),
        "answersFromS3": reads,
        "seconds": round(time.perf_counter() - started, 3),
    }
    logger.info("post_annotation.done %s", _for_log(fields), extra={"gt": fields})
    return answered


def _log_unknown_workers(
    answered: Sequence[_Answer], settings: PostAnnotationSettings, uri: str
) -> None:
    """Warn when the worker table did not know the workers of some answers.

    Their answers took the crowd's skills: a table fitted on another job (or another
    workforce) decides with the crowd's figures alone, which ``gt-convert consolidate``
    says ("N annotators unknown to the worker model") and the Lambda said nowhere.
    """
    if settings.worker_model is None:
        return
    unknown = sum(a.unknown_answers for a in answered)
    if not unknown:
        return
    fields = {
        "payload": uri,
        "unknownAnswers": unknown,
        "answers": sum(a.table_answers for a in answered),
        "tableWorkers": len(settings.worker_model.workers),
    }
    logger.warning(
        "post_annotation.workers_unknown_to_table %s (their answers take the crowd's skills)",
        _for_log(fields),
        extra={"gt": fields},
    )


def load_post_annotation_settings(
    env: Mapping[str, str], *, store: S3Store | None = None
) -> PostAnnotationSettings:
    """Settings from the environment, with the worker table ``GT_WORKER_MODEL_S3_URI`` names.

    Called once at cold start. A table that cannot be read raises: a Lambda that fails at
    start is better than one that silently falls back to the head count.

    Raises:
        ValidationError: an unusable variable, or ``GT_KEEP=model`` without
            ``GT_WORKER_MODEL_S3_URI``.
    """
    settings = PostAnnotationSettings.from_env(env)
    uri = env.get("GT_WORKER_MODEL_S3_URI", "").strip()
    if settings.consolidation.keep == "model" and not uri:
        raise ValidationError(
            ["GT_KEEP=model needs a worker table: set GT_WORKER_MODEL_S3_URI"],
            what="post-annotation settings",
        )
    return replace(settings, worker_model=read_worker_model(uri, store=store)) if uri else settings


def handle_post_annotation(
    event: Mapping[str, Any],
    *,
    store: S3Store,
    settings: PostAnnotationSettings,
    store_for_role: StoreFactory | None = None,
    creation_date: str | None = None,
    response_budget: int = RESPONSE_BUDGET,
    context: LambdaContext | None = None,
) -> list[PostAnnotationResult]:
    """Consolidate one Ground Truth batch: exactly one entry per ``datasetObjectId``.

    Args:
        event: the post-annotation event (``labelAttributeName``, ``labelCategories``,
            ``labelingJobArn``, ``roleArn``, ``payload.s3Uri``).
        store: S3 as the Lambda's own role.
        settings: see :class:`PostAnnotationSettings`.
        store_for_role: builds a store acting as ``event["roleArn"]``; used, and required,
            when ``settings.assume_role`` is set.
        creation_date: the ``creation-date`` to stamp (default: now, once per call).
        response_budget: the most bytes the runtime's encoding of the result may take (see
            :func:`~gt_toolkit.handlers.lambda_response.runtime_size`).
        context: the Lambda context; with it, objects still to consolidate when the time
            left runs short are answered as failed (``deadline: ...``) instead of Lambda
            ending the call and losing every answer (:mod:`gt_toolkit.handlers.deadline`).
            ``None``: no deadline.

    Returns:
        One entry per distinct answerable ``datasetObjectId`` in payload order, as plain
        JSON values for the Lambda to return.

    Raises:
        ValidationError: the event lacks what every answer needs (label attribute, payload
            URI, role when assuming one).
        StorageError: the payload cannot be read, is not JSON or not a list, or the role
            cannot be assumed.
    """
    answered = _respond(
        event,
        store,
        settings,
        store_for_role,
        creation_date,
        response_budget,
        Deadline(context),
    )
    return [a.entry for a in answered]
