from __future__ import annotations

import importlib
import json
import logging
import math
import os
import random
import statistics
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gt_toolkit.consolidation.engine import ConsolidationSettings
from gt_toolkit.errors import StorageError, ValidationError
from gt_toolkit.formats.worker_answers import MAX_PIXELS
from gt_toolkit.handlers import deadline, post_annotation
from gt_toolkit.handlers.lambda_response import RESPONSE_BUDGET, TEXT_LIMIT
from gt_toolkit.handlers.post_annotation import (
    PostAnnotationSettings,
    assumed_role_store_factory,
    handle_post_annotation,
)
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import DATA, SAMPLES, FakeLambdaContext, seed_objects

EVENTS = DATA / "events"
DEFAULT = PostAnnotationSettings()
DATE = "2024-03-01T10:11:12.000000"


def fixture_text(name: str, bucket: str) -> str:
    return (EVENTS / name).read_text().replace("{bucket}", bucket)


def make_event(bucket: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(fixture_text("post_event.json", bucket))
    event.update(overrides)
    return event


def put_payload(store: S3Store, event: dict[str, Any], payload: Any) -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    store.put_bytes(event["payload"]["s3Uri"], body)


def run(
    store: S3Store,
    bucket: str,
    payload: Any,
    *,
    settings_: PostAnnotationSettings = DEFAULT,
    **event_kw: Any,
) -> list[dict[str, Any]]:
    event = make_event(bucket, **event_kw)
    put_payload(store, event, payload)
    return handle_post_annotation(event, store=store, settings=settings_, creation_date=DATE)  # type: ignore[return-value]


def response_bytes(event: dict[str, Any], **kw: Any) -> bytes:
    """What the Lambda runtime sends: the entries with a space after every comma and colon."""
    return json.dumps(handle_post_annotation(event, **kw)).encode()


def content_of(entry: dict[str, Any], attr: str = "boxes") -> tuple[dict[str, Any], dict[str, Any]]:
    content = entry["consolidatedAnnotation"]["content"]
    assert set(content) == {attr, f"{attr}-metadata"}
    return content[attr], content[f"{attr}-metadata"]


def worker_boxes(item: dict[str, Any]) -> list[list[dict[str, Any]]]:
    out = []
    for ann in item["annotations"]:
        answer = json.loads(ann["annotationData"]["content"])["boundingBox"]
        out.append(answer["boundingBoxes"] or [])
    return out


def test_one_worker(store: S3Store, bucket: str) -> None:
    payload = json.loads(fixture_text("post_payload_1_worker.json", bucket))
    [entry] = run(store, bucket, payload)
    assert entry["datasetObjectId"] == "0"
    label, meta = content_of(entry)
    box = worker_boxes(payload[0])[0][0]
    assert label == {
        "image_size": [{"width": 640, "height": 480, "depth": 3}],
        "annotations": [{"class_id": 0, **{k: box[k] for k in ("left", "top", "width", "height")}}],
    }
    assert meta == {
        "objects": [{"confidence": 0.0}],  # Ground Truth reports 0.00 for one worker
        "class-map": {"0": "car"},
        "type": "groundtruth/object-detection",
        "human-annotated": "yes",
        "creation-date": DATE,
        "job-name": "labeling-job/my-job",
        "worker-count": 1,
    }
    json.dumps(entry, allow_nan=False)


def test_five_workers_fuse_to_the_mean_box(store: S3Store, bucket: str) -> None:
    payload = json.loads(fixture_text("post_payload_5_workers.json", bucket))
    results = run(store, bucket, payload)
    assert [r["datasetObjectId"] for r in results] == ["0", "1", "2"]

    label, meta = content_of(results[0])
    answers = worker_boxes(payload[0])
    expected = []
    for name in ("car", "bike"):
        boxes = [b for worker in answers for b in worker if b["label"] == name]
        assert len(boxes) == 5
        expected.append(
            {
                "class_id": ["car", "bike"].index(name),
                **{
                    k: round(statistics.fmean(b[k] for b in boxes))
                    for k in ("left", "top", "width", "height")
                },
            }
        )
    assert sorted(label["annotations"], key=lambda a: a["class_id"]) == expected
    assert meta["class-map"] == {"0": "car", "1": "bike"}
    assert meta["worker-count"] == 5
    assert all(0.5 < o["confidence"] <= 1.0 for o in meta["objects"])


def test_workers_with_no_boxes_count_towards_the_majority(store: S3Store, bucket: str) -> None:
    payload = json.loads(fixture_text("post_payload_5_workers.json", bucket))
    results = run(store, bucket, payload)
    # object 1: two workers drew nothing (null and []), three drew the car: 3 of 5 keep it
    label, meta = content_of(results[1])
    assert [a["class_id"] for a in label["annotations"]] == [0]
    assert meta["worker-count"] == 5
    assert "failure-reason" not in meta
    # with a quorum of 4 the same car is dropped, and the drop is explained
    strict = PostAnnotationSettings(consolidation=ConsolidationSettings(min_support=4))
    label, meta = content_of(run(store, bucket, payload, settings_=strict)[1])
    assert label["annotations"] == []
    assert {d["reason"] for d in meta["dropped-boxes"]} == {"below-min-support"}
    # object 2: nobody drew anything: an empty label, not a failure
    label, meta = content_of(results[2])
    assert label["annotations"] == [] and meta["class-map"] == {} and meta["objects"] == []
    assert "failure-reason" not in meta


def test_answer_stored_at_s3uri_is_read(store: S3Store, bucket: str) -> None:
    store.put_bytes(
        f"s3://{bucket}/answers/7/w0.json", (EVENTS / "post_answer_s3uri_w0.json").read_bytes()
    )
    payload = json.loads(fixture_text("post_payload_s3uri.json", bucket))
    [entry] = run(store, bucket, payload)
    label, meta = content_of(entry)
    assert meta["worker-count"] == 2
    # lefts 14 (from S3) and 12 (inline) fuse to 13: both answers were used
    assert label["annotations"] == [
        {"class_id": 0, "left": 13, "top": 40, "width": 100, "height": 80}
    ]


def test_unreadable_s3uri_answer_drops_only_that_worker(store: S3Store, bucket: str) -> None:
    payload = json.loads(fixture_text("post_payload_s3uri.json", bucket))  # w0.json never written
    [entry] = run(store, bucket, payload)
    label, meta = content_of(entry)
    assert meta["worker-count"] == 1
    assert [e["workerId"] for e in meta["worker-errors"]] == ["private.us-east-1.w0"]
    assert "StorageError" in meta["worker-errors"][0]["reason"]
    assert meta["worker-answers"] == [payload[0]["annotations"][0]]
    assert len(label["annotations"]) == 1


def test_malformed_content_keeps_the_raw_answer(store: S3Store, bucket: str) -> None:
    payload = json.loads(fixture_text("post_payload_broken.json", bucket))
    results = run(store, bucket, payload)
    assert [r["datasetObjectId"] for r in results] == ["10", "11", "12"]
    # object 10: one broken worker of three; the other two agree
    label, meta = content_of(results[0])
    assert len(label["annotations"]) == 1 and meta["worker-count"] == 2
    assert meta["worker-answers"] == [payload[0]["annotations"][0]]
    assert "JSONDecodeError" in meta["worker-errors"][0]["reason"]
    # object 11: the only answer is broken: failed, empty, raw answer kept
    label, meta = content_of(results[1])
    assert label["annotations"] == []
    assert "no usable worker answer" in meta["failure-reason"]
    assert meta["worker-answers"] == payload[1]["annotations"]


def test_unknown_label_is_dropped_with_its_reason(store: S3Store, bucket: str) -> None:
    payload = json.loads(fixture_text("post_payload_broken.json", bucket))
    label, meta = content_of(run(store, bucket, payload)[2])
    assert label["annotations"] == [
        {"class_id": 0, "left": 100, "top": 100, "width": 20, "height": 20}
    ]
    [dropped] = meta["dropped-boxes"]
    assert dropped["reason"] == "unknown-label"
    assert dropped["box"]["label"] == "truck"
    assert dropped["workerId"] == "private.us-east-1.w0"


def test_label_categories_null_keeps_every_label_with_sorted_ids(
    store: S3Store, bucket: str
) -> None:
    payload = json.loads(fixture_text("post_payload_broken.json", bucket))
    label, meta = content_of(run(store, bucket, payload, labelCategories=None)[2])
    assert meta["class-map"] == {"0": "car", "1": "truck"}
    assert sorted(a["class_id"] for a in label["annotations"]) == [0, 1]
    assert "dropped-boxes" not in meta


def test_class_ids_follow_label_categories_order(store: S3Store, bucket: str) -> None:
    payload = json.loads(fixture_text("post_payload_1_worker.json", bucket))
    label, meta = content_of(run(store, bucket, payload, labelCategories=["bike", "bus", "car"])[0])
    assert label["annotations"][0]["class_id"] == 2
    assert meta["class-map"] == {"2": "car"}


def random_answer(rng: random.Random, truth: list[tuple[str, float, float]]) -> str:
    boxes = [
        {
            "label": name,
            "left": x + rng.uniform(-2, 2),
            "top": y + rng.uniform(-2, 2),
            "width": 40,
            "height": 30,
        }
        for name, x, y in truth
        if rng.random() > 0.1
    ]
    return json.dumps(
        {
            "boundingBox": {
                "boundingBoxes": boxes,
                "inputImageProperties": {"width": 640, "height": 480},
            }
        }
    )


def test_thousand_objects_five_workers_all_returned(store: S3Store, bucket: str) -> None:
    rng = random.Random(7)
    payload = []
    for i in range(1000):
        truth = [
            (rng.choice(["car", "bike"]), rng.uniform(0, 500), rng.uniform(0, 400))
            for _ in range(rng.randint(0, 4))
        ]
        payload.append(
            {
                "datasetObjectId": str(i),
                "dataObject": {"s3Uri": f"s3://b/img{i}.png"},
                "annotations": [
                    {"workerId": f"w{k}", "annotationData": {"content": random_answer(rng, truth)}}
                    for k in range(5)
                ],
            }
        )
    results = run(store, bucket, payload)
    assert [r["datasetObjectId"] for r in results] == [str(i) for i in range(1000)]
    assert all("failure-reason" not in content_of(r)[1] for r in results)
    assert sum(len(content_of(r)[0]["annotations"]) for r in results) > 1000
    json.dumps(results, allow_nan=False)


def test_duplicate_object_ids_are_merged_into_one_entry(store: S3Store, bucket: str) -> None:
    one = json.loads(fixture_text("post_payload_1_worker.json", bucket))[0]
    other = json.loads(fixture_text("post_payload_1_worker.json", bucket))[0]
    other["annotations"][0]["workerId"] = "private.us-east-1.zz"
    results = run(store, bucket, [one, {**one, "datasetObjectId": "1"}, other])
    assert [r["datasetObjectId"] for r in results] == ["0", "1"]
    _, meta = content_of(results[0])
    assert meta["duplicate-entries"] == 2 and meta["worker-count"] == 2


def test_items_without_an_id_are_logged_whole(
    store: S3Store, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    one = json.loads(fixture_text("post_payload_1_worker.json", bucket))[0]
    with caplog.at_level(logging.INFO, logger="gt_toolkit.handlers.post_annotation"):
        results = run(
            store, bucket, [{"annotations": []}, "junk", {**one, "datasetObjectId": ["x"]}, one]
        )
    assert [r["datasetObjectId"] for r in results] == ["0"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert errors[1].gt["item"] == "junk"  # type: ignore[attr-defined]
    done = [r for r in caplog.records if r.getMessage().startswith("post_annotation.done")]
    assert done[0].gt["objects"] == 1 and done[0].gt["items"] == 4  # type: ignore[attr-defined]


def test_retry_returns_the_same_answer(store: S3Store, bucket: str) -> None:
    payload = json.loads(fixture_text("post_payload_5_workers.json", bucket)) + json.loads(
        fixture_text("post_payload_broken.json", bucket)
    )
    event = make_event(bucket)
    put_payload(store, event, payload)
    first = handle_post_annotation(event, store=store, settings=DEFAULT, creation_date=DATE)
    again = handle_post_annotation(event, store=store, settings=DEFAULT, creation_date=DATE)
    assert first == again


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"labelAttributeName": None}, "labelAttributeName"),
        ({"labelAttributeName": "boxes-metadata"}, "-metadata"),
        ({"payload": {}}, "payload.s3Uri"),
        ({"payload": {"s3uri": "s3://x/y"}}, "payload.s3Uri"),  # the recipe's spelling is wrong
    ],
)
def test_event_without_what_every_answer_needs_is_refused(
    store: S3Store, bucket: str, overrides: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        handle_post_annotation(make_event(bucket, **overrides), store=store, settings=DEFAULT)


@pytest.mark.parametrize(
    "body",
    [None, b"{not json", b'{"datasetObjectId": "0"}'],
    ids=["missing", "not-json", "not-list"],
)
def test_unreadable_payload_fails_the_call_for_a_retry(
    store: S3Store, bucket: str, body: bytes | None
) -> None:
    event = make_event(bucket)
    if body is not None:
        put_payload(store, event, body)
    with pytest.raises(StorageError):
        handle_post_annotation(event, store=store, settings=DEFAULT)


def test_payload_read_as_the_event_role(
    store: S3Store, bucket: str, aws: Callable[[str], Any], moto_endpoint: str
) -> None:
    payload = json.loads(fixture_text("post_payload_1_worker.json", bucket))
    event = make_event(bucket)
    put_payload(store, event, payload)
    iam = aws("iam")
    role = iam.create_role(RoleName=f"GtExec-{bucket}", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    factory = assumed_role_store_factory(aws("sts"), endpoint_url=moto_endpoint)
    assumed: list[str] = []

    def spy(arn: str) -> S3Store:
        assumed.append(arn)
        return factory(arn)

    assume = PostAnnotationSettings(assume_role=True)
    results = handle_post_annotation(
        {**event, "roleArn": role}, store=S3Store(), settings=assume, store_for_role=spy
    )
    assert assumed == [role]
    assert [r["datasetObjectId"] for r in results] == ["0"]
    assert factory(role) is factory(role)  # credentials cached per role
    with pytest.raises(ValidationError, match="roleArn"):
        handle_post_annotation(
            {**event, "roleArn": None}, store=store, settings=assume, store_for_role=spy
        )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, PostAnnotationSettings()),
        (
            {
                "GT_IOU_THRESHOLD": "0.6",
                "GT_MIN_SUPPORT": "2",
                "GT_FUSION": "median",
                "GT_ASSUME_ROLE": "true",
            },
            PostAnnotationSettings(
                consolidation=ConsolidationSettings(
                    iou_threshold=0.6, min_support=2, fusion="median"
                ),
                assume_role=True,
            ),
        ),
        (
            {"GT_ELEMENT_NAME": "boxes", "GT_FETCH_THREADS": "4"},
            PostAnnotationSettings(element_name="boxes", fetch_threads=4),
        ),
        (
            {"GT_QUORUM": "box", "GT_KEEP": "Model"},
            PostAnnotationSettings(consolidation=ConsolidationSettings(quorum="box", keep="model")),
        ),
    ],
)
def test_settings_from_env(env: dict[str, str], expected: PostAnnotationSettings) -> None:
    assert PostAnnotationSettings.from_env(env) == expected


def test_bad_settings_are_all_listed() -> None:
    with pytest.raises(ValidationError) as info:
        PostAnnotationSettings.from_env(
            {"GT_IOU_THRESHOLD": "x", "GT_ASSUME_ROLE": "maybe", "GT_FETCH_THREADS": "0"}
        )
    assert len(info.value.problems) == 3


def test_lambda_adapter_builds_clients_from_the_environment(
    store: S3Store, bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = json.loads(fixture_text("post_payload_1_worker.json", bucket))
    event = make_event(bucket)
    put_payload(store, event, payload)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("GT_MIN_SUPPORT", "1")
    import lambdas.post_annotation as post

    post = importlib.reload(post)
    [entry] = post.lambda_handler(event, None)
    assert entry["datasetObjectId"] == "0"


# -- property: whatever the answers, every object comes back exactly once ----------------

box_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.text(max_size=4),
    st.none(),
)
raw_box = st.one_of(
    st.fixed_dictionaries(
        {
            "label": st.sampled_from(["car", "bike", "truck", ""]),
            "left": box_values,
            "top": box_values,
            "width": box_values,
            "height": box_values,
        }
    ),
    st.integers(),
    st.text(max_size=3),
)
answer_content = st.one_of(
    st.builds(
        lambda boxes, name: json.dumps(
            {name: {"boundingBoxes": boxes, "inputImageProperties": {"width": 640, "height": 480}}}
        ),
        st.one_of(st.none(), st.lists(raw_box, max_size=4), st.integers()),
        st.sampled_from(["boundingBox", "other"]),
    ),
    st.text(max_size=20),  # not JSON
    st.just('{"boundingBox": 3}'),
    st.just("[]"),
)
annotation = st.one_of(
    st.builds(
        lambda wid, c: {"workerId": wid, "annotationData": {"content": c}},
        st.sampled_from(["w0", "w1", "w2"]),
        answer_content,
    ),
    st.builds(
        lambda c: {"annotationData": {"s3Uri": c}},
        st.sampled_from(["s3://nope-bucket/x.json", "not-a-uri"]),
    ),
    st.just({"annotationData": {}}),
    st.just({"workerId": 5}),
    st.none(),
)
item = st.builds(
    lambda oid, anns: {
        "datasetObjectId": oid,
        "dataObject": {"s3Uri": "s3://b/i.png"},
        "annotations": anns,
    },
    st.sampled_from([str(i) for i in range(8)]),
    st.one_of(st.lists(annotation, max_size=4), st.none(), st.just("x")),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.lists(item, max_size=8), labels=st.one_of(st.none(), st.just(["car", "bike"])))
def test_every_object_comes_back_exactly_once(
    store: S3Store, bucket: str, payload: list[dict[str, Any]], labels: list[str] | None
) -> None:
    results = run(store, bucket, payload, labelCategories=labels)
    expected = list(dict.fromkeys(p["datasetObjectId"] for p in payload))
    assert [r["datasetObjectId"] for r in results] == expected
    for r in results:
        label, meta = content_of(r)
        assert meta["type"] == "groundtruth/object-detection"
        assert len(label["annotations"]) == len(meta["objects"])
    json.dumps(results, allow_nan=False)


def test_diagnostics_are_trimmed_to_fit_the_lambda_response_limit(
    store: S3Store, bucket: str
) -> None:
    # every object has two good answers and one broken one carrying 20 KB of raw content:
    # kept whole, the diagnostics would exceed the (here small) response budget
    good = {
        "boundingBox": {
            "boundingBoxes": [{"label": "cat", "left": 5, "top": 5, "width": 30, "height": 30}],
            "inputImageProperties": {"width": 100, "height": 100},
        }
    }
    payload = [
        {
            "datasetObjectId": str(i),
            "dataObject": {"s3Uri": f"s3://{bucket}/img/{i}.jpg"},
            "annotations": [
                {"workerId": f"w{w}", "annotationData": {"content": json.dumps(good)}}
                for w in range(2)
            ]
            + [{"workerId": "w2", "annotationData": {"content": "{" + "x" * 20_000}}],
        }
        for i in range(30)
    ]
    event = make_event(bucket)
    put_payload(store, event, payload)
    whole = handle_post_annotation(event, store=store, settings=DEFAULT, creation_date=DATE)
    fitted = handle_post_annotation(
        event, store=store, settings=DEFAULT, creation_date=DATE, response_budget=200_000
    )
    assert len(orjson.dumps(whole)) > 600_000
    assert len(orjson.dumps(fitted)) <= 200_000
    assert [r["datasetObjectId"] for r in fitted] == [str(i) for i in range(30)]
    trimmed = 0
    for a, b in zip(whole, fitted, strict=True):
        (label_a, meta_a), (label_b, meta_b) = content_of(dict(a)), content_of(dict(b))
        assert label_b == label_a  # the labels are never cut
        if "omitted" in meta_b["worker-answers"]:
            trimmed += 1
            assert meta_b["worker-answers"]["count"] == len(meta_a["worker-answers"]) == 1
            assert meta_b["worker-answers"]["payload"] == event["payload"]["s3Uri"]
            assert meta_b["worker-errors"] == meta_a["worker-errors"]  # the reasons stay
        else:
            assert meta_b == meta_a
    assert 0 < trimmed < 30  # only as many objects as needed


# -- hostile answers: a problem of one worker or one object, never of the batch -------------


def content(boxes: Any, size: Any = None, element: str = "boundingBox") -> str:
    """One worker's ``content`` string, as Ground Truth's payload carries it."""
    answer: dict[str, Any] = {"boundingBoxes": boxes}
    if size is not None:
        answer["inputImageProperties"] = size
    return json.dumps({element: answer})


def car(left: Any = 10, top: Any = 10, width: Any = 40, height: Any = 40) -> dict[str, Any]:
    return {"label": "car", "left": left, "top": top, "width": width, "height": height}


def item_of(object_id: str, *contents: str) -> dict[str, Any]:
    return {
        "datasetObjectId": object_id,
        "dataObject": {"s3Uri": f"s3://b/{object_id}.png"},
        "annotations": [
            {"workerId": f"w{k}", "annotationData": {"content": c}} for k, c in enumerate(contents)
        ],
    }


GOOD = content([car()], {"width": 640, "height": 480})


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (content([car()], {"width": 2**64, "height": 480}), "inputImageProperties.width"),
        (content([car()], {"width": 640, "height": 1e300}), "inputImageProperties.height"),
        (content([car()], {"width": 640, "height": 10**400}), "inputImageProperties.height"),
        (content([car(left=2**64)]), "box 0 left"),
        (content([car(width=-(2**70))], {"width": 0, "height": 0}), "box 0 width"),
        (content([car(top="1e300")]), "box 0 top"),
    ],
    ids=["width-2^64", "height-1e300", "height-10^400", "left-2^64-no-size", "width-2^70", "str"],
)
def test_a_number_beyond_any_image_is_a_broken_answer_of_one_worker(
    store: S3Store, bucket: str, bad: str, reason: str
) -> None:
    payload = [item_of("0", GOOD, GOOD, bad), item_of("1", GOOD, GOOD)]
    event = make_event(bucket)
    put_payload(store, event, payload)
    raw = response_bytes(event, store=store, settings=DEFAULT, creation_date=DATE)
    results = json.loads(raw)
    assert [r["datasetObjectId"] for r in results] == ["0", "1"]
    label, meta = content_of(results[0])
    assert len(label["annotations"]) == 1 and meta["worker-count"] == 2
    [error] = meta["worker-errors"]
    assert error["workerId"] == "w2" and reason in error["reason"]
    assert "MAX_PIXELS" not in error["reason"] and str(MAX_PIXELS) in error["reason"]
    assert meta["worker-answers"] == [payload[0]["annotations"][2]]
    assert content_of(results[1])[1]["worker-count"] == 2


def test_an_answer_nested_300_deep_is_kept_as_a_pointer(store: S3Store, bucket: str) -> None:
    nested = {"workerId": "w9", "annotationData": {"content": {"boundingBox": deep(300)}}}
    one = item_of("0", GOOD, GOOD)
    one["annotations"].append(nested)
    event = make_event(bucket)
    put_payload(store, event, [one, item_of("1", deep(300)[0][0])])
    results = json.loads(response_bytes(event, store=store, settings=DEFAULT, creation_date=DATE))
    assert [r["datasetObjectId"] for r in results] == ["0", "1"]
    label, meta = content_of(results[0])
    assert len(label["annotations"]) == 1
    [kept] = meta["worker-answers"]
    assert kept["payload"] == event["payload"]["s3Uri"] and "Recursion" in kept["omitted"]
    assert "failure-reason" in content_of(results[1])[1]


def test_ids_that_cannot_be_sent_back_are_logged_not_answered(
    store: S3Store, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    event = make_event(bucket)
    payload = [item_of("0", GOOD), {**item_of("x", GOOD), "datasetObjectId": 2**64}]
    payload.append({**item_of("x", GOOD), "datasetObjectId": "y" * 2000})
    put_payload(store, event, payload)
    with caplog.at_level(logging.ERROR, logger="gt_toolkit.handlers.post_annotation"):
        raw = response_bytes(event, store=store, settings=DEFAULT)
    assert [r["datasetObjectId"] for r in json.loads(raw)] == ["0"]
    unanswerable = [r for r in caplog.records if "unanswerable_item" in r.getMessage()]
    assert [r.gt["position"] for r in unanswerable] == [1, 2]  # type: ignore[attr-defined]


def test_a_payload_orjson_refuses_is_read_by_the_standard_library(
    store: S3Store, bucket: str
) -> None:
    event = make_event(bucket)
    body = json.dumps([item_of("0", GOOD), item_of("1", GOOD)])
    body = body.replace('"dataObject"', '"huge": 1' + "0" * 400 + ', "dataObject"', 1)
    put_payload(store, event, body.encode())
    results = handle_post_annotation(event, store=store, settings=DEFAULT)
    assert [r["datasetObjectId"] for r in results] == ["0", "1"]


def test_seven_megabyte_error_texts_are_cut(store: S3Store, bucket: str) -> None:
    # each broken answer quotes a 1 MB string in its error text ("box 0 is not an object")
    payload = [item_of(str(i), GOOD, GOOD, content(["x" * 1_000_000])) for i in range(7)]
    event = make_event(bucket)
    put_payload(store, event, payload)
    raw = response_bytes(event, store=store, settings=DEFAULT, creation_date=DATE)
    assert len(raw) <= RESPONSE_BUDGET
    results = json.loads(raw)
    assert [r["datasetObjectId"] for r in results] == [str(i) for i in range(7)]
    for r in results:
        label, meta = content_of(r)
        assert len(label["annotations"]) == 1
        [error] = meta["worker-errors"]
        assert "box 0 is not an object" in error["reason"]
        assert len(error["reason"]) < TEXT_LIMIT + 50
    kept = [content_of(r)[1]["worker-answers"] for r in results]
    assert any(isinstance(k, list) for k in kept)  # as many as fit keep the raw answer
    assert any(isinstance(k, dict) and k["count"] == 1 for k in kept)


def test_an_answer_without_bounding_boxes_is_a_worker_error(store: S3Store, bucket: str) -> None:
    ner = json.dumps({"crowd-entity-annotation": {"entities": [{"label": "car"}]}})
    nested = json.dumps({"boundingBox": {"shapes": {"boundingBoxes": [car()]}}})
    payload = [item_of("0", ner), item_of("1", GOOD, nested)]
    results = run(store, bucket, payload)
    _, meta = content_of(results[0])
    assert "no boundingBoxes" in meta["failure-reason"]
    assert meta["worker-answers"] == payload[0]["annotations"]
    _, meta = content_of(results[1])
    assert meta["worker-count"] == 1
    assert "no boundingBoxes" in meta["worker-errors"][0]["reason"]
    assert meta["worker-answers"] == [payload[1]["annotations"][1]]


# -- labels that do not match the label list ------------------------------------------------


def test_a_batch_whose_labels_mostly_miss_the_label_list_fails_every_object(
    store: S3Store, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    cased = content(
        [
            {**car(), "label": "Car"},
            {**car(left=200), "label": "Car"},
            {**car(left=400), "label": "bike"},
        ]
    )
    payload = [item_of("0", cased, cased), item_of("1", cased), item_of("2", content(None))]
    with caplog.at_level(logging.ERROR, logger="gt_toolkit.handlers.post_annotation"):
        results = run(store, bucket, payload)
    assert [r["datasetObjectId"] for r in results] == ["0", "1", "2"]
    for r in results:
        label, meta = content_of(r)
        assert "label list mismatch: 6 of 9 boxes" in meta["failure-reason"]
        assert "'Car' (6)" in meta["failure-reason"] and "'car', 'bike'" in meta["failure-reason"]
    label, meta = content_of(results[0])
    assert [a["class_id"] for a in label["annotations"]] == [1]  # the bike matched: kept
    [logged] = [r for r in caplog.records if "label_mismatch" in r.getMessage()]
    assert "'Car' looks like 'car'" in logged.getMessage()


def test_a_few_unknown_labels_are_dropped_box_by_box(store: S3Store, bucket: str) -> None:
    mixed = content([car(), car(left=200), {**car(left=400), "label": "truck"}])
    results = run(store, bucket, [item_of("0", mixed, mixed)])
    label, meta = content_of(results[0])
    assert "failure-reason" not in meta and len(label["annotations"]) == 2
    assert {d["reason"] for d in meta["dropped-boxes"]} == {"unknown-label"}


# -- fuzz: whatever the payload holds, every object is answered once, within 6 MB ------------

# make test runs 4 x 500 payloads (chunks, so xdist spreads them); GT_FUZZ_PAYLOADS=5000 makes
# each chunk longer for a local run.
FUZZ_PAYLOADS = int(os.environ.get("GT_FUZZ_PAYLOADS", "500"))
FUZZ_CHUNKS = 4
FUZZ_SEED = 16


class Fuzz:
    """A seeded generator of hostile post-annotation payloads: mostly sound, often not."""

    def __init__(self, rng: random.Random, answers: list[str]) -> None:
        self.rng = rng
        self.answers = answers  # s3Uri answers stored before the run (and one never stored)
        self.hostile = False  # set per answer: most answers are sound, one in five is not
        self.truth: list[dict[str, Any]] = []  # the boxes of the object the sound workers see

    def pick(self, *choices: tuple[float, Callable[[], Any]]) -> Any:
        """Call one of ``(weight, make)`` choices."""
        weights, makers = zip(*choices, strict=True)
        return self.rng.choices(makers, weights)[0]()

    def number(self) -> Any:
        r = self.rng
        if not self.hostile:
            return r.choice([r.uniform(-20, 660), r.randint(0, 640)])
        return self.pick(
            (8, lambda: r.uniform(-20, 660)),
            (8, lambda: r.randint(0, 640)),
            (1, lambda: r.choice([2**64, -(2**70), 10**400, 1e300, -1e300, 2**31, 2**63])),
            (1, lambda: r.choice([math.nan, math.inf, -math.inf])),
            (1, lambda: r.choice(["12", "1e400", "x", "", "1e300"])),
            (1, lambda: r.choice([None, True, [], {}])),
        )

    def text(self) -> str:
        r = self.rng
        if not self.hostile:
            return r.choice(["car", "bike", "car", "bike", "Car", "truck"])
        return self.pick(  # type: ignore[no-any-return]
            (500, lambda: r.choice(["car", "bike", "Car", "bike ", "truck"])),
            (20, lambda: r.choice(["", "\ud800", "ü" * 3, "\x00", "x" * 2_000])),
            (3, lambda: "x" * 100_000),
            (1, lambda: "x" * 1_100_000),  # seven of these in one batch pass 6 MB
        )

    def box(self) -> Any:
        r = self.rng
        box = {k: self.number() for k in ("left", "top", "width", "height")}
        box["label"] = self.text()
        if not self.hostile:
            return box
        if r.random() < 0.05:
            del box[r.choice(list(box))]
        return self.pick(
            (30, lambda: box),
            (1, lambda: r.choice([None, 5, "car"])),
            (1, lambda: {**box, "label": r.choice([None, 5, ["car"]])}),
            (1, lambda: deep(300)),
        )

    def answer_text(self) -> str:
        r = self.rng
        self.hostile = r.random() < 0.2
        boxes = [self.box() for _ in range(r.choice([0, 1, 2, 3, 5, 40]))]
        if not self.hostile:
            boxes = [{**b, "left": b["left"] + r.uniform(-2, 2)} for b in self.truth]
        size = self.pick(
            (8, lambda: {"width": 640, "height": 480}),
            (1, lambda: {"width": self.number(), "height": self.number(), "depth": self.number()}),
            (1, lambda: r.choice([None, "640x480", []])),
        )
        element: Any = {"boundingBoxes": boxes, "inputImageProperties": size}
        element = self.pick(
            (20, lambda: element),
            (1, lambda: {**element, "boundingBoxes": r.choice([None, 3, "x", {}])}),
            (1, lambda: {"inputImageProperties": size}),  # another task's answer
        )
        answer: Any = {r.choice(["boundingBox", "annotatedResult"]): element}
        return self.pick(  # type: ignore[no-any-return]
            (30, lambda: json.dumps(answer)),
            (1, lambda: json.dumps({**answer, "other": {"boundingBoxes": []}})),
            (1, lambda: json.dumps({"answerContent": answer})),
            (1, lambda: json.dumps(answer)[: r.randint(0, 40)]),
            (1, lambda: "[" * (levels := r.choice([300, 3_000])) + "]" * levels),
            (1, lambda: r.choice(["[]", "3", "null", '"x"', "{}"])),
        )

    def annotation(self) -> Any:
        r = self.rng
        data = self.pick(
            (20, lambda: {"content": self.answer_text()}),
            (1, lambda: {"content": r.choice([deep(300), {"boundingBox": 5}, None])}),
            (2, lambda: {"s3Uri": r.choice(self.answers)}),
            (1, lambda: r.choice([{}, None, "x", {"s3Uri": 5}])),
        )
        worker = r.choice(["w0", "w1", "w2", "w3", "w4"])
        return self.pick(
            (30, lambda: {"workerId": worker, "annotationData": data}),
            (1, lambda: {"workerId": r.choice([None, 7, "w" * 3_000]), "annotationData": data}),
            (1, lambda: r.choice([None, "x", 5, deep(300)])),
        )

    def item(self) -> Any:
        r = self.rng
        self.hostile = False
        self.truth = [self.box() for _ in range(r.choice([0, 1, 3, 10, 60]))]
        object_id = self.pick(
            (16, lambda: str(r.randint(0, 30))),
            (2, lambda: r.randint(0, 3)),
            (1, lambda: r.choice([None, True, 1.5, [], 2**64, "y" * 2_000, -(2**63)])),
        )
        annotations = self.pick(
            (20, lambda: [self.annotation() for _ in range(r.choice([1, 2, 3, 5]))]),
            (1, lambda: r.choice([[], None, "x", {}])),
        )
        item = {"datasetObjectId": object_id, "dataObject": {"s3Uri": "s3://b/i.png"}}
        item["annotations"] = annotations
        return self.pick(
            (40, lambda: item),
            (1, lambda: {k: v for k, v in item.items() if k != r.choice(list(item))}),
            (1, lambda: r.choice(["junk", 5, None, []])),
        )

    def event(self, bucket: str) -> dict[str, Any]:
        labels = self.pick(
            (5, lambda: ["car", "bike"]),
            (3, lambda: None),
            (1, lambda: self.rng.choice([["Car"], [], 5, ["car", 5]])),
        )
        return make_event(bucket, labelCategories=labels)


def answerable(raw: Any) -> str | int | None:
    """The documented rule for ids the Lambda can send back (module docstring)."""
    object_id = raw.get("datasetObjectId") if isinstance(raw, dict) else None
    if isinstance(object_id, str) and len(object_id) <= 1_024:
        return object_id
    if type(object_id) is int and -(2**63) <= object_id < 2**64:
        return object_id
    return None


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(FUZZ_CHUNKS))
def test_fuzz_every_object_answered_once_within_the_limit(
    store: S3Store, bucket: str, chunk: int
) -> None:
    answers = [f"s3://{bucket}/answers/{name}.json" for name in ("good", "broken", "big", "none")]
    store.put_bytes(answers[0], GOOD.encode())
    store.put_bytes(answers[1], b"{not json")
    store.put_bytes(answers[2], content([car(left=2**64)]).encode())
    seed = FUZZ_SEED + chunk
    fuzz = Fuzz(random.Random(seed), answers)
    for n in range(FUZZ_PAYLOADS):
        payload = [fuzz.item() for _ in range(fuzz.rng.choice([0, 1, 3, 8, 20]))]
        event = fuzz.event(bucket)
        budget = fuzz.rng.choice([1_200 * len(payload) + 1_000, 200_000, RESPONSE_BUDGET])
        key = event["payload"]["s3Uri"].split("/", 3)[3]
        seed_objects(bucket, [key], json.dumps(payload).encode())  # reads still go over HTTP
        try:
            raw = response_bytes(event, store=store, settings=DEFAULT, response_budget=budget)
        except Exception as exc:
            raise AssertionError(f"payload {n} (seed {seed}) raised {exc!r:.300}") from exc
        assert len(raw) <= budget, f"payload {n}: {len(raw)} bytes"
        results = json.loads(raw)
        expected = list(dict.fromkeys(i for i in map(answerable, payload) if i is not None))
        assert [r["datasetObjectId"] for r in results] == expected, f"payload {n}"
        for r in results:
            label, meta = content_of(r)
            assert len(label["annotations"]) == len(meta["objects"]), f"payload {n}"


# -- the 6 MB limit: compact labels, and what happens when they cannot fit -------------------


def crowded_batch(bucket: str, store: S3Store, boxes: list[int]) -> dict[str, Any]:
    """One worker per image drawing ``boxes[i]`` boxes, apart on a grid, on image ``i``."""

    def drawn(n: int) -> str:
        grid = [car(left=50 * (k % 30) + 3, top=50 * (k // 30) + 7) for k in range(n)]
        return content(grid, {"width": 1920, "height": 1080})

    event = make_event(bucket, labelCategories=["car"])
    put_payload(store, event, [item_of(str(i), drawn(n)) for i, n in enumerate(boxes)])
    return event


def test_labels_are_encoded_compactly(store: S3Store, bucket: str) -> None:
    event = crowded_batch(bucket, store, [100] * 50)
    raw = response_bytes(event, store=store, settings=DEFAULT, creation_date=DATE)
    results = json.loads(raw)
    assert all(len(content_of(r)[0]["annotations"]) == 100 for r in results)
    boxes = [a for r in results for a in content_of(r)[0]["annotations"]]
    assert all(type(v) is int for a in boxes for v in a.values())  # whole pixels, no floats
    fitted = response_bytes(
        event, store=store, settings=DEFAULT, creation_date=DATE, response_budget=len(raw)
    )
    assert fitted == raw  # a budget of exactly what the runtime sends fits every label


def test_labels_that_cannot_fit_fail_the_biggest_objects_with_one_log_line(
    store: S3Store, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    sizes = [100, 10, 100, 40, 100, 0, 70]
    event = crowded_batch(bucket, store, sizes)
    whole = response_bytes(event, store=store, settings=DEFAULT, creation_date=DATE)
    budget = len(whole) * 3 // 4
    with caplog.at_level(logging.ERROR, logger="gt_toolkit.handlers.post_annotation"):
        raw = response_bytes(
            event, store=store, settings=DEFAULT, creation_date=DATE, response_budget=budget
        )
    assert len(raw) <= budget
    results = json.loads(raw)
    assert [r["datasetObjectId"] for r in results] == [str(i) for i in range(len(sizes))]
    failed = []
    for r, n in zip(results, sizes, strict=True):
        label, meta = content_of(r)
        if "failure-reason" in meta:
            failed.append(n)
            assert meta["failure-reason"].startswith("response-too-large: ")
            assert "MaxConcurrentTaskCount" in meta["failure-reason"]
            assert meta["worker-answers"]["payload"] == event["payload"]["s3Uri"]
            assert label["annotations"] == []
        else:
            assert len(label["annotations"]) == n
    assert sorted(failed) == [100, 100]  # the biggest, and only as many as needed
    [line] = [r.getMessage() for r in caplog.records if "response_too_large" in r.getMessage()]
    assert "a batch of 7 objects" in line and "MaxConcurrentTaskCount" in line


@pytest.mark.parametrize(
    ("annotations", "reason", "kept"),
    [
        (None, "no worker answers", []),
        ([], "no worker answers", []),
        ("x", "no usable worker answer (worker-0: ConsolidationError: annotation is not", ["x"]),
    ],
)
def test_an_object_without_answers_is_failed_with_what_it_had(
    store: S3Store, bucket: str, annotations: Any, reason: str, kept: list[Any]
) -> None:
    item = {"datasetObjectId": "0", "dataObject": {"s3Uri": "s3://b/0.png"}}
    if annotations is not None:
        item["annotations"] = annotations
    [entry] = run(store, bucket, [item])
    label, meta = content_of(entry)
    assert label["annotations"] == [] and meta["failure-reason"].startswith(reason)
    assert meta["worker-answers"] == kept


def test_worker_table_decides_with_gt_keep_model(store: S3Store, bucket: str) -> None:
    from gt_toolkit.consolidation.worker_model import WorkerModel, WorkerSkill
    from gt_toolkit.errors import ConsolidationError
    from gt_toolkit.handlers.post_annotation import load_post_annotation_settings

    box = {"label": "car", "left": 12, "top": 40, "width": 100, "height": 80}

    def answer(worker: str, boxes: list[dict[str, Any]]) -> dict[str, Any]:
        content = {"boundingBox": {"boundingBoxes": boxes}}
        return {"workerId": worker, "annotationData": {"content": json.dumps(content)}}

    payload = [
        {
            "datasetObjectId": "0",
            "dataObject": {"s3Uri": f"s3://{bucket}/img1.png"},
            "annotations": [answer("reliable", [box]), answer("careless", [])],
        }
    ]
    reliable = WorkerSkill(miss_rate=0.1, false_boxes=0.01, box_noise=0.1)
    careless = WorkerSkill(miss_rate=0.6, false_boxes=2.0, box_noise=0.3)
    model = WorkerModel({"reliable": reliable, "careless": careless}, careless, 1.0, 50.0)
    uri = f"s3://{bucket}/models/workers.json"
    store.put_bytes(uri, json.dumps(model.to_json()).encode())

    assert load_post_annotation_settings({}, store=store) == DEFAULT
    env = {"GT_WORKER_MODEL_S3_URI": f" {uri} ", "GT_KEEP": "model"}
    loaded = load_post_annotation_settings(env, store=store)
    assert loaded.worker_model == model and loaded.consolidation.keep == "model"

    [head_count] = run(store, bucket, payload)  # one of two workers: below the majority
    assert content_of(head_count)[0]["annotations"] == []
    [with_model] = run(store, bucket, payload, settings_=loaded)
    label, meta = content_of(with_model)
    assert [a["left"] for a in label["annotations"]] == [12]
    assert 0.5 < meta["objects"][0]["confidence"] < 1.0
    # the table without GT_KEEP=model only fuses: the head count still decides
    fusing = load_post_annotation_settings({"GT_WORKER_MODEL_S3_URI": uri}, store=store)
    assert fusing.worker_model == model and fusing.consolidation.keep == "quorum"
    [fused] = run(store, bucket, payload, settings_=fusing)
    assert content_of(fused)[0]["annotations"] == []
    with pytest.raises(ValidationError, match="GT_KEEP=model needs a worker table"):
        load_post_annotation_settings({"GT_KEEP": "model"}, store=store)

    store.put_bytes(uri, b"not json")
    with pytest.raises(ConsolidationError, match="bad worker model"):
        load_post_annotation_settings({"GT_WORKER_MODEL_S3_URI": uri}, store=store)
    with pytest.raises(StorageError):
        load_post_annotation_settings(
            {"GT_WORKER_MODEL_S3_URI": f"s3://{bucket}/models/missing.json"}, store=store
        )


def test_a_table_knows_workers_by_their_whole_id_however_long(store: S3Store, bucket: str) -> None:
    # the table (an offline fit reads whole workerIds) was looked up with the id cut to 127
    # characters for the response: "p" * 130 + "reliable" and "p" * 130 + "careless" both
    # read "ppp... (11 more characters)", a worker the table does not hold, so both took
    # the crowd's skills and the object was decided as if neither were known
    from gt_toolkit.consolidation.worker_model import WorkerModel, WorkerSkill
    from gt_toolkit.handlers.post_annotation import load_post_annotation_settings

    box = {"label": "car", "left": 12, "top": 40, "width": 100, "height": 80}

    def payload(reliable: str, careless: str) -> list[dict[str, Any]]:
        def answer(worker: str, boxes: list[dict[str, Any]]) -> dict[str, Any]:
            content = {"boundingBox": {"boundingBoxes": boxes}}
            return {"workerId": worker, "annotationData": {"content": json.dumps(content)}}

        return [
            {
                "datasetObjectId": "0",
                "dataObject": {"s3Uri": f"s3://{bucket}/img1.png"},
                "annotations": [answer(reliable, [box]), answer(careless, [])],
            }
        ]

    decided = []
    for prefix in ("", "p" * 130):
        reliable, careless = prefix + "reliable", prefix + "careless"
        skills = {
            reliable: WorkerSkill(miss_rate=0.1, false_boxes=0.01, box_noise=0.1),
            careless: WorkerSkill(miss_rate=0.6, false_boxes=2.0, box_noise=0.3),
        }
        crowd = WorkerSkill(miss_rate=0.9, false_boxes=3.0, box_noise=0.5)
        uri = f"s3://{bucket}/models/{len(prefix)}.json"
        store.put_bytes(uri, json.dumps(WorkerModel(skills, crowd, 1.0, 50.0).to_json()).encode())
        env = {"GT_WORKER_MODEL_S3_URI": uri, "GT_KEEP": "model"}
        loaded = load_post_annotation_settings(env, store=store)
        [entry] = run(store, bucket, payload(reliable, careless), settings_=loaded)
        label, meta = content_of(entry)
        decided.append(([a["left"] for a in label["annotations"]], meta["objects"]))
    assert decided[0][0] == [12]  # the reliable worker's box, kept by the table
    assert decided[1] == decided[0]


def test_answers_of_workers_the_table_does_not_know_are_logged(
    store: S3Store, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # a table from another job knows none of this job's workers: every answer took the
    # crowd's skills, and nothing said so (the CLI prints "N annotators unknown")
    from gt_toolkit.consolidation.worker_model import WorkerModel, WorkerSkill
    from gt_toolkit.handlers.post_annotation import load_post_annotation_settings

    skill = WorkerSkill(miss_rate=0.1, false_boxes=0.01, box_noise=0.1)
    model = WorkerModel({"other-job-worker": skill}, skill, 1.0, 50.0)
    uri = f"s3://{bucket}/models/other-job.json"
    store.put_bytes(uri, json.dumps(model.to_json()).encode())
    loaded = load_post_annotation_settings({"GT_WORKER_MODEL_S3_URI": uri}, store=store)
    payload = [_object("0", ["car"], ["car"], ["car"]), _object("1", ["car"], ["car"])]
    logger = "gt_toolkit.handlers.post_annotation"
    with caplog.at_level(logging.INFO, logger=logger):
        run(store, bucket, payload, settings_=loaded)
    [warning] = [r for r in caplog.records if "workers_unknown_to_table" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert warning.gt == {  # type: ignore[attr-defined]
        "payload": make_event(bucket)["payload"]["s3Uri"],
        "unknownAnswers": 5,
        "answers": 5,
        "tableWorkers": 1,
    }
    caplog.clear()
    known = WorkerModel({f"private.w{n}": skill for n in range(3)}, skill, 1.0, 50.0)
    store.put_bytes(uri, json.dumps(known.to_json()).encode())
    loaded = load_post_annotation_settings({"GT_WORKER_MODEL_S3_URI": uri}, store=store)
    with caplog.at_level(logging.INFO, logger=logger):
        run(store, bucket, payload, settings_=loaded)
        run(store, bucket, payload)  # no table: nothing to know
    assert not [r for r in caplog.records if "workers_unknown_to_table" in r.getMessage()]


def test_the_table_an_offline_fit_writes_drives_the_lambda(
    store: S3Store, bucket: str, tmp_path: Path
) -> None:
    # gt-convert consolidate --worker-model fit writes the table GT_WORKER_MODEL_S3_URI
    # names: the Lambda reads it and, on the job's own answers, decides as the offline run
    from gt_toolkit.cli import main
    from gt_toolkit.consolidation.worker_model import read_worker_model
    from gt_toolkit.handlers.post_annotation import load_post_annotation_settings

    job = SAMPLES / "job-output" / "samples-balls"
    out = tmp_path / "offline.manifest"
    args = ["consolidate", str(job), "-o", str(out), "--labels", "ball", "--worker-model", "fit"]
    assert main(args) == 0
    table = tmp_path / "offline.manifest.worker-model.json"
    uri = f"s3://{bucket}/models/workers.json"
    store.put_bytes(uri, table.read_bytes())
    loaded = load_post_annotation_settings({"GT_WORKER_MODEL_S3_URI": uri}, store=store)
    assert loaded.worker_model == read_worker_model(table)
    assert loaded.worker_model is not None and len(loaded.worker_model.workers) == 5

    offline = [json.loads(x) for x in out.read_text().splitlines()]
    responses = job / "annotations" / "worker-response" / "iteration-1"
    payload = []
    for n in range(8):
        [answers] = [json.loads(f.read_text()) for f in (responses / str(n)).iterdir()]
        annotations = [
            {
                "workerId": a["workerId"],
                "annotationData": {"content": json.dumps(a["answerContent"])},
            }
            for a in answers["answers"]
        ]
        ref = offline[n]["source-ref"]
        payload.append(
            {"datasetObjectId": str(n), "dataObject": {"s3Uri": ref}, "annotations": annotations}
        )
    entries = run(store, bucket, payload, settings_=loaded, labelCategories=["ball"])
    head_count = run(store, bucket, payload, labelCategories=["ball"])
    assert [content_of(e)[0]["annotations"] for e in entries] == [
        line["consolidated"]["annotations"] for line in offline[:8]
    ]
    assert [content_of(e)[1]["objects"] for e in entries] == [
        line["consolidated-metadata"]["objects"] for line in offline[:8]
    ]
    assert [content_of(e)[1]["objects"] for e in entries] != [
        content_of(e)[1]["objects"] for e in head_count
    ]


IMAGE_SIZE = {"width": 640, "height": 480}


def _object(object_id: str, *workers: list[str]) -> dict[str, Any]:
    """A data object; each worker drew one box per label given, side by side."""
    annotations = []
    for w, labels in enumerate(workers):
        boxes = [
            {"label": name, "left": 10 + 40 * i, "top": 10, "width": 30, "height": 30}
            for i, name in enumerate(labels)
        ]
        answer = {"boundingBox": {"boundingBoxes": boxes, "inputImageProperties": IMAGE_SIZE}}
        annotations.append(
            {"workerId": f"private.w{w}", "annotationData": {"content": json.dumps(answer)}}
        )
    return {
        "datasetObjectId": object_id,
        "dataObject": {"source-ref": f"s3://b/{object_id}.png"},
        "annotations": annotations,
    }


def test_without_label_categories_gt_labels_keeps_class_ids_stable_across_objects(
    store: S3Store, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # console jobs send labelCategories null; the built-in detector reads class_id alone
    payload = [_object("0", ["truck"]), _object("1", ["car", "truck"])]

    def truck_ids(settings_: PostAnnotationSettings) -> list[int]:
        ids = []
        for entry in run(store, bucket, payload, settings_=settings_, labelCategories=None):
            _, meta = content_of(entry)
            ids.append(int({v: k for k, v in meta["class-map"].items()}["truck"]))
        return ids

    configured = PostAnnotationSettings.from_env({"GT_LABELS": "car, truck"})
    assert truck_ids(configured) == [1, 1]
    assert "no_label_list" not in caplog.text
    assert truck_ids(DEFAULT) == [0, 1]  # each object's own sorted labels
    assert "set GT_LABELS" in caplog.text


def test_one_worker_flooding_an_answer_with_a_made_up_label_fails_no_object(
    store: S3Store, bucket: str
) -> None:
    # the label-list check weighs answers too: one answer of 15 "zzz" boxes outweighs the
    # other workers' boxes, not their answers, and a configuration error it is not
    payload = [_object(str(i), ["car"], ["car"], ["car"]) for i in range(4)]
    payload[0] = _object("0", ["car"], ["car"], ["car"], ["zzz"] * 15)
    entries = run(store, bucket, payload, labelCategories=["car"])
    assert all("failure-reason" not in content_of(e)[1] for e in entries)
    misspelled = [_object(str(i), ["Car"], ["Car"], ["car"]) for i in range(4)]
    entries = run(store, bucket, misspelled, labelCategories=["car"])
    assert all("label list mismatch" in content_of(e)[1]["failure-reason"] for e in entries)


def _stored_answer(store: S3Store, bucket: str, key: str, body: Any) -> str:
    uri = f"s3://{bucket}/{key}"
    store.put_bytes(uri, json.dumps(body).encode())
    return uri


def test_an_answer_in_s3_is_read_when_content_is_null(store: S3Store, bucket: str) -> None:
    # the documented annotationData lists both keys; the unused one may come as null
    answer = json.loads((EVENTS / "post_answer_s3uri_w0.json").read_text())
    uri = _stored_answer(store, bucket, "answers/7/w0.json", answer)
    payload = json.loads(fixture_text("post_payload_s3uri.json", bucket))
    payload[0]["annotations"][0]["annotationData"] = {"content": None, "s3Uri": uri}
    [entry] = run(store, bucket, payload)
    label, meta = content_of(entry)
    assert meta["worker-count"] == 2 and "worker-errors" not in meta
    assert label["annotations"][0]["left"] == 13  # 14 (from S3) and 12 (inline) fused


def test_an_answer_in_s3_may_be_a_worker_response_file(store: S3Store, bucket: str) -> None:
    # the shape Ground Truth keeps under worker-response/iteration-N/<id>/: the answer of the
    # annotation's worker is taken; its answerContent may be an object or a JSON string
    answer = json.loads((EVENTS / "post_answer_s3uri_w0.json").read_text())
    other = {
        "boundingBox": {
            "boundingBoxes": None,
            "inputImageProperties": answer["boundingBox"]["inputImageProperties"],
        }
    }
    response = {
        "answers": [
            {"workerId": "private.us-east-1.w9", "answerContent": other},
            {
                "workerId": "private.us-east-1.w0",
                "answerContent": json.dumps(answer),
                "timeSpentInSeconds": 40.3,
                "workerMetadata": {"identityData": {"sub": "secret-sub"}},
            },
        ]
    }
    key = "my-job/annotations/worker-response/iteration-1/7/2024-03-01_10:11:12.json"
    uri = _stored_answer(store, bucket, key, response)
    alone = _stored_answer(store, bucket, "alone.json", {"answers": response["answers"][1:]})
    payload = json.loads(fixture_text("post_payload_s3uri.json", bucket))
    payload[0]["annotations"][0]["annotationData"] = {"s3Uri": uri}
    second = {**payload[0], "datasetObjectId": "8"}
    second["annotations"] = [
        {"workerId": "private.us-east-1.w5", "annotationData": {"s3Uri": alone}}
    ]
    third = {**payload[0], "datasetObjectId": "9"}
    third["annotations"] = [{"workerId": "private.us-east-1.w5", "annotationData": {"s3Uri": uri}}]
    first, only, unclear = run(store, bucket, [*payload, second, third])
    label, meta = content_of(first)
    assert meta["worker-count"] == 2 and "worker-errors" not in meta
    assert label["annotations"][0]["left"] == 13  # w0's answer (14) fused with w1's (12)
    assert content_of(only)[0]["annotations"][0]["left"] == 14  # the file's only answer
    _, meta = content_of(unclear)  # two answers, neither by w5: which one is unknowable
    assert "2 answers, 0 by this worker" in meta["failure-reason"]
    assert "secret-sub" not in json.dumps([first, only, unclear])


def test_an_empty_label_category_list_is_no_list(store: S3Store, bucket: str) -> None:
    # read as a list it would drop every box as unknown and fail every object of the job
    payload = [_object("0", ["car", "truck"])]
    configured = PostAnnotationSettings.from_env({"GT_LABELS": "car, truck"})
    [entry] = run(store, bucket, payload, settings_=configured, labelCategories=[])
    label, meta = content_of(entry)
    assert "failure-reason" not in meta and "dropped-boxes" not in meta
    assert meta["class-map"] == {"0": "car", "1": "truck"}
    assert len(label["annotations"]) == 2


class _CountingStore(S3Store):
    """Moto's S3, counting the answers read from it that are still held in memory."""

    def __init__(self, store: S3Store) -> None:
        super().__init__(store.client)
        self.held = self.most_held = self.reads = 0
        self.lock = threading.Lock()

    def _release(self) -> None:
        with self.lock:
            self.held -= 1

    def get_bytes(self, uri: str) -> bytes:
        body = _Body(super().get_bytes(uri))
        if "/answers/" in uri:
            with self.lock:
                self.reads += 1
                self.held += 1
                self.most_held = max(self.most_held, self.held)
            weakref.finalize(body, self._release)
        return body  # type: ignore[return-value]  # a bytes-like the handler reads as bytes


class _Body(bytearray):
    """Bytes that can be watched (``bytes`` cannot be weakly referenced)."""


def answers_in_s3(store: S3Store, bucket: str, objects: int) -> list[dict[str, Any]]:
    """A payload of ``objects`` objects, each with one answer kept in S3 under ``answers/``."""
    answer = (EVENTS / "post_answer_s3uri_w0.json").read_bytes()
    payload = []
    for i in range(objects):
        uri = f"s3://{bucket}/answers/{i}.json"
        store.put_bytes(uri, answer)
        annotation = {"workerId": "w0", "annotationData": {"s3Uri": uri}}
        payload.append({"datasetObjectId": str(i), "annotations": [annotation]})
    return payload


def test_answers_in_s3_are_held_a_window_at_a_time(
    store: S3Store, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a batch of large answers kept in S3 must not all sit in the Lambda's memory at once
    monkeypatch.setattr(post_annotation, "_READ_AHEAD", 4)
    payload = answers_in_s3(store, bucket, 40)
    counting = _CountingStore(store)
    entries = run(counting, bucket, payload)
    assert [e["datasetObjectId"] for e in entries] == [str(i) for i in range(40)]
    assert all(content_of(e)[1]["worker-count"] == 1 for e in entries)
    assert counting.most_held <= 2 * 4


# -- the deadline: every object answered before Lambda's timeout ends the call ---------------

PLENTY_MS = 300_000  # the deployed timeout


def deadline_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("post_annotation.deadline")]


@pytest.mark.parametrize("in_time", [0, 1, 4, 6])
def test_objects_left_at_the_deadline_are_answered_as_failed(
    store: S3Store, bucket: str, caplog: pytest.LogCaptureFixture, in_time: int
) -> None:
    event = make_event(bucket, labelCategories=["car"])
    payload = [item_of(str(i), GOOD, GOOD) for i in range(6)]
    put_payload(store, event, payload)
    whole = handle_post_annotation(event, store=store, settings=DEFAULT, creation_date=DATE)
    context = FakeLambdaContext(*[PLENTY_MS] * in_time, 0)
    caplog.clear()  # only the call with a context
    with caplog.at_level(logging.INFO, logger="gt_toolkit.handlers.post_annotation"):
        entries = handle_post_annotation(
            event, store=store, settings=DEFAULT, creation_date=DATE, context=context
        )
    assert [e["datasetObjectId"] for e in entries] == [str(i) for i in range(6)]
    assert entries[:in_time] == whole[:in_time]
    uri = event["payload"]["s3Uri"]
    for entry in entries[in_time:]:
        label, meta = content_of(entry)
        assert label["annotations"] == []
        assert meta["failure-reason"].startswith("deadline: 0 ms of the Lambda's time were left")
        assert f"answer the {6 - in_time} not consolidated" in meta["failure-reason"]
        assert meta["failure-reason"].endswith(f"the answers are in {uri}")
        assert meta["worker-answers"]["count"] == 2 and meta["worker-answers"]["payload"] == uri
    assert context.asked == min(in_time + 1, 6)  # once before each object, never after
    [done] = [r for r in caplog.records if r.getMessage().startswith("post_annotation.done")]
    assert done.gt["failedDeadline"] == 6 - in_time  # type: ignore[attr-defined]
    if in_time == 6:
        assert deadline_lines(caplog) == []
        return
    [line] = deadline_lines(caplog)
    assert line.levelno == logging.WARNING
    counts = {k: line.gt[k] for k in ("objects", "consolidated", "failedDeadline")}  # type: ignore[attr-defined]
    assert counts == {"objects": 6, "consolidated": in_time, "failedDeadline": 6 - in_time}


def test_without_a_context_or_with_time_to_spare_nothing_changes(
    store: S3Store, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    event = make_event(bucket)
    put_payload(store, event, json.loads(fixture_text("post_payload_5_workers.json", bucket)))
    kw: dict[str, Any] = {"store": store, "settings": DEFAULT, "creation_date": DATE}
    with caplog.at_level(logging.WARNING, logger="gt_toolkit.handlers.post_annotation"):
        alone = handle_post_annotation(event, **kw)
        spare = handle_post_annotation(event, **kw, context=FakeLambdaContext(PLENTY_MS))
    assert spare == alone
    assert not any("failure-reason" in content_of(e)[1] for e in alone)
    assert deadline_lines(caplog) == []


def test_a_call_that_starts_without_time_to_answer_every_object_consolidates_none(
    store: S3Store, bucket: str
) -> None:
    # the reserve counts every object still to answer: 6 need FLOOR_MS + 6 * FAIL_MS
    event = make_event(bucket)
    put_payload(store, event, [item_of(str(i), GOOD) for i in range(6)])
    needed = deadline.FLOOR_MS + 6 * deadline.FAIL_MS
    for remaining, failed in ((math.ceil(needed), False), (math.ceil(needed) - 1, True)):
        context = FakeLambdaContext(remaining, PLENTY_MS)
        entries = handle_post_annotation(event, store=store, settings=DEFAULT, context=context)
        assert ("failure-reason" in content_of(entries[0])[1]) is failed


def test_reads_of_answers_in_s3_stop_at_the_deadline(
    store: S3Store, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(post_annotation, "_READ_AHEAD", 4)
    counting = _CountingStore(store)
    event = make_event(bucket)
    put_payload(store, event, answers_in_s3(store, bucket, 40))
    # the clock is asked before each object, and before waiting for each window's reads
    plenty = [PLENTY_MS] * 8  # window 1, objects 0-3, window 2, objects 4-5
    entries = handle_post_annotation(
        event, store=counting, settings=DEFAULT, context=FakeLambdaContext(*plenty, 0)
    )
    assert [e["datasetObjectId"] for e in entries] == [str(i) for i in range(40)]
    failed = ["failure-reason" in content_of(e)[1] for e in entries]
    assert failed == [False] * 6 + [True] * 34
    assert counting.reads <= 3 * 4  # two windows consolidated from, one read ahead, no more


class _StuckStore(S3Store):
    """Moto's S3, where every read of one answer hangs until released (a read that times out
    and is retried: botocore waits 60 s a try, five tries, where the Lambda has 300 s)."""

    def __init__(self, store: S3Store, stuck: str) -> None:
        super().__init__(store.client)
        self.stuck = stuck
        self.release = threading.Event()

    def get_bytes(self, uri: str) -> bytes:
        if uri == self.stuck:
            self.release.wait(60)
        return super().get_bytes(uri)


@pytest.mark.parametrize("stuck", [1, 6], ids=["first-window", "read-ahead"])
def test_a_read_of_an_answer_in_s3_that_hangs_past_the_deadline_loses_no_object(
    store: S3Store, bucket: str, monkeypatch: pytest.MonkeyPatch, stuck: int
) -> None:
    # the handler waited for every read of a window, and for those still running when it
    # stopped, whatever the time left: the Lambda ran out of time and every answer was lost
    monkeypatch.setattr(post_annotation, "_READ_AHEAD", 4)
    event = make_event(bucket)
    put_payload(store, event, answers_in_s3(store, bucket, 12))
    hanging = _StuckStore(store, f"s3://{bucket}/answers/{stuck}.json")
    left_ms = deadline.FLOOR_MS + 12 * deadline.FAIL_MS + 1_500  # 1.5 s to spare, always
    started = time.monotonic()
    try:
        entries = handle_post_annotation(
            event, store=hanging, settings=DEFAULT, context=FakeLambdaContext(round(left_ms))
        )
    finally:
        took = time.monotonic() - started
        hanging.release.set()
    assert took < 10  # not the 60 s the read hangs
    assert [e["datasetObjectId"] for e in entries] == [str(i) for i in range(12)]
    failed = ["failure-reason" in content_of(e)[1] for e in entries]
    first = 0 if stuck < 4 else 4  # the window that waits for the read
    assert failed == [False] * first + [True] * (12 - first)
    reason = content_of(entries[-1])[1]["failure-reason"]
    assert reason.startswith("deadline: ") and "1 answer in S3 still being read" in reason


def test_an_answer_without_a_worker_id_takes_the_crowd_s_skills_not_a_namesake_s(
    store: S3Store, bucket: str
) -> None:
    # an answer without a workerId is "worker-0" in the output; it took the skills of a
    # worker the table names "worker-0" (one of an answers folder's worker-0.jsonl), whose
    # reliability kept a box that the crowd's skills leave out
    from gt_toolkit.consolidation.worker_model import WorkerModel, WorkerSkill
    from gt_toolkit.handlers.post_annotation import load_post_annotation_settings

    box = {"label": "car", "left": 12, "top": 40, "width": 100, "height": 80}
    anonymous = {
        "annotationData": {"content": json.dumps({"boundingBox": {"boundingBoxes": [box]}})}
    }
    careless_answer = {
        "workerId": "careless",
        "annotationData": {"content": json.dumps({"boundingBox": {"boundingBoxes": []}})},
    }
    payload = [
        {
            "datasetObjectId": "0",
            "dataObject": {"s3Uri": f"s3://{bucket}/img1.png"},
            "annotations": [anonymous, careless_answer],
        }
    ]
    reliable = WorkerSkill(miss_rate=0.1, false_boxes=0.01, box_noise=0.1)
    careless = WorkerSkill(miss_rate=0.6, false_boxes=2.0, box_noise=0.3)
    model = WorkerModel({"worker-0": reliable, "careless": careless}, careless, 1.0, 50.0)
    uri = f"s3://{bucket}/models/workers.json"
    store.put_bytes(uri, json.dumps(model.to_json()).encode())
    env = {"GT_WORKER_MODEL_S3_URI": uri, "GT_KEEP": "model"}
    loaded = load_post_annotation_settings(env, store=store)
    [entry] = run(store, bucket, payload, settings_=loaded)
    label, meta = content_of(entry)
    assert label["annotations"] == []  # the crowd's (careless) skills: not likely an object
    assert meta["worker-count"] == 2
    named = json.loads(json.dumps(payload))
    named[0]["annotations"][0]["workerId"] = "worker-0"  # the table's worker, by name
    [entry] = run(store, bucket, named, settings_=loaded)
    assert [a["left"] for a in content_of(entry)[0]["annotations"]] == [12]
