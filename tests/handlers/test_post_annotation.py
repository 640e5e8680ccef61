from __future__ import annotations

import importlib
import json
import logging
import random
import statistics
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gt_toolkit.consolidation.engine import ConsolidationSettings
from gt_toolkit.errors import StorageError, ValidationError
from gt_toolkit.handlers.post_annotation import (
    PostAnnotationSettings,
    assumed_role_store_factory,
    handle_post_annotation,
)
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import DATA

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


def test_worker_table_replaces_the_head_count(store: S3Store, bucket: str) -> None:
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
    loaded = load_post_annotation_settings({"GT_WORKER_MODEL_S3_URI": f" {uri} "}, store=store)
    assert loaded.worker_model == model

    [head_count] = run(store, bucket, payload)  # one of two workers: below the majority
    assert content_of(head_count)[0]["annotations"] == []
    [with_model] = run(store, bucket, payload, settings_=loaded)
    label, meta = content_of(with_model)
    assert [a["left"] for a in label["annotations"]] == [12]
    assert 0.5 < meta["objects"][0]["confidence"] < 1.0

    store.put_bytes(uri, b"not json")
    with pytest.raises(ConsolidationError, match="bad worker model"):
        load_post_annotation_settings({"GT_WORKER_MODEL_S3_URI": uri}, store=store)
    with pytest.raises(StorageError):
        load_post_annotation_settings(
            {"GT_WORKER_MODEL_S3_URI": f"s3://{bucket}/models/missing.json"}, store=store
        )
