"""JumpStart fine-tuning: specs served from a moto bucket named as the regional JumpStart one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from gt_toolkit import ValidationError
from gt_toolkit.sagemaker.debugger import ProfilerSettings
from gt_toolkit.sagemaker.job_kinds import JUMPSTART_MODEL_ID_TAG
from gt_toolkit.sagemaker.jumpstart import (
    build_jumpstart_training_request,
    jumpstart_bucket,
    jumpstart_hyperparameters,
    read_jumpstart_spec,
)
from gt_toolkit.sagemaker.service_validation import botocore_report
from gt_toolkit.sagemaker.training import TrainingResources
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import REGION, SAMPLES

SPECS = SAMPLES / "jumpstart"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IC = "pytorch-ic-resnet18"
OD = "pytorch-od1-fasterrcnn-resnet50-fpn"


@pytest.fixture
def data(store: S3Store, bucket: str) -> dict[str, str]:
    """Class folders and JumpStart detection data, as the two converters write them."""
    for key in ("ic/train/cat/a.jpg", "ic/train/dog/b.jpg", "od/images/a.jpg"):
        store.put_bytes(f"s3://{bucket}/{key}", b"\xff\xd8\xff")
    annotations = {"images": [{"file_name": "a.jpg", "width": 4, "height": 4, "id": 0}]}
    annotations["annotations"] = [{"image_id": 0, "bbox": [0, 0, 2, 2], "category_id": 0}]
    store.put_bytes(f"s3://{bucket}/od/annotations.json", json.dumps(annotations).encode())
    return {"ic": f"s3://{bucket}/ic/train/", "od": f"s3://{bucket}/od/"}


def js_args(store: S3Store, train_uri: str, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "store": store,
        "model_id": IC,
        "region": REGION,
        "job_name": "hurricane-ic-1",
        "role_arn": ROLE,
        "train_uri": train_uri,
        "output_uri": "s3://gt-toolkit-demo/models",
    }
    args.update(overrides)
    return args


def test_reading_a_spec_picks_the_newest_version_or_the_asked_one(jumpstart: S3Store) -> None:
    spec = read_jumpstart_spec(jumpstart, region=REGION, model_id=IC)
    assert (spec.version, spec.task) == ("3.0.5", "ic")
    older = read_jumpstart_spec(jumpstart, region=REGION, model_id=IC, version="2.0.0")
    assert older.version == "2.0.0"
    assert spec.training_artifact_uri == (
        f"s3://jumpstart-cache-prod-{REGION}/pytorch-training/v2.0.0/train-{IC}.tar.gz"
    )
    assert spec.training_script_uri is not None and "/prepack/" in spec.training_script_uri


def test_image_per_instance_type_and_family(jumpstart: S3Store) -> None:
    spec = read_jumpstart_spec(jumpstart, region=REGION, model_id=IC)
    assert spec.image_uri("ml.g5.2xlarge", scope="training") == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.10.0-gpu-py38"
    )
    assert spec.image_uri("ml.c5.2xlarge", scope="hosting") == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:1.10.0-cpu-py38"
    )
    assert spec.image_uri("ml.inf2.xlarge", scope="training") is None


def test_classifier_request(
    jumpstart: S3Store, data: dict[str, str], aws: Callable[[str], Any]
) -> None:
    request = build_jumpstart_training_request(
        **js_args(
            jumpstart, data["ic"], hyperparameters={"epochs": 3, "train_only_top_layer": False}
        )
    )
    assert botocore_report("CreateTrainingJob", request) == []
    channels = {c["ChannelName"]: c for c in request["InputDataConfig"]}
    assert set(channels) == {"training", "model", "code"}
    assert channels["model"]["ContentType"] == "application/x-sagemaker-model"
    assert channels["model"]["DataSource"]["S3DataSource"]["S3Uri"].endswith(f"train-{IC}.tar.gz")
    assert "/prepack/" in channels["code"]["DataSource"]["S3DataSource"]["S3Uri"]
    hps = {k: json.loads(v) for k, v in request["HyperParameters"].items()}
    assert hps["epochs"] == 3 and hps["train_only_top_layer"] == "False"
    assert hps["learning_rate"] == 0.001 and hps["batch_size"] == 4  # the spec's defaults
    assert hps["sagemaker_program"] == "transfer_learning.py"
    assert hps["sagemaker_submit_directory"] == "/opt/ml/input/data/code/sourcedir.tar.gz"
    assert request["EnableNetworkIsolation"] is True
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "pytorch-ic:val-accuracy", "Regex": "val_accuracy: ([0-9\\.]+)"}
    ]
    assert {"Key": JUMPSTART_MODEL_ID_TAG, "Value": IC} in request["Tags"]
    sm = aws("sagemaker")
    sm.create_training_job(**request)
    assert sm.describe_training_job(TrainingJobName="hurricane-ic-1")["TrainingJobStatus"]


def test_detector_request(jumpstart: S3Store, data: dict[str, str]) -> None:
    request = build_jumpstart_training_request(
        **js_args(jumpstart, data["od"], model_id=OD, job_name="birds-od-1")
    )
    assert request["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith("1.10.0-gpu-py38")
    assert (
        request["AlgorithmSpecification"]["MetricDefinitions"][0]["Name"] == "pytorch-od1:val_loss"
    )


def test_a_network_open_model_gets_the_script_uri_directly(
    jumpstart: S3Store, data: dict[str, str]
) -> None:
    spec = json.loads((SPECS / f"{IC}.json").read_text())
    spec["training_enable_network_isolation"] = False
    key = f"community_models/{IC}/specs_v3.0.5.json"
    jumpstart.put_bytes(f"s3://{jumpstart_bucket(REGION)}/{key}", json.dumps(spec).encode())
    request = build_jumpstart_training_request(**js_args(jumpstart, data["ic"]))
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["training", "model"]
    submit = json.loads(request["HyperParameters"]["sagemaker_submit_directory"])
    assert submit.startswith(f"s3://{jumpstart_bucket(REGION)}/source-directory-tarballs/")
    assert request["EnableNetworkIsolation"] is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model_id": OD}, "is an object detector: it needs images/ plus annotations.json"),
        ({"train_uri": "od"}, "is an image classifier: it needs one folder per class"),
        ({"model_id": "pytorch-tc-bert-base-cased"}, "is a tc-task model"),
        (
            {"model_id": "pytorch-ic-resnet99"},
            "no pytorch-ic-resnet99 in us-east-1; models of the same task: pytorch-ic-resnet18",
        ),
        ({"model_version": "9.9.9"}, "no pytorch-ic-resnet18 version 9.9.9"),
        ({"hyperparameters": {"epochs": 0}}, r"epochs must be in \[1, 1000\]"),
        ({"hyperparameters": {"lr": 0.1}}, "takes no hyperparameter 'lr'"),
        ({"hyperparameters": {"train_only_top_layer": "Maybe"}}, "is not one of: True, False"),
        ({"hyperparameters": {"batch_size": 2.5}}, "batch_size must be an integer"),
        ({"resources": TrainingResources(instance_type="ml.t3.medium")}, "trains on ml.m5.xlarge"),
        ({"validation_uri": "s3://b/v/"}, "takes no validation channel"),
        ({"output_uri": "models/"}, "output_uri must be an s3:// URI"),
        ({"debugger_rules": ["LossNotDecreasing"]}, "a JumpStart image has none"),
        (
            {"profiler": ProfilerSettings(disabled=True, rules=("CPUBottleneck",))},
            "cannot run with the profiler disabled",
        ),
    ],
)
def test_bad_jumpstart_inputs(
    jumpstart: S3Store, data: dict[str, str], overrides: dict[str, Any], message: str
) -> None:
    train_uri = data[overrides.pop("train_uri", "ic")]
    with pytest.raises(ValidationError, match=message):
        build_jumpstart_training_request(**js_args(jumpstart, train_uri, **overrides))


def test_a_deprecated_or_untrainable_model_is_refused(
    jumpstart: S3Store, data: dict[str, str]
) -> None:
    spec = json.loads((SPECS / f"{IC}.json").read_text())
    spec.update(
        deprecated=True, deprecated_message="use pytorch-ic-resnet50", training_supported=False
    )
    key = f"community_models/{IC}/specs_v3.0.5.json"
    jumpstart.put_bytes(f"s3://{jumpstart_bucket(REGION)}/{key}", json.dumps(spec).encode())
    with pytest.raises(ValidationError) as info:
        build_jumpstart_training_request(**js_args(jumpstart, data["ic"]))
    text = str(info.value)
    assert "deprecated: use pytorch-ic-resnet50" in text and "cannot be fine-tuned" in text


def test_hyperparameter_types_follow_the_spec(jumpstart: S3Store) -> None:
    spec = read_jumpstart_spec(jumpstart, region=REGION, model_id=IC)
    merged = jumpstart_hyperparameters(spec, {"learning_rate": 1, "train_only_top_layer": False})
    assert merged["learning_rate"] == 1.0 and isinstance(merged["learning_rate"], float)
    assert merged["train_only_top_layer"] == "False"
    assert merged["epochs"] == 5


def test_a_region_without_the_bucket_is_a_storage_error(store: S3Store) -> None:
    from gt_toolkit.errors import StorageError

    with pytest.raises(StorageError):
        read_jumpstart_spec(store, region="ap-southeast-7", model_id=IC)


def test_a_tuned_jumpstart_job_keeps_the_model_tags_deployment_reads(
    jumpstart: S3Store, data: dict[str, str], aws: Callable[[str], Any]
) -> None:
    """The tuning job gives its tags to its training jobs: the model-id tags must be among them.

    Without them the best job of a tuned JumpStart model is taken for script mode when it is
    deployed and refused as 'not trained by the shipped train.py'.
    """
    from gt_toolkit.sagemaker.job_kinds import job_kind
    from gt_toolkit.sagemaker.jumpstart import MODEL_VERSION_TAG
    from gt_toolkit.sagemaker.tuning import build_tuning_request

    training = build_jumpstart_training_request(
        **js_args(jumpstart, data["ic"], tags={"project": "hurricane", "stage": "dev"})
    )
    request = build_tuning_request(training, job_name="hurricane-tags-hpo", tags={"stage": "hpo"})
    tags = {t["Key"]: t["Value"] for t in request["Tags"]}
    assert tags == {
        JUMPSTART_MODEL_ID_TAG: IC,
        MODEL_VERSION_TAG: "3.0.5",
        "project": "hurricane",
        "stage": "hpo",  # the tuning job's own value wins
    }
    sm = aws("sagemaker")
    arn = sm.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]
    stored = sm.list_tags(ResourceArn=arn)["Tags"]
    # what a training job the tuner starts carries, as deployment reads it back
    tuned_job = {"HyperParameters": training["HyperParameters"], "Tags": stored}
    assert job_kind(tuned_job) == "jumpstart"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_float_hyperparameter_must_be_finite(jumpstart: S3Store, value: float) -> None:
    """NaN compares false with the spec's min and max, so it passed as in range (sent as NaN)."""
    spec = read_jumpstart_spec(jumpstart, region=REGION, model_id=IC)
    with pytest.raises(ValidationError, match="learning_rate must be finite"):
        jumpstart_hyperparameters(spec, {"learning_rate": value})


def test_serving_on_an_instance_type_the_model_is_not_offered_on_is_refused(
    jumpstart: S3Store,
) -> None:
    """The spec's image table has a ``p3`` family entry; its supported list has no p3 type."""
    from gt_toolkit.sagemaker.jumpstart import MODEL_VERSION_TAG, jumpstart_serving_container

    tags = {JUMPSTART_MODEL_ID_TAG: IC, MODEL_VERSION_TAG: "3.0.5"}
    container, _ = jumpstart_serving_container(
        jumpstart, region=REGION, tags=tags, instance_type="ml.g4dn.xlarge"
    )
    assert container["Image"].endswith("pytorch-inference:1.10.0-gpu-py38")
    with pytest.raises(ValidationError) as info:
        jumpstart_serving_container(
            jumpstart, region=REGION, tags=tags, instance_type="ml.p3.2xlarge"
        )
    assert info.value.problems == [
        f"{IC} serves on ml.m5.large, ml.m5.xlarge, ml.c5.xlarge, ml.g4dn.xlarge, not ml.p3.2xlarge"
    ]
