from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_toolkit.errors import StorageError, ValidationError
from gt_toolkit.handlers.post_annotation import PostAnnotationSettings
from gt_toolkit.handlers.pre_annotation import (
    PreAnnotationSettings,
    find_prior_detection_attribute,
    handle_pre_annotation,
    load_pre_annotation_settings,
)
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import load_event

LABELS = ("car", "bike")


def test_source_ref_becomes_task_object_with_labels_and_header() -> None:
    event = load_event("pre_source_ref.json")
    out = handle_pre_annotation(
        event, settings=PreAnnotationSettings(labels=LABELS, header="Box every vehicle")
    )
    assert out == {
        "taskInput": {
            "taskObject": event["dataObject"]["source-ref"],
            "labels": list(LABELS),
            "header": "Box every vehicle",
        },
        "isHumanAnnotationRequired": True,
    }
    # the response is JSON (what the Lambda runtime will serialise)
    assert json.loads(json.dumps(out)) == out


def test_source_text_becomes_task_object() -> None:
    event = load_event("pre_source_text.json")
    out = handle_pre_annotation(event, settings=PreAnnotationSettings())
    assert out["taskInput"] == {"taskObject": event["dataObject"]["source"]}
    assert out["isHumanAnnotationRequired"] is True


def test_chained_job_boxes_become_initial_value_with_label_names() -> None:
    event = load_event("pre_chained.json")
    out = handle_pre_annotation(event, settings=PreAnnotationSettings(labels=("car", "x", "bike")))
    anns = event["dataObject"]["boxes"]["annotations"]
    assert out["taskInput"]["initialValue"] == [
        {"label": "car", **{k: anns[0][k] for k in ("left", "top", "width", "height")}},
        {"label": "bike", **{k: anns[1][k] for k in ("left", "top", "width", "height")}},
    ]
    assert "errors" not in out["taskInput"]
    assert out["isHumanAnnotationRequired"] is True


def test_prior_attribute_is_found_by_metadata_type_not_by_name() -> None:
    data = load_event("pre_chained.json")["dataObject"]
    assert find_prior_detection_attribute(data) == "boxes"
    renamed = {
        "source-ref": data["source-ref"],
        "zz": data["boxes"],
        "zz-metadata": data["boxes-metadata"],
    }
    assert find_prior_detection_attribute(renamed) == "zz"
    assert find_prior_detection_attribute({"source-ref": "s3://b/k"}) is None


def test_newest_prior_label_wins_in_a_chain() -> None:
    data = load_event("pre_chained.json")["dataObject"]
    newer_meta = dict(data["boxes-metadata"], **{"creation-date": "2025-01-01T00:00:00"})
    chain = {
        **data,
        "adjusted": {"image_size": [], "annotations": []},
        "adjusted-metadata": newer_meta,
    }
    assert find_prior_detection_attribute(chain) == "adjusted"
    failed = dict(newer_meta, **{"failure-reason": "ClientError: boom"})
    assert (
        find_prior_detection_attribute({**data, "adjusted-metadata": failed, "adjusted": {}})
        == "boxes"
    )


@pytest.mark.parametrize(
    ("threshold", "skipped"),
    [
        (None, False),  # no rule
        (0.9, True),  # 0.97 and 0.92 both pass
        (0.95, False),  # 0.92 fails
        (0.0, True),
    ],
)
def test_skip_rule_on_model_prelabels(threshold: float | None, skipped: bool) -> None:
    event = load_event("pre_model_prelabels.json")
    out = handle_pre_annotation(
        event, settings=PreAnnotationSettings(skip_min_confidence=threshold)
    )
    assert out["isHumanAnnotationRequired"] is (not skipped)
    assert [b["label"] for b in out["taskInput"]["initialValue"]] == ["car", "bike"]


def test_skip_rule_never_skips_an_image_without_prior_boxes() -> None:
    event = load_event("pre_source_ref.json")
    out = handle_pre_annotation(event, settings=PreAnnotationSettings(skip_min_confidence=0.0))
    assert out["isHumanAnnotationRequired"] is True
    empty = copy.deepcopy(load_event("pre_model_prelabels.json"))
    empty["dataObject"]["model"]["annotations"] = []
    empty["dataObject"]["model-metadata"]["objects"] = []
    out = handle_pre_annotation(empty, settings=PreAnnotationSettings(skip_min_confidence=0.0))
    assert out["isHumanAnnotationRequired"] is True
    assert "initialValue" not in out["taskInput"]


@pytest.mark.parametrize("named", [True, False], ids=["named", "detected"])
def test_a_label_marked_failed_gives_no_priors_and_no_skip(named: bool) -> None:
    # our post-annotation Lambda keeps the boxes of a label-mismatch failure beside its
    # failure-reason: named or detected, such a label must not pre-load or skip the human
    event = copy.deepcopy(load_event("pre_model_prelabels.json"))
    event["dataObject"]["model-metadata"]["failure-reason"] = "labels do not match the job"
    settings = PreAnnotationSettings(
        skip_min_confidence=0.0, prior_attribute="model" if named else None
    )
    out = handle_pre_annotation(event, settings=settings)
    assert out["isHumanAnnotationRequired"] is True
    assert "initialValue" not in out["taskInput"]


def test_skip_rule_needs_every_confidence_known() -> None:
    event = copy.deepcopy(load_event("pre_model_prelabels.json"))
    event["dataObject"]["model-metadata"]["objects"] = [{"confidence": 0.99}]  # second missing
    out = handle_pre_annotation(event, settings=PreAnnotationSettings(skip_min_confidence=0.5))
    assert out["isHumanAnnotationRequired"] is True


def test_prior_box_with_a_label_outside_the_choices_is_dropped_and_reported() -> None:
    event = load_event("pre_chained.json")
    out = handle_pre_annotation(event, settings=PreAnnotationSettings(labels=("car",)))
    assert [b["label"] for b in out["taskInput"]["initialValue"]] == ["car"]
    assert any("'bike'" in e for e in out["taskInput"]["errors"])


def test_malformed_prior_label_is_logged_and_the_human_still_gets_the_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = load_event("pre_malformed.json")
    with caplog.at_level(logging.ERROR, logger="gt_toolkit.handlers.pre_annotation"):
        out = handle_pre_annotation(event, settings=PreAnnotationSettings(skip_min_confidence=0.1))
    assert out["isHumanAnnotationRequired"] is True
    assert out["taskInput"]["taskObject"] == "s3://b/img3.png"
    assert "initialValue" not in out["taskInput"]
    assert any("malformed" in e for e in out["taskInput"]["errors"])
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    assert caplog.records[0].gt["taskObject"] == "s3://b/img3.png"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("event", "task_object", "error_part"),
    [
        ({}, "", "dataObject must be a JSON object"),
        ({"dataObject": None}, "", "dataObject must be a JSON object"),
        ({"dataObject": ["s3://b/k"]}, "", "dataObject must be a JSON object"),
        ({"dataObject": {"site": 1}}, "", "neither 'source-ref' nor 'source'"),
        ({"dataObject": {"source-ref": 42}}, "42", "must be a string"),
        ({"dataObject": {"source-ref": "https://x/y.jpg"}}, "https://x/y.jpg", "not an s3:// URI"),
        ({"dataObject": {"source-ref": ""}}, "", "source-ref is empty"),
    ],
    ids=["no-data-object", "null", "list", "no-source", "number", "not-s3", "empty"],
)
def test_malformed_data_object_never_raises(event: Any, task_object: str, error_part: str) -> None:
    out = handle_pre_annotation(event, settings=PreAnnotationSettings(labels=LABELS))
    assert out["isHumanAnnotationRequired"] is True
    assert out["taskInput"]["taskObject"] == task_object
    assert out["taskInput"]["labels"] == list(LABELS)
    assert any(error_part in e for e in out["taskInput"]["errors"])


def test_a_long_source_text_reaches_the_worker_whole_and_the_log_clipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a source line holds up to 100 KB of the customer's text: the log names it, no more
    text = "Sue bought 10 shares. " * 4_000
    events = [{"dataObject": {"source": text}}, {"dataObject": {"source": {"text": text}}}]
    with caplog.at_level(logging.INFO, logger="gt_toolkit.handlers.pre_annotation"):
        outs = [handle_pre_annotation(e, settings=PreAnnotationSettings()) for e in events]
    assert outs[0]["taskInput"]["taskObject"] == text
    assert json.loads(outs[1]["taskInput"]["taskObject"]) == {"text": text}
    assert text in outs[1]["taskInput"]["errors"][0]
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.ERROR]
    assert all(len(r.getMessage()) < 3_000 for r in caplog.records)


def test_pass_through_keys_reach_the_template() -> None:
    event = load_event("pre_source_ref.json")
    out = handle_pre_annotation(
        event, settings=PreAnnotationSettings(pass_through=("site", "nope"))
    )
    assert out["taskInput"]["metadata"] == {"site": "plant-7"}


# text with the lone surrogates a "\\ud800" escape in the line gives
texts = st.text(max_size=8) | st.sampled_from(["\ud800", "a\udfffb", "s3://b/\udc80.jpg"])
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | texts,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


# Numbers a JSON parser can hand over, including the NaN/Infinity Python's json accepts.
json_numbers = (
    st.integers() | st.floats() | st.sampled_from([float("inf"), float("-inf"), float("nan")])
)
# Bounding-box labels that get past the first shape checks, so parse_detection_label and the
# code after it see malformed fields, not only a wrong top-level type.
box_fields = st.fixed_dictionaries(
    dict.fromkeys(("class_id", "left", "top", "width", "height"), json_numbers)
) | st.dictionaries(
    st.sampled_from(["class_id", "left", "top", "width", "height"]), json_values, max_size=5
)
label_values = st.fixed_dictionaries(
    {"annotations": st.lists(box_fields | json_values, max_size=3)},
    optional={
        "image_size": json_values
        | st.lists(
            st.dictionaries(st.sampled_from(["width", "height", "depth"]), json_values), max_size=2
        )
    },
)
# Metadata typed as a bounding-box label whose fields may be any JSON type: "class-map": ["a"],
# "objects": "x", confidences that are lists, dates that are numbers.
metadata_values = st.fixed_dictionaries(
    {"type": st.just("groundtruth/object-detection")},
    optional={
        "class-map": json_values,
        "objects": json_values
        | st.lists(st.dictionaries(st.just("confidence"), json_numbers | json_values), max_size=3),
        "image_size": json_values,
        "creation-date": json_values,
        "failure-reason": json_values,
    },
)
data_objects = st.dictionaries(
    st.sampled_from(["source-ref", "source", "boxes", "boxes-metadata", "x", "x-metadata"]),
    json_values,
) | st.fixed_dictionaries(
    {
        "source-ref": st.just("s3://b/k.jpg") | json_values,
        "boxes": label_values | json_values,
        "boxes-metadata": metadata_values | json_values,
    },
    optional={"x": label_values, "x-metadata": metadata_values},
)


@settings(max_examples=300, deadline=None)
@given(data_object=data_objects, threshold=st.none() | st.floats(0, 1))
def test_any_data_object_gets_a_response(
    data_object: dict[str, Any], threshold: float | None
) -> None:
    settings_ = PreAnnotationSettings(
        labels=LABELS, skip_min_confidence=threshold, pass_through=("x", "source")
    )
    out = handle_pre_annotation({"dataObject": data_object}, settings=settings_)
    assert isinstance(out["taskInput"]["taskObject"], str)
    assert isinstance(out["isHumanAnnotationRequired"], bool)
    if out["taskInput"].get("errors"):
        assert out["isHumanAnnotationRequired"] is True
    runtime_bytes(out)  # strict JSON, as UTF-8: what the runtime can send


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, PreAnnotationSettings()),
        ({"GT_LABELS": '["a, b", "c"]'}, PreAnnotationSettings(labels=("a, b", "c"))),
        (
            {"GT_HEADER": "Box it", "GT_SKIP_MIN_CONFIDENCE": "0.8", "GT_PASS_THROUGH_KEYS": "a,b"},
            PreAnnotationSettings(
                header="Box it", skip_min_confidence=0.8, pass_through=("a", "b")
            ),
        ),
        ({"GT_PRIOR_LABEL_ATTRIBUTE": "boxes"}, PreAnnotationSettings(prior_attribute="boxes")),
    ],
)
def test_settings_from_env(env: dict[str, str], expected: PreAnnotationSettings) -> None:
    assert PreAnnotationSettings.from_env(env) == expected


@pytest.mark.parametrize(
    ("value", "labels"),
    [
        ("car,bike", ("car", "bike")),
        ("car, bike", ("car", "bike")),  # spaces after a comma separate
        ("  car,  bike", ("car", "bike")),
        ("car ,bike ", ("car ", "bike ")),  # a trailing space is part of the label
        ("traffic light,person", ("traffic light", "person")),
        ("Straße,café", ("Straße", "café")),
        ('["car ", " bike", "a, b"]', ("car ", " bike", "a, b")),  # JSON keeps all exactly
        ('  ["car"]', ("car",)),
        ("", None),
        ("   ", None),
    ],
)
def test_gt_labels_forms(value: str, labels: tuple[str, ...] | None) -> None:
    assert PreAnnotationSettings.from_env({"GT_LABELS": value}).labels == labels


def test_a_trailing_space_in_the_comma_form_is_kept_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="gt_toolkit.handlers.pre_annotation"):
        settings_ = PreAnnotationSettings.from_env({"GT_LABELS": "car ,bike"})
    assert settings_.labels == ("car ", "bike")
    [record] = caplog.records
    assert record.gt == {"labels": ["car "]}  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["car,,bike", "car,bike,", ",car", "car, ,bike"])
def test_an_empty_label_in_the_comma_form_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="empty label"):
        PreAnnotationSettings.from_env({"GT_LABELS": value})


@pytest.mark.parametrize(
    "value", ['["car", "\\ud800"]', '["car", "truck\\udfff"]', "car, bike\udcff"]
)
def test_a_label_that_is_not_valid_unicode_stops_both_lambdas_at_cold_start(value: str) -> None:
    # a lone surrogate (the JSON form's escape, or an undecodable byte of the environment)
    # went into every response, which the runtime cannot encode as UTF-8: every call failed
    for settings_class in (PreAnnotationSettings, PostAnnotationSettings):
        with pytest.raises(ValidationError, match="not valid Unicode"):
            settings_class.from_env({"GT_LABELS": value})


def test_settings_from_env_lists_every_problem() -> None:
    with pytest.raises(ValidationError) as info:
        PreAnnotationSettings.from_env(
            {"GT_LABELS": "[1, 2]", "GT_SKIP_MIN_CONFIDENCE": "2", "GT_LABELS_S3_URI": "/tmp/x"}
        )
    assert len(info.value.problems) == 3


def test_label_file_in_s3_is_read_once_at_cold_start(store: S3Store, bucket: str) -> None:
    uri = f"s3://{bucket}/config/labels.json"
    store.put_bytes(
        uri,
        json.dumps(
            {"document-version": "2018-11-28", "labels": [{"label": "car"}, {"label": "bike"}]}
        ).encode(),
    )
    settings_ = load_pre_annotation_settings({"GT_LABELS_S3_URI": uri}, store=store)
    assert settings_.labels == ("car", "bike")
    # env labels win over the file
    assert load_pre_annotation_settings(
        {"GT_LABELS_S3_URI": uri, "GT_LABELS": "x"}, store=store
    ).labels == ("x",)


def test_bad_or_missing_label_file_fails_loudly(store: S3Store, bucket: str) -> None:
    uri = f"s3://{bucket}/config/labels.json"
    with pytest.raises(StorageError):
        load_pre_annotation_settings({"GT_LABELS_S3_URI": uri}, store=store)
    store.put_bytes(uri, b'{"labels": "car"}')
    with pytest.raises(ValidationError):
        load_pre_annotation_settings({"GT_LABELS_S3_URI": uri}, store=store)


def runtime_bytes(response: Any) -> bytes:
    """What the Python 3.12 Lambda runtime sends: strict JSON text, encoded as UTF-8.

    Its encoder writes NaN and infinities as ``NaN``/``Infinity``, which no JSON reader takes,
    and keeps non-ASCII text unescaped, so a lone surrogate fails the encoding to UTF-8.
    """
    return json.dumps(response, ensure_ascii=False, allow_nan=False).encode("utf-8")


# What the runtime's parser (simplejson; json here reads it alike) hands the handler from
# valid JSON text: 1e400 as infinity, "\ud800" as a lone surrogate.
_ODD_LINE = (
    '{"source-ref": "s3://b/\\ud800.jpg", "site": 1e400, '
    '"meta": {"score": -1e400, "name": "x\\udc00y", "\\ud83d": [1e999, 2]}}'
)


def test_the_response_is_json_the_runtime_can_send_whatever_the_line_holds() -> None:
    # the pass-through values and the taskObject went back as they came: the runtime wrote
    # "Infinity" (no reader takes it) or failed on the lone surrogate, and the object failed
    event = {"dataObject": json.loads(_ODD_LINE)}
    settings = PreAnnotationSettings(labels=LABELS, pass_through=("site", "meta"))
    out = handle_pre_annotation(event, settings=settings)
    sent = json.loads(runtime_bytes(out))
    assert sent["taskInput"]["taskObject"] == "s3://b/?.jpg"
    assert sent["taskInput"]["metadata"] == {
        "site": None,
        "meta": {"score": None, "name": "x?y", "?": [None, 2]},
    }
    errors = " | ".join(sent["taskInput"]["errors"])
    assert "taskObject" in errors and "'site'" in errors and "'meta'" in errors
    assert sent["isHumanAnnotationRequired"] is True


@pytest.mark.parametrize("confidence", ["1e400", "7.5", "-0.5", "NaN"])
def test_a_confidence_outside_zero_to_one_never_skips_the_human(confidence: str) -> None:
    # 1e400 reads as infinity, and an infinity (or a raw score of 7.5) was "at least" any
    # threshold: the object skipped its human on a number that is no confidence
    event = copy.deepcopy(load_event("pre_model_prelabels.json"))
    objects = f'[{{"confidence": 0.99}}, {{"confidence": {confidence}}}]'
    event["dataObject"]["model-metadata"]["objects"] = json.loads(objects)
    out = handle_pre_annotation(event, settings=PreAnnotationSettings(skip_min_confidence=0.5))
    assert out["isHumanAnnotationRequired"] is True
    assert len(out["taskInput"]["initialValue"]) == 2  # the boxes still help the worker
    assert any("is not in [0, 1]" in e for e in out["taskInput"]["errors"])
