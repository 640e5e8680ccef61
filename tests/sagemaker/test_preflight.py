"""Pre-flight finds each planted defect in a dirty channel; a clean channel passes.

Manifests and images live in moto's S3; bucket regions come from get_bucket_location.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from gt_toolkit import ValidationError
from gt_toolkit.errors import StorageError
from gt_toolkit.sagemaker.preflight import (
    bucket_region,
    preflight_channels,
    preflight_training_request,
)
from gt_toolkit.sagemaker.preflight_report import Severity
from gt_toolkit.sagemaker.training import (
    ObjectDetectionHyperparameters,
    build_object_detection_training_request,
)
from gt_toolkit.storage.s3 import S3Store

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def box(
    class_id: int | str, left: float = 10, top: float = 10, width: float = 20, height: float = 20
) -> dict[str, Any]:
    return {"class_id": class_id, "left": left, "top": top, "width": width, "height": height}


def line(ref: str | None, boxes: list[dict[str, Any]] | None, attr: str = "boxes") -> str:
    data: dict[str, Any] = {}
    if ref is not None:
        data["source-ref"] = ref
    if boxes is not None:
        data[attr] = {
            "image_size": [{"width": 100, "height": 80, "depth": 3}],
            "annotations": boxes,
        }
        data[f"{attr}-metadata"] = {
            "class-map": {"0": "ball", "1": "bat"},
            "type": "groundtruth/object-detection",
        }
    return json.dumps(data)


@pytest.fixture
def other_region_bucket(moto_endpoint: str) -> str:
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1")
    name = f"gt-eu-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    return name


def write(store: S3Store, uri: str, lines: list[str]) -> str:
    store.put_bytes(uri, ("\n".join(lines) + "\n").encode())
    return uri


def clean_lines(bucket: str, start: int, count: int) -> list[str]:
    return [
        line(f"s3://{bucket}/img_{i:03d}.jpg", [box(i % 2), box(0, left=50)])
        for i in range(start, start + count)
    ]


def test_clean_channels_pass(store: S3Store, bucket: str, s3_client: Any) -> None:
    train = write(store, f"s3://{bucket}/train.manifest", clean_lines(bucket, 0, 12))
    validation = write(store, f"s3://{bucket}/validation.manifest", clean_lines(bucket, 12, 4))
    report = preflight_channels(
        {"train": train, "validation": validation},
        label_attribute="boxes",
        class_map={"0": "ball", "1": "bat"},
        region="us-east-1",
        s3_client=s3_client,
        store=store,
        num_training_samples=12,
        num_classes=2,
        label_width=350,
    )
    assert report.ok, report.format()
    assert report.findings == []
    assert report.counts == {"train": 12, "validation": 4}
    assert report.class_ids == {0, 1}
    assert report.max_boxes == 2
    assert report.bucket_regions == {bucket: "us-east-1"}
    report.raise_for_errors()  # no error: does not raise


def test_dirty_channel_every_planted_defect_is_found(
    store: S3Store, bucket: str, s3_client: Any, other_region_bucket: str
) -> None:
    ok = f"s3://{bucket}"
    train_lines = [
        line(f"{ok}/a.jpg", [box(0), box(1)]),  # 1 good
        json.dumps(
            {
                "source-ref": f"{ok}/b.jpg",
                "boxes-metadata": {"failure-reason": "ClientError: worker timed out"},
            }
        ),  # 2 failed object
        line(f"{ok}/c.jpg", []),  # 3 empty image
        line(None, [box(0)]),  # 4 no source-ref
        line(f"{ok}/d.jpg", [box(3)]),  # 5 class 3: gap at 2, not in class map
        "{not json",  # 6 unreadable
        line(f"{ok}/e.jpg", [box(0, width=0)]),  # 7 box without area
        line(f"{ok}/f.jpg", [box(0, left=i) for i in range(7)]),  # 8 seven boxes
        line(f"s3://{other_region_bucket}/g.jpg", [box(1)]),  # 9 bucket in eu-west-1
        line(f"{ok}/a.jpg", [box(0)]),  # 10 duplicate image
        "",  # 11 blank
        line(f"{ok}/h.jpg", [box("1")]),  # 12 string class id is fine
    ]
    validation_lines = [line(f"{ok}/v1.jpg", [box(0, left=90, width=30)])]  # box leaves the image
    train = write(store, f"{ok}/dirty/train.manifest", train_lines)
    validation = write(store, f"{ok}/dirty/validation.manifest", validation_lines)
    report = preflight_channels(
        {"train": train, "validation": validation},
        label_attribute="boxes",
        class_map={"0": "ball", "1": "bat"},
        region="us-east-1",
        s3_client=s3_client,
        store=store,
        num_training_samples=12,  # counted the blank line (§8 pitfall 6)
        num_classes=2,
        label_width=30,
    )
    text = report.format()

    def has(
        severity: Severity, fragment: str, line_no: int | None = None, channel: str | None = "train"
    ) -> None:
        hits = [
            f
            for f in report.findings
            if f.severity is severity
            and fragment in f.message
            and (line_no is None or f.line_no == line_no)
            and (channel is None or f.channel == channel)
        ]
        assert hits, f"{severity.value} {fragment!r} at {line_no} not in\n{text}"

    has(Severity.ERROR, "no 'boxes' label (failed object: ClientError: worker timed out)", 2)
    has(Severity.ERROR, "empty image", 3)
    has(Severity.ERROR, "no 'source-ref'", 4)
    has(Severity.ERROR, "unreadable line (invalid-json", 6)
    has(Severity.ERROR, "annotation 0 has no area", 7)
    has(
        Severity.ERROR,
        "bucket "
        + other_region_bucket
        + " are in eu-west-1, but the training job runs in us-east-1",
        9,
    )
    has(Severity.WARNING, "already appears at train:1", 10)
    has(Severity.WARNING, "1 blank line(s) (first at line 11)")
    has(Severity.WARNING, "a box extends outside the image", 1, channel="validation")
    has(Severity.ERROR, "class ids are not contiguous from 0: [2] never appear", channel=None)
    has(Severity.ERROR, "class ids [3] are not in the class map", channel=None)
    has(Severity.ERROR, "num_classes is 2, but the labels use ids 0..3", channel=None)
    has(
        Severity.ERROR,
        "num_training_samples is 12, but the train channel has 10 lines",
        channel=None,
    )
    has(Severity.ERROR, "label_width 30 is too small: the busiest image has 7 boxes", channel=None)
    assert report.counts == {"train": 10, "validation": 1}
    assert report.bucket_regions[other_region_bucket] == "eu-west-1"
    with pytest.raises(ValidationError) as info:
        report.raise_for_errors()
    assert len(info.value.problems) == len(report.errors)
    assert "train:3: empty image" in str(info.value)


def test_allow_empty_images_downgrades_to_a_warning(store: S3Store, bucket: str) -> None:
    train = write(
        store,
        f"s3://{bucket}/t.manifest",
        [line(f"s3://{bucket}/a.jpg", [box(0)]), line(f"s3://{bucket}/b.jpg", [])],
    )
    validation = write(store, f"s3://{bucket}/v.manifest", [line(f"s3://{bucket}/c.jpg", [box(0)])])
    report = preflight_channels(
        {"train": train, "validation": validation},
        label_attribute="boxes",
        store=store,
        allow_empty_images=True,
    )
    assert report.ok
    assert [(f.severity, f.line_no) for f in report.findings] == [(Severity.WARNING, 2)]


def test_missing_channel_ref_attribute_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "train.manifest"
    path.write_text(line("s3://gt-toolkit-demo/a.jpg", [box(0)], attr="frames-ref") + "\n")
    report = preflight_channels({"train": path}, label_attribute="frames-ref")
    messages = [f.message for f in report.errors]
    assert any("is a -ref" in m for m in messages)
    assert any("no 'validation' channel given" in m for m in messages)
    report = preflight_channels(
        {"train": path, "validation": tmp_path / "missing.manifest"}, label_attribute="boxes"
    )
    assert any(f.channel == "validation" and "cannot read" in f.message for f in report.errors)


def test_image_classification_labels(tmp_path: Path) -> None:
    path = tmp_path / "ic.manifest"
    rows = [
        {"source-ref": "s3://gt-toolkit-demo/a.jpg", "category": 0},
        {"source-ref": "s3://gt-toolkit-demo/b.jpg", "category": 1},
        {"source-ref": "s3://gt-toolkit-demo/c.jpg", "category": "cat"},
        {"source-ref": "s3://gt-toolkit-demo/d.jpg", "category": 1.5},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = preflight_channels(
        {"train": path, "validation": path},
        label_attribute="category",
        algorithm="image-classification",
    )
    bad = sorted((f.line_no, f.message) for f in report.errors if f.channel == "train")
    assert bad == [(3, "class id 'cat' is not an integer"), (4, "class id 1.5 is not an integer")]
    multi = tmp_path / "multi.manifest"
    multi.write_text(
        json.dumps({"source-ref": "s3://gt-toolkit-demo/a.jpg", "tags": [0, 2]}) + "\n"
    )
    report = preflight_channels(
        {"train": multi, "validation": multi},
        label_attribute="tags",
        algorithm="image-classification",
        multi_label=True,
    )
    assert any("[1] never appear" in f.message for f in report.errors)


def test_preflight_training_request_reads_channels_and_hyperparameters(
    store: S3Store, bucket: str, s3_client: Any
) -> None:
    train = write(store, f"s3://{bucket}/train.manifest", clean_lines(bucket, 0, 9))
    validation = write(store, f"s3://{bucket}/validation.manifest", clean_lines(bucket, 9, 3))
    request = build_object_detection_training_request(
        job_name="pf",
        role_arn=ROLE,
        region="us-east-1",
        train_manifest_uri=train,
        validation_manifest_uri=validation,
        label_attribute="boxes",
        output_uri=f"s3://{bucket}/models",
        hyperparameters=ObjectDetectionHyperparameters(
            num_training_samples=9, num_classes=2, mini_batch_size=8
        ),
    )
    report = preflight_training_request(
        request, store=store, s3_client=s3_client, class_map=["ball", "bat"]
    )
    assert report.ok, report.format()
    assert report.bucket_regions == {bucket: "us-east-1"}  # region read from the image URI
    # The classic hand edits: RecordIO dropped, wrong label attribute, wrong count.
    request["InputDataConfig"][0].pop("RecordWrapperType")
    request["InputDataConfig"][1]["DataSource"]["S3DataSource"]["AttributeNames"] = [
        "source-ref",
        "truth",
    ]
    request["HyperParameters"]["num_training_samples"] = "10"
    report = preflight_training_request(request, store=store)
    messages = "\n".join(f.message for f in report.errors)
    assert "request: channel 'train': RecordWrapperType must be RecordIO" in messages
    assert (
        "request: channel 'validation' streams 'truth', but the manifests' label is 'boxes'"
        in messages
    )
    assert "num_training_samples is 10, but the train channel has 9 lines" in messages
    no_channels = preflight_training_request({"InputDataConfig": []})
    assert not no_channels.ok


def test_bucket_region(s3_client: Any, bucket: str, other_region_bucket: str) -> None:
    assert bucket_region(s3_client, bucket) == "us-east-1"
    assert bucket_region(s3_client, other_region_bucket) == "eu-west-1"
    with pytest.raises(StorageError, match="cannot get the region of bucket"):
        bucket_region(s3_client, f"gt-missing-{uuid.uuid4().hex[:8]}")


def test_repeated_findings_are_capped(tmp_path: Path) -> None:
    path = tmp_path / "empty.manifest"
    path.write_text("\n".join(line(f"s3://gt-toolkit-demo/{i}.jpg", []) for i in range(50)) + "\n")
    report = preflight_channels({"train": path, "validation": path}, label_attribute="boxes")
    empties = [f for f in report.findings if "empty image" in f.message]
    assert len(empties) == 20
    assert report.suppressed["empty"] == 80
    assert "... and 80 more 'empty' findings not shown" in report.format()


def test_manifests_and_output_in_another_region_are_errors(
    store: S3Store, bucket: str, s3_client: Any, other_region_bucket: str
) -> None:
    eu = f"s3://{other_region_bucket}"
    train = write(store, f"{eu}/ch/train.manifest", clean_lines(bucket, 0, 3))
    validation = write(store, f"{eu}/ch/validation.manifest", clean_lines(bucket, 3, 2))
    report = preflight_channels(
        {"train": train, "validation": validation},
        label_attribute="boxes",
        region="us-east-1",
        s3_client=s3_client,
        store=store,
        request={"OutputDataConfig": {"S3OutputPath": f"{eu}/models"}},
    )
    messages = [f.message for f in report.findings if f.severity is Severity.ERROR]
    assert any(
        "the train channel's manifest is in bucket" in m and "eu-west-1" in m for m in messages
    )
    assert any("the training output is in bucket" in m for m in messages)
    assert not any(f"bucket {bucket} " in m for m in messages)  # the images are in us-east-1


def test_a_failed_object_with_an_empty_label_is_an_error(tmp_path: Path) -> None:
    failed = json.loads(line("s3://bkt/b.jpg", []))
    failed["boxes-metadata"]["failure-reason"] = "no usable worker answer"
    path = tmp_path / "train.manifest"
    path.write_text(line("s3://bkt/a.jpg", [box(0)]) + "\n" + json.dumps(failed) + "\n")
    report = preflight_channels({"train": path}, label_attribute="boxes", allow_empty_images=True)
    (finding,) = [f for f in report.findings if f.line_no == 2]
    assert finding.severity is Severity.ERROR
    assert "failed object: no usable worker answer" in finding.message


# -- script mode and JumpStart requests ------------------------------------------------------


def test_a_script_mode_request_gets_its_class_folders_checked(store: S3Store, bucket: str) -> None:
    from gt_toolkit.sagemaker.pytorch import build_pytorch_training_request
    from tests.helpers import pytorch_request_args

    for key in ("train/cat/a.jpg", "train/dog/b.jpg", "validation/cat/c.jpg", "train/dog/x.txt"):
        store.put_bytes(f"s3://{bucket}/dogs/{key}", b"x")
    request = build_pytorch_training_request(
        **pytorch_request_args(
            train_uri=f"s3://{bucket}/dogs/train", validation_uri=f"s3://{bucket}/dogs/validation"
        )
    )
    report = preflight_training_request(request, store=store)
    assert [f.message for f in report.errors] == [
        "validation: needs at least two class folders, found ['cat']",
        "train and validation class folders differ: only in train ['dog'], only in validation []",
    ]
    assert [f.message for f in report.warnings] == [
        "train: 1 file(s) not images skipped: dog/x.txt"
    ]
    assert report.counts == {"train": 2, "validation": 1}


def test_jumpstart_requests_get_the_layout_of_their_task(jumpstart: S3Store, bucket: str) -> None:
    from gt_toolkit.sagemaker.jumpstart import build_jumpstart_training_request

    annotations = {
        "images": [{"file_name": "a.jpg", "width": 8, "height": 8, "id": 0}],
        "annotations": [{"image_id": 0, "bbox": [1, 1, 4, 4], "category_id": 3}],
    }
    jumpstart.put_bytes(f"s3://{bucket}/od/annotations.json", json.dumps(annotations).encode())
    jumpstart.put_bytes(f"s3://{bucket}/od/images/b.jpg", b"x")
    for key in ("ic/cat/a.jpg", "ic/dog/b.jpg"):
        jumpstart.put_bytes(f"s3://{bucket}/{key}", b"x")
    common = {
        "store": jumpstart,
        "region": "us-east-1",
        "role_arn": ROLE,
        "output_uri": f"s3://{bucket}/models",
    }
    detector = build_jumpstart_training_request(
        model_id="pytorch-od1-fasterrcnn-resnet50-fpn",
        job_name="birds",
        train_uri=f"s3://{bucket}/od/",
        **common,
    )
    errors = [f.message for f in preflight_training_request(detector, store=jumpstart).errors]
    assert errors == [
        "annotations.json names 1 image(s) not in images/: a.jpg",
        "class ids are not dense: the annotations use [3], JumpStart counts classes as 0..0 "
        "(missing [0])",
    ]
    classifier = build_jumpstart_training_request(
        model_id="pytorch-ic-resnet18", job_name="storm", train_uri=f"s3://{bucket}/ic/", **common
    )
    report = preflight_training_request(classifier, store=jumpstart)
    assert report.ok and report.counts == {"train": 2}


def test_a_script_request_without_its_train_channel() -> None:
    request = {"HyperParameters": {"sagemaker_program": '"train.py"'}, "InputDataConfig": []}
    report = preflight_training_request(request)
    assert [f.message for f in report.errors] == ["the request has no 'train' channel"]


def test_a_script_requests_data_in_another_region_is_an_error(
    store: S3Store, bucket: str, s3_client: Any, other_region_bucket: str
) -> None:
    """The built-in pre-flight checked the buckets' regions; a script request's were not
    looked at, s3_client and region accepted and unused."""
    from gt_toolkit.sagemaker.pytorch import build_pytorch_training_request
    from tests.helpers import pytorch_request_args

    eu = f"s3://{other_region_bucket}/dogs"
    for key in (
        "train/cat/a.jpg",
        "train/dog/b.jpg",
        "validation/cat/c.jpg",
        "validation/dog/d.jpg",
    ):
        store.put_bytes(f"{eu}/{key}", b"x")
    request = build_pytorch_training_request(
        **pytorch_request_args(
            train_uri=f"{eu}/train",
            validation_uri=f"{eu}/validation",
            output_uri=f"s3://{bucket}/m",
        )
    )
    assert preflight_training_request(request, store=store).ok  # the folders are fine
    report = preflight_training_request(request, store=store, s3_client=s3_client)
    assert [f.message for f in report.errors] == [
        f"the train channel's data is in bucket {other_region_bucket} in eu-west-1, but the job "
        "runs in us-east-1",
        f"the validation channel's data is in bucket {other_region_bucket} in eu-west-1, but the "
        "job runs in us-east-1",
    ]
