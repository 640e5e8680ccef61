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
    ImageClassificationHyperparameters,
    ObjectDetectionHyperparameters,
    TrainingResources,
    build_image_classification_training_request,
    build_object_detection_training_request,
    channel_problems,
    training_kwargs_from_facts,
)
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import SAGEMAKER_ROLE as ROLE
from tests.helpers import assert_refused
from tests.helpers import od_request_args as od_args


def od_hp(**fields: Any) -> ObjectDetectionHyperparameters:
    return ObjectDetectionHyperparameters(
        **({"num_training_samples": 32, "num_classes": 1, "max_boxes": 4} | fields)
    )


def ic_hp(**fields: Any) -> ImageClassificationHyperparameters:
    return ImageClassificationHyperparameters(
        **({"num_training_samples": 32, "num_classes": 2} | fields)
    )


def ic_lst_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "job_name": "balls-ic-1",
        "role_arn": ROLE,
        "region": "us-east-1",
        "output_uri": "s3://gt-toolkit-demo/models",
        "hyperparameters": ic_hp(),
        "train_uri": "s3://gt-toolkit-demo/ic/train/",
        "validation_uri": "s3://gt-toolkit-demo/ic/validation/",
        "train_lst_uri": "s3://gt-toolkit-demo/ic/train_lst/",
        "validation_lst_uri": "s3://gt-toolkit-demo/ic/validation_lst/",
    }
    return args | overrides


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
    hp = od_hp(num_training_samples=10, num_classes=3, max_boxes=100, mini_batch_size=8)
    assert hp.as_strings()["label_width"] == "502"
    hp = od_hp(
        num_training_samples=10, num_classes=3, max_boxes=2, label_width=12, mini_batch_size=8
    )
    assert hp.as_strings()["label_width"] == "12"


def test_object_detection_training_runs_on_moto(aws: Callable[[str], Any]) -> None:
    sm = aws("sagemaker")
    request = build_object_detection_training_request(
        **od_args(
            job_name="od-on-moto",
            hyperparameters=od_hp(learning_rate=1e-4, optimizer="adam", epochs=5),
        )
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
            hyperparameters=ic_hp(multi_label=True),
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
    wide = ImageClassificationHyperparameters(
        num_training_samples=40, num_classes=2, image_shape="3,224,320"
    )
    # a portrait image resized to 224 on its shortest side is too narrow for a 320 crop
    resized = build_image_classification_training_request(**ic_lst_args(hyperparameters=wide))
    assert resized["HyperParameters"]["resize"] == "320"
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


BAD_HYPERPARAMETERS: list[tuple[str, Callable[..., Any], dict[str, Any], list[str]]] = [
    (
        "label width too small",
        od_hp,
        {"max_boxes": 80, "label_width": 350},
        ["label_width 350 is too small for 80 boxes", ">= 2 + 5 x 80 = 402"],
    ),
    ("zero samples", od_hp, {"num_training_samples": 0}, ["num_training_samples must be a"]),
    ("string classes", od_hp, {"num_classes": "2"}, ["num_classes must be a positive integer"]),
    ("zero epochs", od_hp, {"epochs": 0}, ["epochs must be a positive integer, got 0"]),
    ("base network", od_hp, {"base_network": "vgg-19"}, ["base_network 'vgg-19'"]),
    ("optimizer", od_hp, {"optimizer": "lbfgs"}, ["optimizer 'lbfgs'"]),
    ("learning rate 0", od_hp, {"learning_rate": 0.0}, ["learning_rate must be in (0, 1]"]),
    ("momentum 1", od_hp, {"momentum": 1.0}, ["momentum must be in [0, 1), got 1.0"]),
    ("weight decay", od_hp, {"weight_decay": -0.1}, ["weight_decay must be in [0, 1)"]),
    ("image shape", od_hp, {"image_shape": 224}, ["image_shape must be an integer >= 300"]),
    (
        "batch larger than data",
        od_hp,
        {"num_training_samples": 10},
        ["mini_batch_size 32 is larger than the 10"],
    ),
    ("ic layers", ic_hp, {"num_layers": 19}, ["num_layers 19"]),
    ("ic shape", ic_hp, {"image_shape": "224,224"}, ["image_shape must be 'channels,height"]),
    ("ic optimizer", ic_hp, {"optimizer": "adadelta"}, ["optimizer 'adadelta'"]),
    ("ic resize", ic_hp, {"resize": 0}, ["resize must be a positive integer, got 0"]),
    (
        "ic resize below the crop",
        ic_hp,
        {"resize": 200, "image_shape": "3,224,224"},
        ["resize 200 is smaller than image_shape '3,224,224'", "use >= 224"],
    ),
    (
        "ic resize below a wide crop",
        ic_hp,
        {"resize": 224, "image_shape": "3,224,320"},
        ["resize 224 is smaller than image_shape '3,224,320'", "use >= 320"],
    ),
    (
        "every problem at once",
        od_hp,
        {"epochs": 0, "optimizer": "lbfgs"},
        ["2 problem(s)", "epochs must be", "optimizer 'lbfgs'"],
    ),
]


def test_extra_hyperparameters_pass_through_and_win() -> None:
    hp = od_hp(extra={"nms_threshold": "0.45", "epochs": "3"})
    assert hp.as_strings()["nms_threshold"] == "0.45"
    assert hp.as_strings()["epochs"] == "3"
    assert ic_hp(extra={"augmentation_type": "crop"}).as_strings()["augmentation_type"] == "crop"


@pytest.mark.parametrize(
    ("value", "refused"),
    [
        ("a\rb", True),  # Java's '.' stops at its line terminators, not only at \n
        ("a\u2028b", True),
        ("a\u0085b", True),
        ("a\nb", True),
        ("a\x0bb", False),  # a vertical tab is no line terminator in Java
        ("a.b c", False),
    ],
)
def test_the_model_patterns_read_dot_as_java_does(value: str, refused: bool) -> None:
    """The service matches its model's patterns with Java's regex; HyperParameterValue is
    ``.*``, which Java's ``matches`` refuses for a value holding ``\r`` or U+2028."""
    hp = od_hp(extra={"lr_scheduler_step": value})
    if not refused:
        request = build_object_detection_training_request(**od_args(hyperparameters=hp))
        assert request["HyperParameters"]["lr_scheduler_step"] == value
        return
    with pytest.raises(ValidationError) as info:
        build_object_detection_training_request(**od_args(hyperparameters=hp))
    assert info.value.problems == [
        f"HyperParameters['lr_scheduler_step']: {value!r} does not match the pattern .*"
    ]


BAD_REQUESTS: list[tuple[str, Callable[..., Any], dict[str, Any], list[str]]] = [
    (
        "metadata attribute",
        build_object_detection_training_request,
        od_args(label_attribute="boxes-metadata"),
        ["is the metadata key", "must not include 'boxes-metadata'"],
    ),
    (
        "cpu instance",
        build_object_detection_training_request,
        od_args(resources=TrainingResources(instance_type="ml.m5.xlarge")),
        ["GPU instances"],
    ),
    (
        "fake instance",
        build_object_detection_training_request,
        od_args(resources=TrainingResources(instance_type="ml.fake")),
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
        "reserved tag key",
        build_object_detection_training_request,
        od_args(tags={"aws:cloudformation:stack-name": "x"}),
        ["Tags[0].Key: 'aws:cloudformation:stack-name': the prefix 'aws:' is reserved"],
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
        "ic missing manifest",
        build_image_classification_training_request,
        ic_lst_args(
            train_uri=None,
            validation_uri=None,
            train_lst_uri=None,
            validation_lst_uri=None,
            train_manifest_uri="s3://b-k-t/t.manifest",
        ),
        ["augmented-manifest mode needs"],
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
]


@pytest.mark.parametrize(
    ("make", "kwargs", "expected"),
    [row[1:] for row in BAD_HYPERPARAMETERS + BAD_REQUESTS],
    ids=[row[0] for row in BAD_HYPERPARAMETERS + BAD_REQUESTS],
)
def test_bad_training_inputs_are_refused_with_every_problem(
    make: Callable[..., Any], kwargs: dict[str, Any], expected: list[str]
) -> None:
    assert_refused(make, kwargs, expected)


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
        **od_args(resources=TrainingResources(spot=True), tags={"project": "balls"})
    )
    assert_valid(request)
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"]["MaxWaitTimeInSeconds"] == 86_400
    assert request["Tags"] == [{"Key": "project", "Value": "balls"}]
    resources = TrainingResources(
        instance_type="ml.g5.xlarge", instance_count=2, volume_size_gb=80, max_runtime_seconds=600
    )
    request = build_object_detection_training_request(**od_args(resources=resources))
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.g5.xlarge",
        "InstanceCount": 2,
        "VolumeSizeInGB": 80,
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 600}
    assert "EnableManagedSpotTraining" not in request
    channel = augmented_manifest_channel("train", "s3://b-k-t/m", "boxes", shuffle_seed=7)
    assert channel["ShuffleConfig"] == {"Seed": 7}


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"spot": True, "max_runtime_seconds": 7200, "max_wait_seconds": 3600}, "at least"),
        ({"max_runtime_seconds": 29 * 86_400}, "28 days"),
        ({"instance_count": 0}, "instance_count must be at least 1"),
        ({"max_wait_seconds": 90_000}, "give spot=True"),
    ],
)
def test_resources_the_service_refuses_are_refused_when_built(
    kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        TrainingResources(**kwargs)


def test_a_spot_wait_as_long_as_the_run_is_taken() -> None:
    resources = TrainingResources(spot=True, max_runtime_seconds=3600, max_wait_seconds=3600)
    assert resources.request_fields()["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 3600,
        "MaxWaitTimeInSeconds": 3600,
    }


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
        "label_attribute": "truth",
        "train_manifest_uri": "s3://gt-toolkit-demo/conv/train.manifest",
        "validation_manifest_uri": "s3://gt-toolkit-demo/conv/validation.manifest",
    }
    hp = ObjectDetectionHyperparameters.from_facts(facts, mini_batch_size=8)
    assert (hp.num_training_samples, hp.num_classes, hp.label_width, hp.max_boxes) == (32, 1, 17, 3)
    request = build_object_detection_training_request(
        **kwargs,
        job_name="from-facts",
        role_arn=ROLE,
        region="us-east-1",
        output_uri="s3://gt-toolkit-demo/models",
        hyperparameters=hp,
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
        hyperparameters=ObjectDetectionHyperparameters.from_facts(facts, mini_batch_size=16),
    )
    assert request["HyperParameters"]["num_training_samples"] == "31"
    assert request["HyperParameters"]["label_width"] == "350"


def test_image_classification_hyperparameters_keep_their_public_methods() -> None:
    """f21838f dropped image_height() from an exported class as unused inside the toolkit:
    a caller's ``hp.image_height()`` became an AttributeError in a 'no behaviour change'."""
    from gt_toolkit import ImageClassificationHyperparameters as Hyperparameters

    hp = Hyperparameters(num_training_samples=40, num_classes=2, image_shape="3,224,320")
    assert (hp.image_height(), hp.largest_side()) == (224, 320)
    tall = Hyperparameters(num_training_samples=40, num_classes=2, image_shape="1, 512,64")
    assert (tall.image_height(), tall.largest_side()) == (512, 512)
