"""Deploy a trained model, ask it about images, and clean up.

Three requests (CreateModel, CreateEndpointConfig, CreateEndpoint) built from a finished
training job and validated against botocore's model before anything is created, a wait with
an injectable clock, invoke helpers that return Ground Truth shaped boxes
(:mod:`gt_toolkit.sagemaker.predictions`), and :func:`delete_deployment`, which also removes the
model and config so an experiment leaves nothing billing behind.

The serving container depends on how the job trained (``docs/training.md``): a built-in
algorithm serves from its training image; the shipped PyTorch script from the matching
``pytorch-inference`` image with ``SAGEMAKER_PROGRAM=inference.py`` (the code is in the model
archive); a JumpStart model from its spec's serving image and environment.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from gt_toolkit.errors import (
    EndpointFailedError,
    GtToolkitError,
    ValidationError,
    WaitTimeoutError,
)
from gt_toolkit.sagemaker.job_kinds import job_kind
from gt_toolkit.sagemaker.jumpstart import jumpstart_serving_container
from gt_toolkit.sagemaker.predictions import ClassScore, decode_classification, decode_detections
from gt_toolkit.sagemaker.pytorch import pytorch_serving_container
from gt_toolkit.sagemaker.service_validation import check_request
from gt_toolkit.sagemaker.tags import tag_list, tag_map
from gt_toolkit.storage.image_mirror import read_image_size
from gt_toolkit.storage.s3 import S3Store
from gt_toolkit.types import ConsolidatedBox, ImageSize

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sagemaker_runtime import SageMakerRuntimeClient

__all__ = [
    "Deployment",
    "build_endpoint_config_request",
    "build_endpoint_request",
    "build_model_request",
    "delete_deployment",
    "deploy_training_job",
    "image_content_type",
    "invoke_classifier",
    "invoke_detector",
    "wait_for_endpoint",
]

_IMAGE_TYPES: Final = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG": "image/png"}


@dataclass(frozen=True, slots=True)
class Deployment:
    """The three resources one deployment creates (delete them together)."""

    model_name: str
    endpoint_config_name: str
    endpoint_name: str


def _checked(
    operation: str, request: dict[str, Any], tags: Mapping[str, str] | None
) -> dict[str, Any]:
    """``request`` with its ``Tags``, once it passes the service model."""
    if tags:
        request["Tags"] = tag_list(tags)
    check_request(operation, request)
    return request


def build_model_request(
    *,
    model_name: str,
    image_uri: str,
    model_data_url: str,
    role_arn: str,
    environment: Mapping[str, str] | None = None,
    network_isolation: bool = False,
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """CreateModel kwargs for a trained artefact (validated).

    ``environment`` is the serving container's (``SAGEMAKER_PROGRAM``…); ``network_isolation``
    sets ``EnableNetworkIsolation`` (JumpStart models ask for it).
    """
    container: dict[str, Any] = {"Image": image_uri, "ModelDataUrl": model_data_url}
    if environment:
        container["Environment"] = dict(environment)
    request: dict[str, Any] = {
        "ModelName": model_name,
        "PrimaryContainer": container,
        "ExecutionRoleArn": role_arn,
    }
    if network_isolation:
        request["EnableNetworkIsolation"] = True
    return _checked("CreateModel", request, tags)


def build_endpoint_config_request(
    *,
    config_name: str,
    model_name: str,
    instance_type: str = "ml.m5.xlarge",
    instance_count: int = 1,
    variant_name: str = "AllTraffic",
    tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """CreateEndpointConfig kwargs with one production variant (validated)."""
    request: dict[str, Any] = {
        "EndpointConfigName": config_name,
        "ProductionVariants": [
            {
                "VariantName": variant_name,
                "ModelName": model_name,
                "InitialInstanceCount": instance_count,
                "InstanceType": instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
    }
    return _checked("CreateEndpointConfig", request, tags)


def build_endpoint_request(
    *, endpoint_name: str, config_name: str, tags: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """CreateEndpoint kwargs (validated)."""
    request: dict[str, Any] = {"EndpointName": endpoint_name, "EndpointConfigName": config_name}
    return _checked("CreateEndpoint", request, tags)


def deploy_training_job(
    sagemaker: SageMakerClient,
    training_job_name: str,
    *,
    endpoint_name: str,
    instance_type: str = "ml.m5.xlarge",
    instance_count: int = 1,
    role_arn: str | None = None,
    store: S3Store | None = None,
    tags: Mapping[str, str] | None = None,
    wait: bool = True,
    poll_seconds: float = 30.0,
    timeout_seconds: float | None = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Deployment:
    """Create model, endpoint config and endpoint (all named ``endpoint_name``) from a job.

    The three requests are built and validated first, so a bad name or instance type
    creates nothing. The role defaults to the training job's; the serving container follows
    from how the job trained (see the module docstring). ``store`` reads the model spec of a
    JumpStart job from ``jumpstart-cache-prod-<region>``.

    Raises:
        EndpointFailedError: the training job has not completed, or the endpoint failed.
        ValidationError: a request breaks the service model, or the job's serving container
            cannot be known (a script other than the shipped one, a JumpStart job without
            ``store``).
    """
    job = sagemaker.describe_training_job(TrainingJobName=training_job_name)
    status = job.get("TrainingJobStatus")
    if status != "Completed":
        raise EndpointFailedError(
            f"training job {training_job_name} is {status}, not Completed: nothing to deploy"
        )
    artefact = (job.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    image = (job.get("AlgorithmSpecification") or {}).get("TrainingImage")
    if not artefact or not image:
        raise EndpointFailedError(
            f"training job {training_job_name} has no model artefact or image"
        )
    container, isolated = _serving_container(
        sagemaker, job, instance_type=instance_type, store=store
    )
    model = build_model_request(
        model_name=endpoint_name,
        image_uri=container["Image"],
        model_data_url=artefact,
        role_arn=role_arn or job["RoleArn"],
        environment=container.get("Environment"),
        network_isolation=isolated,
        tags=tags,
    )
    config = build_endpoint_config_request(
        config_name=endpoint_name,
        model_name=endpoint_name,
        instance_type=instance_type,
        instance_count=instance_count,
        tags=tags,
    )
    endpoint = build_endpoint_request(
        endpoint_name=endpoint_name, config_name=endpoint_name, tags=tags
    )
    _create_all(sagemaker, model, config, endpoint)
    deployment = Deployment(endpoint_name, endpoint_name, endpoint_name)
    if wait:
        wait_for_endpoint(
            sagemaker,
            endpoint_name,
            poll_seconds=poll_seconds,
            timeout_seconds=timeout_seconds,
            sleep=sleep,
            clock=clock,
        )
    return deployment


def _create_all(
    sagemaker: SageMakerClient,
    model: Mapping[str, Any],
    config: Mapping[str, Any],
    endpoint: Mapping[str, Any],
) -> None:
    """Create the model, its endpoint config and the endpoint, or none of them.

    When a later call is refused (a name taken, a quota), the resources created before it
    are deleted again (best effort), so a failed deployment leaves nothing to clean up by
    hand; the refusal is what is raised.
    """
    undo: list[Any] = []
    try:
        sagemaker.create_model(**model)
        undo.append(lambda: sagemaker.delete_model(ModelName=model["ModelName"]))
        sagemaker.create_endpoint_config(**config)
        undo.append(
            lambda: sagemaker.delete_endpoint_config(
                EndpointConfigName=config["EndpointConfigName"]
            )
        )
        sagemaker.create_endpoint(**endpoint)
    except BaseException:
        for step in reversed(undo):
            with contextlib.suppress(Exception):
                step()
        raise


def _serving_container(
    sagemaker: SageMakerClient,
    job: Mapping[str, Any],
    *,
    instance_type: str,
    store: S3Store | None,
) -> tuple[dict[str, Any], bool]:
    """The ``PrimaryContainer`` parts and network isolation for the way ``job`` trained."""
    image = str(job["AlgorithmSpecification"]["TrainingImage"])
    if job_kind(job) == "builtin":
        return {"Image": image}, False
    tag_pairs = sagemaker.list_tags(ResourceArn=job["TrainingJobArn"]).get("Tags", [])
    tags = tag_map(tag_pairs)
    if job_kind({**job, "Tags": tag_pairs}) == "script":
        return pytorch_serving_container(job, instance_type=instance_type), False
    if store is None:
        raise ValidationError(
            ["a JumpStart job: pass store=S3Store(...) to read its model spec"], what="deployment"
        )
    region = str(job["TrainingJobArn"]).split(":")[3]
    return jumpstart_serving_container(store, region=region, tags=tags, instance_type=instance_type)


def wait_for_endpoint(
    sagemaker: SageMakerClient,
    endpoint_name: str,
    *,
    poll_seconds: float = 30.0,
    timeout_seconds: float | None = 3600.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll ``describe_endpoint`` until ``InService``; returns the last description.

    Raises:
        EndpointFailedError: the endpoint ended ``Failed`` (with SageMaker's reason).
        WaitTimeoutError: not in service after ``timeout_seconds``.
    """
    started = clock()
    while True:
        description: dict[str, Any] = dict(sagemaker.describe_endpoint(EndpointName=endpoint_name))
        status = description.get("EndpointStatus")
        if status == "InService":
            return description
        if status == "Failed":
            raise EndpointFailedError(
                f"endpoint {endpoint_name} failed: {description.get('FailureReason', 'no reason')}"
            )
        if timeout_seconds is not None and clock() - started >= timeout_seconds:
            raise WaitTimeoutError(
                f"endpoint {endpoint_name} still {status} after {timeout_seconds:g} s"
            )
        sleep(poll_seconds)


def image_content_type(image: bytes) -> str:
    """``image/jpeg`` or ``image/png`` from the magic bytes; ``application/x-image`` otherwise."""
    for magic, kind in _IMAGE_TYPES.items():
        if image.startswith(magic):
            return kind
    return "application/x-image"


def _image_size(image: bytes) -> ImageSize:
    """Pixel size read from the image header (:func:`read_image_size`), as stored.

    Not turned by its EXIF orientation: the endpoint gets the raw bytes, and whether its
    decoder turns them (OpenCV does, TensorFlow's ``decode_jpeg`` does not) is the model's.
    """
    size = read_image_size(image, upright=False)
    if size is None:
        raise ValidationError(
            ["cannot read the image size: pass image_size"], what="invoke request"
        )
    return size


def _invoke(
    runtime: SageMakerRuntimeClient,
    endpoint_name: str,
    image: bytes,
    content_type: str | None,
    accept: str,
) -> bytes:
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            Body=image,
            ContentType=content_type or image_content_type(image),
            Accept=accept,
        )
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise GtToolkitError(
            f"endpoint {endpoint_name} refused the request: {err.get('Code')}: {err.get('Message')}"
        ) from exc
    return response["Body"].read()


def invoke_detector(
    runtime: SageMakerRuntimeClient,
    endpoint_name: str,
    image: bytes,
    *,
    image_size: ImageSize | tuple[int, int] | None = None,
    labels: Sequence[str] | Mapping[int, str] | None = None,
    score_threshold: float = 0.2,
    top_k: int | None = None,
    content_type: str | None = None,
    accept: str = "application/json",
) -> list[ConsolidatedBox]:
    """Send one image to an object-detection endpoint; return pixel boxes, best first.

    ``image_size`` defaults to the image's own size (read with Pillow). Reads the built-in
    detector's answer and JumpStart's; ask JumpStart with ``accept="application/json;verbose"``
    to have its class names in the answer. The size is read first: an image whose size cannot
    be read is refused before the endpoint is paid to answer.
    """
    size = image_size if image_size is not None else _image_size(image)
    body = _invoke(runtime, endpoint_name, image, content_type, accept)
    return decode_detections(
        body, image_size=size, labels=labels, score_threshold=score_threshold, top_k=top_k
    )


def invoke_classifier(
    runtime: SageMakerRuntimeClient,
    endpoint_name: str,
    image: bytes,
    *,
    labels: Sequence[str] | Mapping[int, str] | None = None,
    top_k: int | None = None,
    content_type: str | None = None,
    accept: str = "application/json",
) -> list[ClassScore]:
    """Send one image to an image-classification endpoint; classes, most likely first.

    Reads the built-in classifier's answer, JumpStart's (``accept="application/json;verbose"``
    adds its class names) and the shipped PyTorch classifier's top-k answer.
    """
    body = _invoke(runtime, endpoint_name, image, content_type, accept)
    return decode_classification(body, labels=labels, top_k=top_k)


def _gone(exc: ClientError) -> bool:
    err = exc.response.get("Error", {})
    message = str(err.get("Message", "")).lower()
    return err.get("Code") in ("ValidationException", "ResourceNotFound") and (
        "could not find" in message or "does not exist" in message or "not found" in message
    )


def delete_deployment(sagemaker: SageMakerClient, deployment: Deployment | str) -> list[str]:
    """Delete the endpoint, its config and its model; missing ones are skipped.

    Returns what was actually deleted (``"endpoint:<name>"``…), so cleanup can be rerun safely.
    """
    if isinstance(deployment, str):
        deployment = Deployment(deployment, deployment, deployment)
    deleted: list[str] = []
    steps: list[tuple[str, Callable[[], object]]] = [
        ("endpoint", lambda: sagemaker.delete_endpoint(EndpointName=deployment.endpoint_name)),
        (
            "endpoint-config",
            lambda: sagemaker.delete_endpoint_config(
                EndpointConfigName=deployment.endpoint_config_name
            ),
        ),
        ("model", lambda: sagemaker.delete_model(ModelName=deployment.model_name)),
    ]
    names = {
        "endpoint": deployment.endpoint_name,
        "endpoint-config": deployment.endpoint_config_name,
        "model": deployment.model_name,
    }
    for kind, call in steps:
        try:
            call()
        except ClientError as exc:
            if _gone(exc):
                continue
            raise
        deleted.append(f"{kind}:{names[kind]}")
    return deleted
