"""Post-annotation (consolidation): one bounding-box label per data object, never one lost.

Ground Truth calls the post-annotation Lambda once per batch with a pointer to a payload file
in S3 listing every object and its workers' answers (``docs/ground-truth-formats.md``
§3). :func:`handle_post_annotation` reads it, consolidates each object with
:func:`gt_toolkit.consolidation.engine.consolidate_image` and returns exactly one entry per
``datasetObjectId``, in payload order, in the built-in bounding-box output shape (§2.1), so the
output manifest of a custom job reads like a built-in one.

Contract, and what happens with bad data:

* Each object is consolidated in its own ``try``. A broken answer (undecodable ``content``,
  unreadable ``s3Uri``, wrong shape) drops only that worker: it is listed under
  ``worker-errors`` and kept verbatim under ``worker-answers`` in the metadata. An object
  whose answers are all broken comes back with empty ``annotations``, a ``failure-reason`` and
  the raw answers. Boxes the engine drops are listed under ``dropped-boxes`` with the reason.
* Payload items without a usable ``datasetObjectId`` cannot be answered; they are logged
  whole (level ERROR) and skipped. Ground Truth never sends them.
* **Duplicate ``datasetObjectId``s** (not expected from Ground Truth) are merged: their
  answers are consolidated together, once, at the position of the first occurrence, and
  ``duplicate-entries`` in the metadata says how many items were merged. Returning one
  entry per id is the contract; merging loses no answer.
* The payload itself unreadable, or an event without ``labelAttributeName`` or
  ``payload.s3Uri``, fails the whole call: there is nothing to answer with, and Ground Truth
  retries the batch.
* The result depends only on the event and the S3 objects it names (and ``creation-date``),
  so a retried call returns the same labels.
* **Lambda's 6 MB response limit.** When the diagnostics (``worker-answers``,
  ``dropped-boxes``) would push the response past :data:`RESPONSE_BUDGET` bytes, they are
  replaced, biggest object first, by a count and a pointer to the payload file (which holds
  every raw answer); the labels themselves are never cut. A response over the limit would
  fail the whole batch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import orjson

from gt_toolkit.consolidation.engine import ConsolidationSettings, consolidate_image
from gt_toolkit.consolidation.worker_model import WorkerModel, read_worker_model
from gt_toolkit.errors import GtToolkitError, StorageError, ValidationError
from gt_toolkit.formats.detection_label import build_detection_label, now_creation_date
from gt_toolkit.formats.worker_answers import BoundingBoxAnswer, parse_bounding_box_answer
from gt_toolkit.storage.assumed_role import assumed_role_store_factory as assumed_role_store_factory
from gt_toolkit.storage.s3 import S3Store, is_s3_uri
from gt_toolkit.types import ImageSize

__all__ = [
    "RESPONSE_BUDGET",
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
            objects are kept by its posterior, not the head count (``docs/consolidation.md``).
    """

    consolidation: ConsolidationSettings = field(default_factory=ConsolidationSettings)
    assume_role: bool = False
    element_name: str | None = None
    fetch_threads: int = 16
    worker_model: WorkerModel | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PostAnnotationSettings:
        """Read settings from the Lambda's environment variables.

        Variables: ``GT_IOU_THRESHOLD``, ``GT_MIN_SUPPORT``, ``GT_FUSION``, ``GT_QUORUM``,
        ``GT_ASSUME_ROLE`` (true/false), ``GT_ELEMENT_NAME`` and ``GT_FETCH_THREADS``.

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
        if problems:
            raise ValidationError(problems, what="post-annotation settings")
        return cls(
            consolidation=consolidation,
            assume_role=raw_assume in _TRUE,
            element_name=env.get("GT_ELEMENT_NAME", "").strip() or None,
            fetch_threads=threads,
        )


@dataclass
class _Item:
    """One data object of the payload (duplicates merged)."""

    object_id: str | int
    data_object: Any
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
    fetched: Mapping[str, bytes | Exception]


def _event_problems(event: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """Validate the parts of the event without which nothing can be answered."""
    problems: list[str] = []
    attribute = event.get("labelAttributeName")
    if not isinstance(attribute, str) or not attribute:
        problems.append(f"labelAttributeName must be a non-empty string, got {attribute!r}")
        attribute = ""
    elif attribute.endswith("-metadata"):
        problems.append(f"labelAttributeName must not end with -metadata: {attribute!r}")
    payload = event.get("payload")
    uri = payload.get("s3Uri") if isinstance(payload, Mapping) else None
    if not is_s3_uri(uri):
        problems.append(f"payload.s3Uri must be an s3:// URI, got {uri!r}")
        uri = ""
    return attribute, str(uri), problems


def _labels(event: Mapping[str, Any]) -> list[str] | None:
    raw = event.get("labelCategories")
    if raw is None:
        return None  # console-created jobs send null
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return list(raw)
    logger.warning(
        "post_annotation.bad_label_categories %s",
        json.dumps({"labelCategories": raw}, default=str),
        extra={"gt": {"labelCategories": raw}},
    )
    return None


def _job_name(event: Mapping[str, Any]) -> str:
    arn = event.get("labelingJobArn")
    if isinstance(arn, str) and "labeling-job/" in arn:
        return arn.split("labeling-job/", 1)[1]
    return arn if isinstance(arn, str) and arn else "unknown"


def _group(payload: list[Any]) -> list[_Item]:
    """Payload items keyed by ``datasetObjectId`` in first-seen order; duplicates merged."""
    items: dict[str | int, _Item] = {}
    for position, raw in enumerate(payload):
        object_id = raw.get("datasetObjectId") if isinstance(raw, Mapping) else None
        if isinstance(object_id, bool) or not isinstance(object_id, str | int):
            logger.error(
                "post_annotation.unanswerable_item %s",
                json.dumps({"position": position, "item": raw}, default=str),
                extra={"gt": {"position": position, "item": raw}},
            )
            continue
        assert isinstance(raw, Mapping)  # narrowed by the id check above
        annotations = raw.get("annotations")
        annotations = list(annotations) if isinstance(annotations, list) else [annotations]
        if object_id in items:
            items[object_id].annotations.extend(annotations)
            items[object_id].entries += 1
            logger.warning(
                "post_annotation.duplicate_object %s",
                json.dumps({"datasetObjectId": object_id}),
                extra={"gt": {"datasetObjectId": object_id}},
            )
        else:
            items[object_id] = _Item(object_id, raw.get("dataObject"), annotations)
    return list(items.values())


def _s3_uris(items: Sequence[_Item]) -> list[str]:
    uris: dict[str, None] = {}
    for item in items:
        for ann in item.annotations:
            data = ann.get("annotationData") if isinstance(ann, Mapping) else None
            if not isinstance(data, Mapping) or "content" in data:
                continue
            uri = data.get("s3Uri")
            if isinstance(uri, str):
                uris[uri] = None
    return list(uris)


def _fetch(store: S3Store, uris: Sequence[str], threads: int) -> dict[str, bytes | Exception]:
    """Read answers stored in S3 concurrently; a failed read is kept as its exception."""

    def one(uri: str) -> bytes | Exception:
        try:
            return store.get_bytes(uri)
        except GtToolkitError as exc:
            return exc

    if not uris:
        return {}
    with ThreadPoolExecutor(max_workers=min(threads, len(uris))) as pool:
        return dict(zip(uris, pool.map(one, uris), strict=True))


def _decode(annotation: Any, fetched: Mapping[str, bytes | Exception]) -> Mapping[str, Any]:
    """One worker's ``annotationData`` as the decoded answer content.

    Raises:
        GtToolkitError | ValueError: the answer cannot be read or is not a JSON object.
    """
    if not isinstance(annotation, Mapping):
        raise ValidationError([f"annotation is not an object: {annotation!r}"], what="answer")
    data = annotation.get("annotationData")
    if not isinstance(data, Mapping):
        raise ValidationError(["annotationData is missing or not an object"], what="answer")
    if "content" in data:
        content = data["content"]
        decoded = json.loads(content) if isinstance(content, str | bytes) else content
    elif isinstance(data.get("s3Uri"), str):
        body = fetched[data["s3Uri"]]
        if isinstance(body, Exception):
            raise body
        decoded = json.loads(body)
    else:
        raise ValidationError(["annotationData has neither content nor s3Uri"], what="answer")
    if isinstance(decoded, Mapping) and "answerContent" in decoded:
        decoded = decoded["answerContent"]  # a worker-response style wrapper
    if not isinstance(decoded, Mapping):
        raise ValidationError(
            [f"answer content must be a JSON object, got {type(decoded).__name__}"],
            what="answer",
        )
    return decoded


def _worker_id(annotation: Any, index: int) -> str:
    wid = annotation.get("workerId") if isinstance(annotation, Mapping) else None
    return wid if isinstance(wid, str) and wid else f"worker-{index}"


def _image_size(answers: Sequence[BoundingBoxAnswer]) -> ImageSize | None:
    """The size most workers reported (ties: the first reported)."""
    sizes = [a.image_size for a in answers if a.image_size is not None]
    if not sizes:
        return None
    counts = Counter((s["width"], s["height"]) for s in sizes)
    best = max(counts.values())
    return next(s for s in sizes if counts[(s["width"], s["height"])] == best)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become ``None`` so the response stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _entry(
    item: _Item, batch: _Batch, boxes: Any, size: ImageSize | None, extra: dict[str, Any]
) -> PostAnnotationResult:
    if item.entries > 1:
        extra["duplicate-entries"] = item.entries
    content = build_detection_label(
        batch.attribute,
        boxes,
        image_size=size,
        labels=batch.labels,
        job_name=batch.job_name,
        creation_date=batch.creation_date,
        extra_metadata=_json_safe(extra),
    )
    return {"datasetObjectId": item.object_id, "consolidatedAnnotation": {"content": content}}


# AWS Lambda returns at most 6 MB from a synchronous call; leave room for the runtime's
# own JSON encoding (which escapes more than orjson) and the envelope.
RESPONSE_BUDGET = 5_000_000
_BULKY = ("worker-answers", "dropped-boxes")


def _fit_response(
    results: list[PostAnnotationResult], attribute: str, payload_uri: str, budget: int
) -> int:
    """Trim diagnostics until the response fits ``budget`` bytes; returns objects trimmed.

    Biggest metadata first, so as few objects as possible lose their diagnostics; each
    bulky field becomes ``{"omitted": why, "count": n, "payload": uri}``. The raw answers
    stay in the payload file, so nothing is lost, and the labels are untouched.
    """
    size = len(orjson.dumps(results))
    if size <= budget:
        return 0
    metas = []
    for entry in results:
        meta = entry["consolidatedAnnotation"]["content"].get(f"{attribute}-metadata")
        if isinstance(meta, dict) and any(key in meta for key in _BULKY):
            metas.append((len(orjson.dumps(meta)), meta))
    metas.sort(key=lambda m: -m[0])
    trimmed = 0
    for _, meta in metas:
        if size <= budget:
            break
        for key in _BULKY:
            if key in meta:
                before = len(orjson.dumps(meta[key]))
                meta[key] = {
                    "omitted": "over the Lambda response size limit",
                    "count": len(meta[key]),
                    "payload": payload_uri,
                }
                size -= before - len(orjson.dumps(meta[key]))
        trimmed += 1
    return trimmed


def _failed(item: _Item, batch: _Batch, reason: str) -> PostAnnotationResult:
    """Empty label, the reason and every raw answer: the object is answered, nothing lost."""
    extra = {"failure-reason": reason, "worker-answers": item.annotations}
    return _entry(item, batch, [], None, extra)


def _consolidate_item(item: _Item, batch: _Batch) -> tuple[PostAnnotationResult, bool]:
    """Consolidate one object; returns its entry and whether it failed."""
    answers: list[BoundingBoxAnswer] = []
    errors: list[dict[str, str]] = []
    broken: list[Any] = []
    for index, annotation in enumerate(item.annotations):
        worker = _worker_id(annotation, index)
        try:
            content = _decode(annotation, batch.fetched)
            answers.append(
                parse_bounding_box_answer(
                    content, worker_id=worker, element_name=batch.settings.element_name
                )
            )
        except (GtToolkitError, ValueError, TypeError, KeyError) as exc:
            errors.append({"workerId": worker, "reason": f"{type(exc).__name__}: {exc}"})
            broken.append(annotation)
    if not answers:
        reasons = "; ".join(f"{e['workerId']}: {e['reason']}" for e in errors)
        reason = f"no usable worker answer ({reasons})" if errors else "no worker answers"
        return _failed(item, batch, reason), True
    size = _image_size(answers)
    result = consolidate_image(
        [a.boxes for a in answers],
        settings=batch.settings.consolidation,
        labels=batch.labels,
        image_size=size,
        worker_model=batch.settings.worker_model,
        annotators=[a.worker_id for a in answers] if batch.settings.worker_model else None,
    )
    extra: dict[str, Any] = {"worker-count": result.workers}
    if errors:
        extra["worker-errors"] = errors
        extra["worker-answers"] = broken
    if result.dropped:
        extra["dropped-boxes"] = [
            {
                "workerId": answers[d["worker"]].worker_id,
                "box": answers[d["worker"]].boxes[d["box"]],
                "reason": str(d["reason"]),
                **({"detail": d["detail"]} if d.get("detail") else {}),
            }
            for d in result.dropped
        ]
    return _entry(item, batch, result.boxes, size, extra), False


def load_post_annotation_settings(
    env: Mapping[str, str], *, store: S3Store | None = None
) -> PostAnnotationSettings:
    """Settings from the environment, with the worker table ``GT_WORKER_MODEL_S3_URI`` names.

    Called once at cold start. A table that cannot be read raises: a Lambda that fails at
    start is better than one that silently falls back to the head count.
    """
    settings = PostAnnotationSettings.from_env(env)
    uri = env.get("GT_WORKER_MODEL_S3_URI", "").strip()
    return replace(settings, worker_model=read_worker_model(uri, store=store)) if uri else settings


def handle_post_annotation(
    event: Mapping[str, Any],
    *,
    store: S3Store,
    settings: PostAnnotationSettings,
    store_for_role: StoreFactory | None = None,
    creation_date: str | None = None,
    response_budget: int = RESPONSE_BUDGET,
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
        response_budget: the most bytes the (JSON) response may take; diagnostics are
            trimmed to fit (see the module docstring).

    Returns:
        One entry per distinct ``datasetObjectId`` in payload order.

    Raises:
        ValidationError: the event lacks what every answer needs (label attribute, payload
            URI, role when assuming one).
        StorageError: the payload cannot be read, or the role cannot be assumed.
        ConsolidationError: the payload is not a JSON list.
    """
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
    try:
        payload = orjson.loads(store.get_bytes(uri))
    except orjson.JSONDecodeError as exc:
        raise StorageError(f"payload {uri} is not JSON: {exc}") from exc
    if not isinstance(payload, list):
        raise StorageError(f"payload {uri} must be a JSON list, got {type(payload).__name__}")
    items = _group(payload)
    batch = _Batch(
        attribute=attribute,
        labels=_labels(event),
        job_name=_job_name(event),
        creation_date=creation_date or now_creation_date(),
        settings=settings,
        fetched=_fetch(store, _s3_uris(items), settings.fetch_threads),
    )
    results: list[PostAnnotationResult] = []
    failed = 0
    for item in items:
        try:
            entry, was_failed = _consolidate_item(item, batch)
        except Exception as exc:  # the one broad except: one object never fails the batch
            logger.exception(
                "post_annotation.object_failed %s",
                json.dumps({"datasetObjectId": item.object_id}),
                extra={"gt": {"datasetObjectId": item.object_id}},
            )
            entry, was_failed = _failed(item, batch, f"{type(exc).__name__}: {exc}"), True
        failed += was_failed
        results.append(entry)
    trimmed = _fit_response(results, attribute, uri, response_budget)
    if trimmed:
        logger.warning(
            "post_annotation.diagnostics_trimmed %s",
            json.dumps({"payload": uri, "objects": trimmed, "budget": response_budget}),
            extra={"gt": {"payload": uri, "objects": trimmed}},
        )
    fields = {
        "labelingJobArn": event.get("labelingJobArn"),
        "payload": uri,
        "items": len(payload),
        "objects": len(results),
        "failed": failed,
        "diagnosticsTrimmed": trimmed,
        "answersFromS3": len(batch.fetched),
        "seconds": round(time.perf_counter() - started, 3),
    }
    logger.info("post_annotation.done %s", json.dumps(fields), extra={"gt": fields})
    return results
