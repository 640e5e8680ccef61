"""Deploy, wait, invoke and delete against moto's server; wait edge cases with Stubber.

moto answers invoke_endpoint from a FIFO queue filled through
POST /moto-api/static/sagemaker/endpoint-results (docs/testing-locally.md). moto remembers the
answer it gave per request body, whatever the endpoint, so each test sends its own image bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber

from gt_toolkit import GtToolkitError, ValidationError
from gt_toolkit.errors import EndpointFailedError, WaitTimeoutError
from gt_toolkit.sagemaker.endpoints import (
    Deployment,
    build_endpoint_config_request,
    build_endpoint_request,
    build_model_request,
    delete_deployment,
    deploy_training_job,
    image_content_type,
    invoke_classifier,
    invoke_detector,
    wait_for_endpoint,
)
from gt_toolkit.sagemaker.jumpstart import (
    build_jumpstart_training_request,
    jumpstart_serving_container,
)
from gt_toolkit.sagemaker.pytorch import (
    PyTorchClassifierHyperparameters,
    build_pytorch_training_request,
)
from gt_toolkit.sagemaker.service_validation import botocore_report
from gt_toolkit.sagemaker.training import build_object_detection_training_request
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import SAMPLES, FakeTime, od_request_args, pytorch_request_args

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"


def queue_endpoint_results(endpoint: str, bodies: list[Any]) -> None:
    payload = {
        "results": [
            {
                "Body": json.dumps(body),
                "ContentType": "application/json",
                "InvokedProductionVariant": "AllTraffic",
                "CustomAttributes": "",
            }
            for body in bodies
        ]
    }
    request = urllib.request.Request(
        endpoint + "/moto-api/static/sagemaker/endpoint-results",
        method="POST",
        headers={"Content-Type": "application/json"},
        data=json.dumps(payload).encode(),
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def trained_job(sm: Any) -> str:
    name = unique("od")
    request = build_object_detection_training_request(**od_request_args(job_name=name))
    sm.create_training_job(**request)
    return name


def test_request_builders_pass_the_service_model() -> None:
    model = build_model_request(
        model_name="m-1",
        image_uri=IMAGE,
        model_data_url="s3://b-k-t/model.tar.gz",
        role_arn=ROLE,
        tags={"p": "balls"},
    )
    config = build_endpoint_config_request(
        config_name="c-1", model_name="m-1", instance_type="ml.g4dn.xlarge"
    )
    endpoint = build_endpoint_request(endpoint_name="e-1", config_name="c-1")
    assert botocore_report("CreateModel", model) == []
    assert botocore_report("CreateEndpointConfig", config) == []
    assert botocore_report("CreateEndpoint", endpoint) == []
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.g4dn.xlarge"


@pytest.mark.parametrize(
    ("builder", "kwargs", "fragment"),
    [
        (
            build_model_request,
            {
                "model_name": "bad_name",
                "image_uri": IMAGE,
                "model_data_url": "s3://b-k-t/m",
                "role_arn": ROLE,
            },
            "ModelName",
        ),
        (
            build_model_request,
            {"model_name": "m", "image_uri": IMAGE, "model_data_url": "ftp://x", "role_arn": ROLE},
            "PrimaryContainer.ModelDataUrl",
        ),
        (
            build_endpoint_config_request,
            {"config_name": "c", "model_name": "m", "instance_type": "ml.huge"},
            "ProductionVariants[0].InstanceType: 'ml.huge' is not one of",
        ),
        (
            build_endpoint_config_request,
            {"config_name": "c", "model_name": "m", "instance_count": 0},
            "InitialInstanceCount",
        ),
        (
            build_endpoint_request,
            {"endpoint_name": "e" * 64, "config_name": "c"},
            "EndpointName: length 64",
        ),
    ],
    ids=["model-name", "model-url", "instance-type", "instance-count", "endpoint-name"],
)
def test_bad_deploy_requests(
    builder: Callable[..., Any], kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError) as info:
        builder(**kwargs)
    assert fragment in str(info.value)


def test_deploy_invoke_and_delete_on_moto(aws: Callable[[str], Any], moto_endpoint: str) -> None:
    sm = aws("sagemaker")
    job = trained_job(sm)
    name = unique("balls")
    sleeps: list[float] = []
    deployment = deploy_training_job(sm, job, endpoint_name=name, sleep=sleeps.append)
    assert deployment == Deployment(name, name, name)
    assert sleeps == []  # moto is InService at once
    model = sm.describe_model(ModelName=name)
    artefact = sm.describe_training_job(TrainingJobName=job)["ModelArtifacts"]["S3ModelArtifacts"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == artefact
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["ExecutionRoleArn"] == ROLE
    assert sm.describe_endpoint(EndpointName=name)["EndpointConfigName"] == name

    # moto's server decodes request bodies as UTF-8 and answers 500 to JPEG/PNG bytes, so the
    # image sent here is a real plain-text PPM (Pillow reads its size); binary images are
    # checked with Stubber in test_invoke_sends_binary_images_as_is.
    width, height = 64, 48
    image = f"P3\n{width} {height}\n255\n".encode() + b"0 0 0\n" * (width * height)
    queue_endpoint_results(
        moto_endpoint,
        [
            {
                "prediction": [
                    [0.0, 0.93, 0.25, 0.5, 0.75, 1.0],
                    [0.0, 0.15, 0.0, 0.0, 0.5, 0.5],  # below the threshold
                    [-1.0, 0.99, 0.0, 0.0, 1.0, 1.0],  # padding row
                    [1.0, 0.60, 0.5, 0.0, 1.2, 0.25],  # leaves the image: clipped
                ]
            }
        ],
    )
    runtime = aws("sagemaker-runtime")
    boxes = invoke_detector(
        runtime,
        name,
        image,
        labels=["ball", "bat"],
        score_threshold=0.2,
        content_type="application/x-image",
    )
    assert [b["label"] for b in boxes] == ["ball", "bat"]
    assert boxes[0]["left"] == pytest.approx(0.25 * width)
    assert boxes[0]["top"] == pytest.approx(0.5 * height)
    assert boxes[0]["width"] == pytest.approx(0.5 * width)
    assert boxes[0]["height"] == pytest.approx(0.5 * height)
    assert boxes[1]["left"] + boxes[1]["width"] == pytest.approx(width)

    assert delete_deployment(sm, deployment) == [
        f"endpoint:{name}",
        f"endpoint-config:{name}",
        f"model:{name}",
    ]
    with pytest.raises(sm.exceptions.ClientError):
        sm.describe_endpoint(EndpointName=name)
    assert delete_deployment(sm, name) == []  # rerunning the cleanup is safe


def test_invoke_classifier_on_moto(aws: Callable[[str], Any], moto_endpoint: str) -> None:
    name = unique("ic")
    queue_endpoint_results(moto_endpoint, [{"prediction": [0.1, 0.7, 0.2]}])
    scores = invoke_classifier(
        aws("sagemaker-runtime"), name, b"P3 1 1 255 0 0 0", labels=["cat", "dog", "fox"], top_k=2
    )
    assert [(s.label, s.probability) for s in scores] == [("dog", 0.7), ("fox", 0.2)]


def test_image_content_type() -> None:
    assert image_content_type((SAMPLES / "images" / "img_000.jpg").read_bytes()) == "image/jpeg"
    assert image_content_type(b"\x89PNG\r\n") == "image/png"
    assert image_content_type(b"GIF89a") == "application/x-image"


def describe_endpoint_response(status: str) -> dict[str, Any]:
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    out: dict[str, Any] = {
        "EndpointName": "ep",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep",
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    if status == "Failed":
        out["FailureReason"] = "The primary container did not pass the ping health check."
    return out


def test_wait_for_endpoint_polls_until_in_service_or_fails() -> None:
    client = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(client) as stubber:
        for status in ("Creating", "Creating", "InService"):
            stubber.add_response(
                "describe_endpoint", describe_endpoint_response(status), {"EndpointName": "ep"}
            )
        fake = FakeTime()
        final = wait_for_endpoint(client, "ep", poll_seconds=15, sleep=fake.sleep, clock=fake.clock)
        assert final["EndpointStatus"] == "InService"
        assert fake.sleeps == [15, 15]
        stubber.add_response(
            "describe_endpoint", describe_endpoint_response("Failed"), {"EndpointName": "ep"}
        )
        with pytest.raises(EndpointFailedError, match="ping health check"):
            wait_for_endpoint(client, "ep", sleep=fake.sleep, clock=fake.clock)
        for _ in range(3):
            stubber.add_response(
                "describe_endpoint", describe_endpoint_response("Creating"), {"EndpointName": "ep"}
            )
        fake = FakeTime()
        with pytest.raises(WaitTimeoutError, match="still Creating after 60 s"):
            wait_for_endpoint(
                client,
                "ep",
                poll_seconds=30,
                timeout_seconds=60,
                sleep=fake.sleep,
                clock=fake.clock,
            )
        stubber.assert_no_pending_responses()


def test_a_deployment_refused_halfway_leaves_nothing_behind(aws: Callable[[str], Any]) -> None:
    # the endpoint is refused after its model and config exist (a quota, a name in use):
    # both are deleted again, and the refusal is what the caller sees
    sm = aws("sagemaker")
    job = trained_job(sm)
    name = unique("halfway")

    def refuse(**_: Any) -> None:
        raise RuntimeError("ResourceLimitExceeded: no more endpoints")

    sm.meta.events.register("before-call.sagemaker.CreateEndpoint", refuse)
    with pytest.raises(RuntimeError, match="ResourceLimitExceeded"):
        deploy_training_job(sm, job, endpoint_name=name, sleep=lambda _: None)
    for call, key in (
        (sm.describe_model, "ModelName"),
        (sm.describe_endpoint_config, "EndpointConfigName"),
    ):
        with pytest.raises(ClientError):
            call(**{key: name})


def test_deploy_refuses_an_unfinished_training_job() -> None:
    client = boto3.client("sagemaker", region_name="us-east-1")
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    with Stubber(client) as stubber:
        stubber.add_response(
            "describe_training_job",
            {
                "TrainingJobName": "od",
                "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/od",
                "ModelArtifacts": {"S3ModelArtifacts": ""},
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Training",
                "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"},
                "ResourceConfig": {
                    "InstanceType": "ml.p3.2xlarge",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 50,
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                "CreationTime": now,
            },
            {"TrainingJobName": "od"},
        )
        with pytest.raises(EndpointFailedError, match="is InProgress, not Completed"):
            deploy_training_job(client, "od", endpoint_name="ep")


def test_bad_endpoint_name_creates_nothing(aws: Callable[[str], Any]) -> None:
    sm = aws("sagemaker")
    job = trained_job(sm)
    with pytest.raises(ValidationError, match="ModelName"):
        deploy_training_job(sm, job, endpoint_name="bad_name!")
    names = [m["ModelName"] for m in sm.list_models()["Models"]]
    assert "bad_name!" not in names


def test_invoke_sends_binary_images_as_is() -> None:
    image = (SAMPLES / "images" / "img_000.jpg").read_bytes()
    from PIL import Image

    with Image.open(SAMPLES / "images" / "img_000.jpg") as img:
        width, height = img.size
    body = json.dumps({"prediction": [[0.0, 0.8, 0.0, 0.0, 0.5, 0.5]]}).encode()
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response(
            "invoke_endpoint",
            {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
            {
                "EndpointName": "ep",
                "Body": image,
                "ContentType": "image/jpeg",
                "Accept": "application/json",
            },
        )
        [box] = invoke_detector(client, "ep", image, labels=["ball"])
        stubber.add_client_error("invoke_endpoint", "ModelError", "Received server error (500)")
        with pytest.raises(GtToolkitError, match="ep refused the request: ModelError"):
            invoke_detector(client, "ep", image)
    assert box["label"] == "ball"
    assert (box["width"], box["height"]) == pytest.approx((width / 2, height / 2))


def test_an_image_of_unknown_size_is_refused_before_the_endpoint_is_called() -> None:
    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:  # no response queued: any call would fail the test
        with pytest.raises(ValidationError, match="cannot read the image size"):
            invoke_detector(client, "ep", b"not an image")
        stubber.assert_no_pending_responses()


# -- script mode and JumpStart ---------------------------------------------------------------


def test_deploy_and_invoke_the_pytorch_classifier(
    aws: Callable[[str], Any], moto_endpoint: str
) -> None:
    sm = aws("sagemaker")
    job = unique("dogs")
    versions = PyTorchClassifierHyperparameters(epochs=2)
    request = build_pytorch_training_request(
        **pytorch_request_args(job_name=job, hyperparameters=versions, framework_version="2.8.0")
    )
    sm.create_training_job(**request)
    name = unique("dogs")
    deploy_training_job(sm, job, endpoint_name=name, instance_type="ml.c5.xlarge")
    model = sm.describe_model(ModelName=name)
    container = model["PrimaryContainer"]
    # 2.8.0 trains, 2.6.0 is the newest serving image before it; the CPU build for ml.c5
    assert container["Image"] == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.6.0-cpu-py312"
    )
    assert container["Environment"] == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": "us-east-1",
    }
    answer = {
        "predictions": [
            {"class_id": 1, "label": "husky", "probability": 0.8},
            {"class_id": 0, "label": "akita", "probability": 0.15},
        ]
    }
    queue_endpoint_results(moto_endpoint, [answer])
    # moto remembers an answer per request body, so each test sends its own image
    scores = invoke_classifier(aws("sagemaker-runtime"), name, b"P3 1 1 255 7 7 7")
    assert [(s.class_id, s.label, s.probability) for s in scores] == [
        (1, "husky", 0.8),
        (0, "akita", 0.15),
    ]


def jumpstart_job(
    sm: Any, store: S3Store, model_id: str, bucket: str, folder: str
) -> tuple[str, dict[str, Any]]:
    """Train ``model_id`` on ``s3://bucket/folder/`` (moto completes it at once)."""
    job = unique(folder)
    request = build_jumpstart_training_request(
        store=store,
        model_id=model_id,
        region="us-east-1",
        job_name=job,
        role_arn=ROLE,
        train_uri=f"s3://{bucket}/{folder}/",
        output_uri=f"s3://{bucket}/models",
    )
    sm.create_training_job(**request)
    return job, request


def test_deploy_and_invoke_a_jumpstart_detector(
    aws: Callable[[str], Any], moto_endpoint: str, jumpstart: S3Store, bucket: str
) -> None:
    jumpstart.put_bytes(f"s3://{bucket}/od/annotations.json", b'{"images": [], "annotations": []}')
    sm = aws("sagemaker")
    job, request = jumpstart_job(sm, jumpstart, "pytorch-od1-fasterrcnn-resnet50-fpn", bucket, "od")
    name = unique("birds")
    with pytest.raises(ValidationError, match="pass store="):
        deploy_training_job(sm, job, endpoint_name=name)
    deploy_training_job(
        sm, job, endpoint_name=name, instance_type="ml.g4dn.xlarge", store=jumpstart
    )
    model = sm.describe_model(ModelName=name)
    assert model["PrimaryContainer"]["Image"].endswith("pytorch-inference:1.10.0-gpu-py38")
    environment = model["PrimaryContainer"]["Environment"]
    assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
    assert environment["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    # moto does not keep EnableNetworkIsolation; the request the deployment built has it
    tags = {t["Key"]: t["Value"] for t in request["Tags"]}
    _, isolated = jumpstart_serving_container(
        jumpstart, region="us-east-1", tags=tags, instance_type="ml.g4dn.xlarge"
    )
    assert isolated is True

    answer = {
        "normalized_boxes": [[0.25, 0.5, 0.75, 1.0], [0.0, 0.0, 0.1, 0.1]],
        "classes": [1.0, 0.0],
        "scores": [0.9, 0.1],
        "labels": ["gull", "tern"],
    }
    queue_endpoint_results(moto_endpoint, [answer])
    width, height = 64, 40
    image = f"P3\n{width} {height}\n255\n".encode() + b"9 9 9\n" * (width * height)
    [box] = invoke_detector(
        aws("sagemaker-runtime"),
        name,
        image,
        accept="application/json;verbose",
        content_type="application/x-image",
    )
    assert (box["label"], box["left"], box["width"]) == ("tern", 16.0, 32.0)


def test_a_jumpstart_model_without_the_prepacked_script_is_not_deployed(
    aws: Callable[[str], Any], jumpstart: S3Store, bucket: str
) -> None:
    spec_key = "community_models/pytorch-ic-resnet18/specs_v3.0.5.json"
    spec = json.loads((SAMPLES / "jumpstart" / "pytorch-ic-resnet18.json").read_text())
    del spec["training_prepacked_script_key"]
    jumpstart.put_bytes(
        f"s3://jumpstart-cache-prod-us-east-1/{spec_key}", json.dumps(spec).encode()
    )
    for key in ("ic/cat/a.jpg", "ic/dog/b.jpg"):
        jumpstart.put_bytes(f"s3://{bucket}/{key}", b"x")
    sm = aws("sagemaker")
    job, _ = jumpstart_job(sm, jumpstart, "pytorch-ic-resnet18", bucket, "ic")
    with pytest.raises(ValidationError, match="holds no inference code"):
        deploy_training_job(sm, job, endpoint_name=unique("storm"), store=jumpstart)


def test_a_foreign_script_is_not_guessed(aws: Callable[[str], Any]) -> None:
    sm = aws("sagemaker")
    job = unique("own")
    request = build_pytorch_training_request(**pytorch_request_args(job_name=job))
    request["HyperParameters"]["sagemaker_program"] = '"my_train.py"'
    sm.create_training_job(**request)
    with pytest.raises(ValidationError, match=r"was not trained by the shipped train\.py"):
        deploy_training_job(sm, job, endpoint_name=unique("own"))


def test_a_script_job_older_than_every_serving_image_is_refused_and_creates_nothing(
    aws: Callable[[str], Any],
) -> None:
    """image_uri= may name a training image older than any serving image: a ValueError before."""
    sm = aws("sagemaker")
    job = unique("old")
    image = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.1.0-gpu-py310"
    request = build_pytorch_training_request(**pytorch_request_args(job_name=job, image_uri=image))
    sm.create_training_job(**request)
    name = unique("old")
    with pytest.raises(ValidationError, match=r"trained in PyTorch 2\.1\.0, older than every"):
        deploy_training_job(sm, job, endpoint_name=name)
    assert name not in [m["ModelName"] for m in sm.list_models()["Models"]]
