"""Deploy the pre- and post-annotation Lambdas in one call: IAM role + both functions.

:func:`deploy_lambdas` creates, or updates in place, an execution role (Lambda trust,
CloudWatch Logs, S3 read on the job's output bucket, and ``sts:AssumeRole`` on the labeling
role when given) and the two functions, and returns their ARNs for the labeling-job request.
Function names contain ``SageMaker`` because the ``AmazonSageMakerGroundTruthExecution``
managed policy may invoke only ``*GtRecipe*``, ``*LabelingFunction*``, ``*SageMaker*``,
``*sagemaker*`` or ``*Sagemaker*`` functions (``docs/ground-truth-formats.md`` §3).

Teams deploying through infrastructure as code use ``lambdas/template.yaml`` (CloudFormation)
instead; both make the same resources.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gt_toolkit.errors import StorageError, ValidationError

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient

__all__ = [
    "INVOKABLE_NAME_PARTS",
    "DeployedLambdas",
    "build_lambda_role_policy",
    "deploy_lambdas",
    "lambda_trust_policy",
]

INVOKABLE_NAME_PARTS = ("GtRecipe", "LabelingFunction", "SageMaker", "sagemaker", "Sagemaker")
"""Literal name parts the Ground Truth execution policy lets a job invoke."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_POLICY_NAME = "gt-toolkit-lambdas"
_MAX_INLINE_ZIP = 50 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DeployedLambdas:
    """The ARNs for the labeling-job request, and the role the functions run as.

    ``pre_annotation_arn`` goes to ``PreHumanTaskLambdaArn``, ``post_annotation_arn`` to
    ``AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn``.
    """

    pre_annotation_arn: str
    post_annotation_arn: str
    role_arn: str


def lambda_trust_policy() -> dict[str, Any]:
    """The role's trust policy: Lambda may assume it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def build_lambda_role_policy(
    *,
    read_buckets: Sequence[str],
    labeling_role_arn: str | None = None,
    partition: str = "aws",
) -> dict[str, Any]:
    """The inline policy: logs, read (and list) on the buckets, optional AssumeRole.

    Read-only on purpose: the handlers never write to S3.
    """
    statements: list[dict[str, Any]] = [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:{partition}:logs:*:*:*",
        },
        {
            "Sid": "ReadJobData",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"arn:{partition}:s3:::{b}/*" for b in read_buckets],
        },
        {
            "Sid": "ListJobData",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [f"arn:{partition}:s3:::{b}" for b in read_buckets],
        },
    ]
    if labeling_role_arn:
        statements.append(
            {
                "Sid": "ReadAsTheLabelingRole",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": labeling_role_arn,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _ensure_role(
    iam: IAMClient, role_name: str, policy: Mapping[str, Any], description: str
) -> str:
    trust = json.dumps(lambda_trust_policy())
    try:
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=trust)
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=trust, Description=description
        )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=role_name, PolicyName=_POLICY_NAME, PolicyDocument=json.dumps(policy)
    )
    return arn


def _wait_updated(
    client: LambdaClient, name: str, sleep: Callable[[float], None], timeout: float
) -> None:
    """Wait while a function update is in progress (the next update would be refused)."""
    deadline = time.monotonic() + timeout
    while True:
        config = client.get_function_configuration(FunctionName=name)
        if config.get("LastUpdateStatus", "Successful") != "InProgress" and (
            config.get("State", "Active") != "Pending"
        ):
            if config.get("LastUpdateStatus") == "Failed":
                raise StorageError(
                    f"updating {name} failed: {config.get('LastUpdateStatusReason', '')}"
                )
            return
        if time.monotonic() > deadline:
            raise StorageError(f"{name} is still updating after {timeout:.0f} s")
        sleep(2.0)


def _upsert_function(
    client: LambdaClient,
    *,
    name: str,
    handler: str,
    role_arn: str,
    code: dict[str, Any],
    architecture: Literal["x86_64", "arm64"],
    settings: dict[str, Any],
    sleep: Callable[[float], None],
    wait_timeout: float,
) -> str:
    try:
        client.get_function(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        exists = False
    else:
        exists = True
    config: dict[str, Any] = {"Role": role_arn, "Handler": handler, **settings}
    if exists:
        client.update_function_code(FunctionName=name, Architectures=[architecture], **code)
        _wait_updated(client, name, sleep, wait_timeout)
        arn = client.update_function_configuration(FunctionName=name, **config)["FunctionArn"]
        _wait_updated(client, name, sleep, wait_timeout)
        return arn
    # A new role takes a few seconds to become assumable by Lambda (IAM is eventually
    # consistent): retry that one error with backoff.
    delay = 2.0
    deadline = time.monotonic() + wait_timeout
    while True:
        try:
            return client.create_function(
                FunctionName=name,
                Code=code,  # type: ignore[arg-type]  # ZipFile or S3Bucket/S3Key, built above
                Architectures=[architecture],
                **config,
            )["FunctionArn"]
        except client.exceptions.InvalidParameterValueException as exc:
            if "assume" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            sleep(delay)
            delay = min(delay * 1.5, 10.0)


def deploy_lambdas(
    zip_file: str | Path | bytes,
    *,
    iam_client: IAMClient,
    lambda_client: LambdaClient,
    output_bucket: str,
    name_prefix: str = "gt-toolkit",
    role_name: str | None = None,
    labeling_role_arn: str | None = None,
    read_buckets: Sequence[str] = (),
    pre_environment: Mapping[str, str] | None = None,
    post_environment: Mapping[str, str] | None = None,
    runtime: str = "python3.12",
    architecture: Literal["x86_64", "arm64"] = "x86_64",
    memory_mb: int = 512,
    timeout_s: int = 300,
    code_s3_uri: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    wait_timeout: float = 120.0,
) -> DeployedLambdas:
    """Create or update the execution role and both Lambda functions.

    Args:
        zip_file: the zip from :func:`gt_toolkit.sagemaker.lambda_zip.build_lambda_zip` (path or
            bytes), built for the same ``runtime`` and ``architecture``.
        output_bucket: the job's output bucket, where the post-annotation payload lives.
        name_prefix: the functions are ``<prefix>-SageMaker-pre-annotation`` and
            ``<prefix>-SageMaker-post-annotation``; the role defaults to
            ``<prefix>-SageMaker-lambda-role``.
        labeling_role_arn: the job's ``RoleArn``; when given, the post-annotation Lambda
            reads as that role (``GT_ASSUME_ROLE=true``) and may assume it. That role's
            trust policy must also allow this Lambda role.
        read_buckets: more buckets to read (for example the one holding the label file).
        pre_environment: variables for the pre-annotation Lambda (``GT_LABELS``,
            ``GT_HEADER``, ``GT_LABELS_S3_URI``, ``GT_SKIP_MIN_CONFIDENCE``, ...).
        post_environment: variables for the post-annotation Lambda (``GT_IOU_THRESHOLD``,
            ``GT_MIN_SUPPORT``, ``GT_FUSION``, ``GT_QUORUM``, ...).
        code_s3_uri: where the zip was uploaded, for zips above the 50 MB direct limit.
        sleep: injectable for tests; used while IAM or an update settles.

    Returns:
        The two function ARNs and the role ARN.

    Raises:
        ValidationError: a name that Lambda refuses or that the Ground Truth execution
            policy could not invoke; a zip too big to upload directly.
    """
    # Imported here so `python -m gt_toolkit.sagemaker.lambda_zip` does not find it pre-imported.
    from gt_toolkit.sagemaker.lambda_zip import HANDLERS

    pre_name = f"{name_prefix}-SageMaker-pre-annotation"
    post_name = f"{name_prefix}-SageMaker-post-annotation"
    role = role_name or f"{name_prefix}-SageMaker-lambda-role"
    problems = [
        f"function name {n!r} must be 1-64 letters, digits, '-' or '_'"
        for n in (pre_name, post_name)
        if not _NAME_RE.match(n)
    ]
    if code_s3_uri is not None:
        from gt_toolkit.storage.s3 import parse_s3_uri

        bucket, key = parse_s3_uri(code_s3_uri)
        code: dict[str, Any] = {"S3Bucket": bucket, "S3Key": key}
    else:
        data = zip_file if isinstance(zip_file, bytes) else Path(zip_file).read_bytes()
        if len(data) > _MAX_INLINE_ZIP:
            problems.append(
                f"the zip is {len(data) / 1e6:.1f} MB, over Lambda's 50 MB direct upload: "
                "upload it to S3 and pass code_s3_uri"
            )
        code = {"ZipFile": data}
    if problems:
        raise ValidationError(problems, what="Lambda deployment")
    policy = build_lambda_role_policy(
        read_buckets=list(dict.fromkeys([output_bucket, *read_buckets])),
        labeling_role_arn=labeling_role_arn,
    )
    role_arn = _ensure_role(
        iam_client, role, policy, "gt-toolkit Ground Truth pre/post-annotation Lambdas"
    )
    post_env = dict(post_environment or {})
    if labeling_role_arn:
        post_env.setdefault("GT_ASSUME_ROLE", "true")
    arns = []
    for name, handler, env, description in (
        (pre_name, HANDLERS["pre"], dict(pre_environment or {}), "Ground Truth pre-annotation"),
        (post_name, HANDLERS["post"], post_env, "Ground Truth consolidation"),
    ):
        settings: dict[str, Any] = {
            "Runtime": runtime,
            "Timeout": timeout_s,
            "MemorySize": memory_mb,
            "Environment": {"Variables": env},
            "Description": f"{description} (gt-toolkit)",
        }
        arn = _upsert_function(
            lambda_client,
            name=name,
            handler=handler,
            role_arn=role_arn,
            code=code,
            architecture=architecture,
            settings=settings,
            sleep=sleep,
            wait_timeout=wait_timeout,
        )
        arns.append(arn)
    return DeployedLambdas(
        pre_annotation_arn=arns[0], post_annotation_arn=arns[1], role_arn=role_arn
    )
