"""Training requests: built-in object detection and image classification, run on moto's server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gt_toolkit import ValidationError
from gt_toolkit.formats.training_channels import (
    augmented_manifest_channel,
    load_channel_facts,
    min_label_width,
    parse_channel_facts,
)
from gt_toolkit.sagemaker.regions import ALGORITHM_IMAGE_ACCOUNTS
from gt_toolkit.sagemaker.service_validation import botocore_report, validate_request
from gt_toolkit.sagemaker.training import (
    build_image_classification_training_request,
    build_object_detection_training_request,
    channel_problems,
    object_detection_hyperparameters,
    training_kwargs_from_facts,
)
from gt_toolkit.storage.s3 import S3Store

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def od_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "job_name": "balls-od-1",
        "role_arn": ROLE,
        "region": "us-east-1",
        "train_manifest_uri": "s3://gt-toolkit-demo/train.manifest",
        "validation_manifest_uri": "s3://gt-toolkit-demo/validation.manifest",
        "label_attribute": "boxes",
        "output_uri": "s3://gt-toolkit-demo/models",
        "num_training_samples": 32,
        "num_classes": 1,
        "max_boxes": 4,
    }
    args.update(overrides)
    return args


def ic_lst_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "job_name": "balls-ic-1",
        "role_arn": ROLE,
        "region": "us-east-1",
        "output_uri": "s3://gt-toolkit-demo/models",
        "num_training_samples": 32,
        "num_classes": 2,
        "train_uri": "s3://gt-toolkit-demo/ic/train/",
        "validation_uri": "s3://gt-toolkit-demo/ic/validation/",
        "train_lst_uri": "s3://gt-toolkit-demo/ic/train_lst/",
        "validation_lst_uri": "s3://gt-toolkit-demo/ic/validation_lst/",
    }
    args.update(overrides)
    return args


def assert_valid(request: dict[str, Any]) -> None:
    assert botocore_report("CreateTrainingJob", request) == []
    assert validate_request("CreateTrainingJob", request) == []


def test_object_detection_request_has_the_channel_settings_builtins_need() -> None:
    request = build_object_detection_training_request(**od_args())
    assert_valid(request)
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
        "TrainingInputMode": "Pipe",
    }
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["train", "validation"]
    for channel in request["InputDataConfig"]:
        source = channel["DataSource"]["S3DataSource"]
        assert source["AttributeNames"] == ["source-ref", "boxes"]
        assert source["S3DataType"] == "AugmentedManifestFile"
        assert source["S3DataDistributionType"] == "FullyReplicated"
        assert channel["RecordWrapperType"] == "RecordIO"
        assert channel["ContentType"] == "application/x-recordio"
        assert channel["InputMode"] == "Pipe"
    hp = request["HyperParameters"]
    assert all(isinstance(v, str) for v in hp.values())
    assert hp["num_training_samples"] == "32"
    assert hp["num_classes"] == "1"
    assert hp["label_width"] == "350"  # the default already fits 4 boxes
    assert hp["learning_rate"] == "0.001"
    assert hp["use_pretrained_model"] == "1"
    assert channel_problems(request) == []


def test_label_width_grows_with_the_busiest_image() -> None:
    assert min_label_width(100) == 502
    hp = object_detection_hyperparameters(
        num_training_samples=10, num_classes=3, max_boxes=100, mini_batch_size=8
    )
    assert hp["label_width"] == "502"
    hp = object_detection_hyperparameters(
        num_training_samples=10, num_classes=3, max_boxes=2, label_width=12, mini_batch_size=8
    )
    assert hp["label_width"] == "12"


def test_object_detection_training_runs_on_moto(aws: Callable[[str], Any]) -> None:
    sm = aws("sagemaker")
    request = build_object_detection_training_request(
        **od_args(job_name="od-on-moto", learning_rate=1e-4, optimizer="adam", epochs=5)
    )
    sm.create_training_job(**request)
    described = sm.describe_training_job(TrainingJobName="od-on-moto")
    assert described["HyperParameters"] == request["HyperParameters"]
    assert described["HyperParameters"]["learning_rate"] == "0.0001"
    assert described["InputDataConfig"] == request["InputDataConfig"]
    assert (
        described["AlgorithmSpecification"]["TrainingImage"]
        == (request["AlgorithmSpecification"]["TrainingImage"])
    )
    assert described["ModelArtifacts"]["S3ModelArtifacts"].startswith(
        "s3://gt-toolkit-demo/models/"
    )


def test_image_classification_from_augmented_manifests(aws: Callable[[str], Any]) -> None:
    request = build_image_classification_training_request(
        **ic_lst_args(
            job_name="ic-manifest",
            train_uri=None,
            validation_uri=None,
            train_lst_uri=None,
            validation_lst_uri=None,
            train_manifest_uri="s3://gt-toolkit-demo/ic-train.manifest",
            validation_manifest_uri="s3://gt-toolkit-demo/ic-validation.manifest",
            label_attribute="category",
            region="eu-west-1",
        )
    )
    assert_valid(request)
    assert request["AlgorithmSpecification"]["TrainingImage"] == (
        "685385470294.dkr.ecr.eu-west-1.amazonaws.com/image-classification:1"
    )
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["AttributeNames"] == [
        "source-ref",
        "category",
    ]
    assert "resize" not in request["HyperParameters"]
    sm = aws("sagemaker")
    sm.create_training_job(**request)
    assert (
        sm.describe_training_job(TrainingJobName="ic-manifest")["HyperParameters"]
        == (request["HyperParameters"])
    )


def test_image_classification_multi_label_uses_class_id_content_type() -> None:
    request = build_image_classification_training_request(
        **ic_lst_args(
            train_uri=None,
            validation_uri=None,
            train_lst_uri=None,
            validation_lst_uri=None,
            train_manifest_uri="s3://b-k-t/train.manifest",
            validation_manifest_uri="s3://b-k-t/validation.manifest",
            label_attribute="tags",
            multi_label=True,
        )
    )
    assert request["InputDataConfig"][0]["ContentType"] == (
        "application/x-recordio; label-format=class-id"
    )
    assert request["HyperParameters"]["multi_label"] == "1"
    assert channel_problems(request, algorithm="image-classification") == []


def test_image_classification_lst_file_mode(aws: Callable[[str], Any]) -> None:
    request = build_image_classification_training_request(**ic_lst_args())
    assert_valid(request)
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == [
        "train",
        "validation",
        "train_lst",
        "validation_lst",
    ]
    assert {c["ContentType"] for c in request["InputDataConfig"]} == {"application/x-image"}
    assert all("RecordWrapperType" not in c for c in request["InputDataConfig"])
    assert request["HyperParameters"]["resize"] == "224"
    sm = aws("sagemaker")
    sm.create_training_job(**request)
    assert (
        sm.describe_training_job(TrainingJobName="balls-ic-1")["TrainingJobStatus"] == "Completed"
    )


@pytest.mark.parametrize("region", sorted(ALGORITHM_IMAGE_ACCOUNTS))
def test_image_uri_per_region(region: str) -> None:
    request = build_object_detection_training_request(**od_args(region=region))
    account = ALGORITHM_IMAGE_ACCOUNTS[region]
    assert request["AlgorithmSpecification"]["TrainingImage"] == (
        f"{account}.dkr.ecr.{region}.amazonaws.com/object-detection:1"
    )


BAD: list[tuple[str, Callable[..., Any], dict[str, Any], list[str]]] = [
    (
        "label width too small",
        build_object_detection_training_request,
        od_args(max_boxes=80, label_width=350),
        ["label_width 350 is too small for 80 boxes", ">= 2 + 5 x 80 = 402"],
    ),
    (
        "zero samples",
        build_object_detection_training_request,
        od_args(num_training_samples=0),
        ["num_training_samples must be a positive integer"],
    ),
    (
        "string classes",
        build_object_detection_training_request,
        od_args(num_classes="2"),
        ["num_classes must be a positive integer, got '2'"],
    ),
    (
        "base network",
        build_object_detection_training_request,
        od_args(base_network="vgg-19"),
        ["base_network 'vgg-19'"],
    ),
    (
        "optimizer",
        build_object_detection_training_request,
        od_args(optimizer="lbfgs"),
        ["optimizer 'lbfgs'"],
    ),
    (
        "learning rate 0",
        build_object_detection_training_request,
        od_args(learning_rate=0.0),
        ["learning_rate must be in (0, 1]"],
    ),
    (
        "image shape",
        build_object_detection_training_request,
        od_args(image_shape=224),
        ["image_shape must be an integer >= 300"],
    ),
    (
        "batch larger than data",
        build_object_detection_training_request,
        od_args(num_training_samples=10),
        ["mini_batch_size 32 is larger than the 10"],
    ),
    (
        "metadata attribute",
        build_object_detection_training_request,
        od_args(label_attribute="boxes-metadata"),
        ["is the metadata key", "must not include 'boxes-metadata'"],
    ),
    (
        "cpu instance",
        build_object_detection_training_request,
        od_args(instance_type="ml.m5.xlarge"),
        ["GPU instances"],
    ),
    (
        "fake instance",
        build_object_detection_training_request,
        od_args(instance_type="ml.fake"),
        ["ResourceConfig.InstanceType: 'ml.fake' is not one of", "more)"],
    ),
    (
        "bad job name",
        build_object_detection_training_request,
        od_args(job_name="od_1"),
        ["TrainingJobName"],
    ),
    (
        "unknown region",
        build_object_detection_training_request,
        od_args(region="mars-1"),
        ["region 'mars-1' has no known built-in algorithm images"],
    ),
    (
        "ic both inputs",
        build_image_classification_training_request,
        ic_lst_args(
            train_manifest_uri="s3://b-k-t/t.manifest",
            validation_manifest_uri="s3://b-k-t/v.manifest",
            label_attribute="c",
        ),
        ["not both"],
    ),
    (
        "ic missing lst",
        build_image_classification_training_request,
        ic_lst_args(validation_lst_uri=None),
        [".lst mode needs"],
    ),
    (
        "ic no input",
        build_image_classification_training_request,
        ic_lst_args(
            train_uri=None, validation_uri=None, train_lst_uri=None, validation_lst_uri=None
        ),
        ["no input"],
    ),
    (
        "ic layers",
        build_image_classification_training_request,
        ic_lst_args(num_layers=19),
        ["num_layers 19"],
    ),
    (
        "ic shape",
        build_image_classification_training_request,
        ic_lst_args(image_shape="224,224"),
        ["image_shape must be 'channels,height,width'"],
    ),
    (
        "ic optimizer",
        build_image_classification_training_request,
        ic_lst_args(optimizer="adadelta"),
        ["optimizer 'adadelta'"],
    ),
]


@pytest.mark.parametrize(("case", "builder", "args", "expected"), BAD, ids=[b[0] for b in BAD])
def test_bad_training_inputs(
    case: str, builder: Callable[..., Any], args: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(ValidationError) as info:
        builder(**args)
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, f"{case}: {fragment!r} not in\n{message}"


def test_channel_problems_find_the_classic_mistakes_in_a_hand_written_request() -> None:
    good = build_object_detection_training_request(**od_args())
    bad = json.loads(json.dumps(good))
    train, validation = bad["InputDataConfig"]
    train["DataSource"]["S3DataSource"]["AttributeNames"] = ["boxes", "source-ref"]
    del train["RecordWrapperType"]
    train["ContentType"] = "image/jpeg"
    validation["InputMode"] = "File"
    validation["DataSource"]["S3DataSource"]["AttributeNames"] = [
        "source-ref",
        "boxes",
        "boxes-metadata",
    ]
    validation["DataSource"]["S3DataSource"]["S3DataDistributionType"] = "ShardedByS3Key"
    problems = channel_problems(bad)
    joined = "\n".join(problems)
    assert "channel 'train': AttributeNames must start with the image" in joined
    assert "channel 'train': RecordWrapperType must be RecordIO" in joined
    assert "channel 'train': ContentType must be application/x-recordio, got 'image/jpeg'" in joined
    assert "channel 'validation': AugmentedManifestFile works only in Pipe mode, not File" in joined
    assert "channel 'validation': AttributeNames must not include 'boxes-metadata'" in joined
    assert "channel 'validation': AttributeNames must be exactly" in joined
    assert "channel 'validation': use S3DataDistributionType FullyReplicated" in joined
    only_train = {**good, "InputDataConfig": good["InputDataConfig"][:1]}
    assert channel_problems(only_train) == ["missing the 'validation' channel"]
    no_attrs = json.loads(json.dumps(good))
    del no_attrs["InputDataConfig"][0]["DataSource"]["S3DataSource"]["AttributeNames"]
    assert any("Got empty batch" in p for p in channel_problems(no_attrs))


def test_spot_and_tags() -> None:
    request = build_object_detection_training_request(
        **od_args(spot=True, tags={"project": "balls"})
    )
    assert_valid(request)
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] == 86_400
    channel = augmented_manifest_channel("train", "s3://b-k-t/m", "boxes", shuffle_seed=7)
    assert channel["ShuffleConfig"] == {"Seed": 7}


CHANNELS_JSON = {
    "label_attribute": "truth",
    "num_training_samples": {"train": 32, "validation": 8},
    "num_classes": 1,
    "label_width": 17,
    "max_boxes": 3,
    "class_map": {"0": "ball"},
    "InputDataConfig": [
        augmented_manifest_channel("train", "s3://gt-toolkit-demo/conv/train.manifest", "truth"),
        augmented_manifest_channel(
            "validation", "s3://gt-toolkit-demo/conv/validation.manifest", "truth"
        ),
    ],
}


def test_channels_json_feeds_the_builder(tmp_path: Path) -> None:
    path = tmp_path / "channels.json"
    path.write_text(json.dumps(CHANNELS_JSON))
    facts = load_channel_facts(path)
    assert facts.samples == {"train": 32, "validation": 8}
    kwargs = training_kwargs_from_facts(facts)
    assert kwargs == {
        "num_training_samples": 32,
        "num_classes": 1,
        "label_width": 17,
        "max_boxes": 3,
        "label_attribute": "truth",
        "train_manifest_uri": "s3://gt-toolkit-demo/conv/train.manifest",
        "validation_manifest_uri": "s3://gt-toolkit-demo/conv/validation.manifest",
    }
    request = build_object_detection_training_request(
        **kwargs,
        job_name="from-facts",
        role_arn=ROLE,
        region="us-east-1",
        output_uri="s3://gt-toolkit-demo/models",
        mini_batch_size=8,
    )
    assert request["HyperParameters"]["label_width"] == "17"
    assert request["InputDataConfig"] == CHANNELS_JSON["InputDataConfig"]


def test_channels_json_from_s3_and_bad_documents(store: S3Store, bucket: str) -> None:
    uri = f"s3://{bucket}/conv/channels.json"
    store.put_bytes(uri, json.dumps({"num_training_samples": 12, "class_map": ["a", "b"]}).encode())
    facts = load_channel_facts(uri, store=store)
    assert (facts.num_training_samples, facts.num_classes) == (12, 2)
    with pytest.raises(ValidationError, match="no num_training_samples"):
        parse_channel_facts({"num_classes": 2})
    with pytest.raises(ValidationError, match="no num_classes"):
        parse_channel_facts({"num_training_samples": 3})
    store.put_bytes(uri, b"{not json")
    with pytest.raises(ValidationError, match="not JSON"):
        load_channel_facts(uri, store=store)


def test_channels_json_in_the_converters_shape() -> None:
    # The keys gt_toolkit.convert.augmented writes: counts per channel, hyperparameters as
    # strings, max_boxes_per_image.
    document = {
        "algorithm": "object-detection",
        "label_attribute": "truth",
        "attribute_names": ["source-ref", "truth"],
        "InputDataConfig": CHANNELS_JSON["InputDataConfig"],
        "num_training_samples": {"train": 31, "validation": 9},
        "num_classes": 1,
        "class_map": {"0": "ball"},
        "hyperparameters": {"num_classes": "1", "num_training_samples": "31", "label_width": "350"},
        "label_width_required": 17,
        "max_boxes_per_image": 3,
        "notes": [],
    }
    facts = parse_channel_facts(document)
    assert (facts.num_training_samples, facts.num_classes) == (31, 1)
    assert (facts.label_width, facts.max_boxes) == (350, 3)
    assert facts.class_map == {"0": "ball"}
    request = build_object_detection_training_request(
        **training_kwargs_from_facts(facts),
        job_name="from-converter",
        role_arn=ROLE,
        region="us-east-1",
        output_uri="s3://gt-toolkit-demo/models",
        mini_batch_size=16,
    )
    assert request["HyperParameters"]["num_training_samples"] == "31"
    assert request["HyperParameters"]["label_width"] == "350"
