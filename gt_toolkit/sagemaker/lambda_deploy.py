"""Deploy the pre- and post-annotation Lambdas in one call: a role each, then both functions.

:func:`deploy_lambdas` creates, or updates in place, one execution role per function, each
allowed only what its function does (least privilege):

* both write logs to their own log group, ``/aws/lambda/<function>``, and nowhere else;
* the pre-annotation function reads nothing but the label category file, when one is set
  (``GT_LABELS_S3_URI``): it never sees the workers' answers;
* the post-annotation function reads the job's output prefix (payload and answers) and, with
  a labeling role, may assume that role; it then asks STS for a session narrowed by
  :func:`gt_toolkit.storage.assumed_role.read_prefix_policy` to the same prefix
  (``GT_ASSUME_ROLE_READ_PREFIX``), so it never reads more than its own role could;
* with the job's output KMS key (``OutputConfig.KmsKeyId``, a customer-managed key), the
  post-annotation function, and the session it assumes (``GT_OUTPUT_KMS_KEY_ARN``), may
  decrypt with that one key, through S3 only
  (:func:`gt_toolkit.storage.assumed_role.kms_decrypt_statement`).

The functions are created with the architecture and Python the zip was built for (recorded in
it by :func:`gt_toolkit.sagemaker.lambda_zip.build_lambda_zip`). Their names contain
``SageMaker`` because the ``AmazonSageMakerGroundTruthExecution`` managed policy may invoke only
``*GtRecipe*``, ``*LabelingFunction*``, ``*SageMaker*``, ``*sagemaker*`` or ``*Sagemaker*``
functions (``docs/ground-truth-formats.md`` §3).

Teams deploying through infrastructure as code use ``lambdas/template.yaml`` (CloudFormation)
instead; both make the same resources with the same policies.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from gt_toolkit.errors import GtToolkitError, S3UriError, StorageError, ValidationError
from gt_toolkit.sagemaker.regions import parse_arn, region_partition
from gt_toolkit.storage.assumed_role import kms_decrypt_statement, read_prefix_policy
from gt_toolkit.storage.s3 import parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient

    from gt_toolkit.sagemaker.lambda_zip import LambdaTarget, LambdaZip

__all__ = [
    "OUTPUT_KMS_KEY_VARIABLE",
    "READ_PREFIX_VARIABLE",
    "DeployedLambdas",
    "LambdaNames",
    "build_lambda_role_policy",
    "deploy_lambdas",
    "lambda_trust_policy",
    "log_group_arn",
]

READ_PREFIX_VARIABLE: Final = "GT_ASSUME_ROLE_READ_PREFIX"
"""The post-annotation function's variable naming the prefix its assumed session may read."""

OUTPUT_KMS_KEY_VARIABLE: Final = "GT_OUTPUT_KMS_KEY_ARN"
"""The post-annotation function's variable naming the key its assumed session may decrypt with."""

_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_POLICY_NAME = "gt-toolkit-lambda"
_MAX_INLINE_ZIP = 50 * 1024 * 1024
_MEMORY_MB: Final = (128, 10240)
_TIMEOUT_S: Final = (1, 900)
_VARIABLE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]+")
_MAX_VARIABLES = 4 * 1024


@dataclass(frozen=True, slots=True)
class DeployedLambdas:
    """The ARNs for the labeling-job request, and the role each function runs as.

    ``pre_annotation_arn`` goes to ``PreHumanTaskLambdaArn``, ``post_annotation_arn`` to
    ``AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn``. With a labeling role,
    that role's trust policy must allow ``post_annotation_role_arn``.
    """

    pre_annotation_arn: str
    post_annotation_arn: str
    pre_annotation_role_arn: str
    post_annotation_role_arn: str


@dataclass(frozen=True, slots=True)
class LambdaNames:
    """The functions' and roles' names for a prefix (the template uses the same ones)."""

    prefix: str

    @property
    def pre(self) -> str:
        """The pre-annotation function."""
        return f"{self.prefix}-SageMaker-pre-annotation"

    @property
    def post(self) -> str:
        """The post-annotation (consolidation) function."""
        return f"{self.prefix}-SageMaker-post-annotation"

    @staticmethod
    def role(function_name: str) -> str:
        """The execution role of ``function_name``."""
        return f"{function_name}-role"


def lambda_trust_policy() -> dict[str, Any]:
    """The roles' trust policy: Lambda may assume them."""
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


def log_group_arn(function_name: str, *, region: str, account: str) -> str:
    """The ARN of the log group Lambda writes ``function_name``'s logs to."""
    partition = region_partition(region)
    return f"arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{function_name}"


def build_lambda_role_policy(
    *,
    function_name: str,
    region: str,
    account: str,
    read_object_uri: str | None = None,
    read_prefix_uri: str | None = None,
    labeling_role_arn: str | None = None,
    kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """One function's inline policy: its own logs, and only the reads it needs.

    Args:
        function_name: logs are allowed on ``/aws/lambda/<function_name>`` only.
        read_object_uri: the one file the function reads at cold start (the label category
            file, the worker table).
        read_prefix_uri: a prefix whose objects the function reads (the job's output).
        labeling_role_arn: a role the function may assume.
        kms_key_arn: a KMS key the function may decrypt with, through S3 only.
    """
    group = log_group_arn(function_name, region=region, account=account)
    partition = region_partition(region)
    statements: list[dict[str, Any]] = [
        {
            "Sid": "OwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [group, f"{group}:*"],
        }
    ]
    if read_object_uri is not None:
        bucket, key = parse_s3_uri(read_object_uri)
        statements.append(
            {
                "Sid": "ReadColdStartFile",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:{partition}:s3:::{bucket}/{key}",
            }
        )
    if read_prefix_uri is not None:
        statements.extend(read_prefix_policy(read_prefix_uri, partition=partition)["Statement"])
    if labeling_role_arn is not None:
        statements.append(
            {
                "Sid": "ReadAsTheLabelingRole",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": labeling_role_arn,
            }
        )
    if kms_key_arn is not None:
        statements.append(kms_decrypt_statement(kms_key_arn))
    return {"Version": "2012-10-17", "Statement": statements}


def _output_prefix_uri(bucket: str, prefix: str, problems: list[str]) -> str:
    """``s3://bucket/prefix/`` after refusing wildcards and slashes in the bucket name.

    A ``*`` bucket would grant read on every bucket; a prefix is a folder (``jobs`` reads
    ``jobs/``, not ``jobs-old/``).
    """
    if "/" in bucket or not bucket:
        problems.append(f"output_bucket must be a bucket name alone, got {bucket!r}")
        return ""
    folder = prefix.strip("/")
    uri = f"s3://{bucket}/{folder}/" if folder else f"s3://{bucket}/"
    try:
        read_prefix_policy(uri)
    except S3UriError as exc:
        problems.append(f"output_bucket/output_prefix: {exc}")
    return uri


def _zip_code(
    zip_file: str | Path | bytes | LambdaZip, code_s3_uri: str | None, problems: list[str]
) -> tuple[dict[str, Any], LambdaTarget | None]:
    """``Code`` for Lambda and the target the zip records (``None`` after a problem)."""
    from gt_toolkit.sagemaker.lambda_zip import LambdaZip, check_unzipped_size, read_lambda_target

    source: str | Path | bytes = zip_file.path if isinstance(zip_file, LambdaZip) else zip_file
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    target: LambdaTarget | None = None
    try:
        target = read_lambda_target(data)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:  # readable: read_lambda_target read it
            check_unzipped_size(sum(info.file_size for info in zf.infolist()))
    except GtToolkitError as exc:
        problems.append(str(exc))
    if code_s3_uri is not None:
        bucket, key = parse_s3_uri(code_s3_uri)
        return {"S3Bucket": bucket, "S3Key": key}, target
    if len(data) > _MAX_INLINE_ZIP:
        problems.append(
            f"the zip is {len(data) / 1e6:.1f} MB, over Lambda's 50 MB direct upload: "
            "upload it to S3 and pass code_s3_uri"
        )
    return {"ZipFile": data}, target


def _ensure_role(iam: IAMClient, role_name: str, description: str) -> tuple[str, bool]:
    """Create the role, or reset the trust policy of the existing one; its ARN, and if new."""
    trust = json.dumps(lambda_trust_policy())
    try:
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=trust)
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(
            RoleName=role_name, AssumeRolePolicyDocument=trust, Description=description
        )["Role"]["Arn"]
        return arn, True
    return arn, False


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
    code: dict[str, Any],
    target: LambdaTarget,
    config: dict[str, Any],
    sleep: Callable[[float], None],
    wait_timeout: float,
) -> tuple[str, bool]:
    """Create the function, or update its code and configuration in place; its ARN, if new."""
    config = {"Runtime": target.runtime, **config}
    architectures: list[Any] = [target.architecture]
    try:
        client.get_function(FunctionName=name)
    except client.exceptions.ResourceNotFoundException:
        pass
    else:
        client.update_function_code(FunctionName=name, Architectures=architectures, **code)
        _wait_updated(client, name, sleep, wait_timeout)
        arn = client.update_function_configuration(FunctionName=name, **config)["FunctionArn"]
        _wait_updated(client, name, sleep, wait_timeout)
        return arn, False
    # A new role takes a few seconds to become assumable by Lambda (IAM is eventually
    # consistent): retry that one error with backoff.
    delay = 2.0
    deadline = time.monotonic() + wait_timeout
    while True:
        try:
            return client.create_function(
                FunctionName=name,
                Code=code,  # type: ignore[arg-type]  # ZipFile or S3Bucket/S3Key, built above
                Architectures=architectures,
                **config,
            )["FunctionArn"], True
        except client.exceptions.InvalidParameterValueException as exc:
            if "assume" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            sleep(delay)
            delay = min(delay * 1.5, 10.0)


@dataclass(frozen=True, slots=True)
class _Deployment:
    """What both functions share: the clients, the code and its target, the settings."""

    iam: IAMClient
    lam: LambdaClient
    code: dict[str, Any]
    target: LambdaTarget
    settings: Mapping[str, Any]
    sleep: Callable[[float], None]
    wait_timeout: float
    created: list[tuple[str, str]] = field(default_factory=list)
    """``("role" | "function", name)`` of what this deployment created, in order."""

    def function(
        self, name: str, handler: str, env: Mapping[str, str], description: str, **grants: Any
    ) -> tuple[str, str]:
        """Deploy one role with its own policy, then its function; ``(function, role)`` ARNs."""
        role_name = LambdaNames.role(name)
        role_arn, new_role = _ensure_role(self.iam, role_name, description)
        if new_role:
            self.created.append(("role", role_name))
        parsed = parse_arn(role_arn)
        policy = build_lambda_role_policy(
            function_name=name,
            region=self.lam.meta.region_name,
            account=parsed.account if parsed is not None else "",
            **grants,
        )
        self.iam.put_role_policy(
            RoleName=role_name, PolicyName=_POLICY_NAME, PolicyDocument=json.dumps(policy)
        )
        config = {
            **self.settings,
            "Role": role_arn,
            "Handler": handler,
            "Environment": {"Variables": dict(env)},
            "Description": description,
        }
        arn, new_function = _upsert_function(
            self.lam,
            name=name,
            code=self.code,
            target=self.target,
            config=config,
            sleep=self.sleep,
            wait_timeout=self.wait_timeout,
        )
        if new_function:
            self.created.append(("function", name))
        return arn, role_arn

    def undo(self, failure: BaseException) -> None:
        """Delete what this deployment created, newest first, after ``failure``.

        A deployment that fails halfway leaves nothing new behind (a role without its
        function, a pre-annotation function without its partner). Functions and roles that
        existed before are left as they are: their previous settings are not recorded. What
        cannot be deleted is named in a note on ``failure``.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        for kind, name in reversed(self.created):
            try:
                if kind == "function":
                    self.lam.delete_function(FunctionName=name)
                else:
                    with contextlib.suppress(self.iam.exceptions.NoSuchEntityException):
                        self.iam.delete_role_policy(RoleName=name, PolicyName=_POLICY_NAME)
                    self.iam.delete_role(RoleName=name)
            except (BotoCoreError, ClientError) as exc:  # keep undoing; report every leftover
                failure.add_note(f"could not delete the {kind} {name} this deployment made: {exc}")
        self.created.clear()


def _labeling_role_problems(arn: str | None) -> list[str]:
    """The role to assume must be one IAM role: a wildcard would allow assuming any."""
    parsed = parse_arn(arn) if arn else None
    if arn is None or (
        parsed is not None
        and parsed.service == "iam"
        and parsed.resource.startswith("role/")
        and not any(c in arn for c in "*?")
    ):
        return []
    return [f"labeling_role_arn must be one IAM role ARN (no wildcards), got {arn!r}"]


def deploy_lambdas(
    zip_file: str | Path | bytes | LambdaZip,
    *,
    iam_client: IAMClient,
    lambda_client: LambdaClient,
    output_bucket: str,
    output_prefix: str = "",
    name_prefix: str = "gt-toolkit",
    labeling_role_arn: str | None = None,
    output_kms_key_arn: str | None = None,
    pre_environment: Mapping[str, str] | None = None,
    post_environment: Mapping[str, str] | None = None,
    memory_mb: int = 512,
    timeout_s: int = 300,
    code_s3_uri: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    wait_timeout: float = 120.0,
) -> DeployedLambdas:
    """Create or update both execution roles and both Lambda functions.

    Args:
        zip_file: the zip from :func:`gt_toolkit.sagemaker.lambda_zip.build_lambda_zip` (its
            result, a path or bytes); the functions get the architecture and Python runtime
            it records.
        output_bucket: the job's output bucket, a plain bucket name (no ``*``, no ``/``).
        output_prefix: the job's output folder in that bucket (``S3OutputPath`` without the
            bucket); the post-annotation function reads under it and nowhere else.
        name_prefix: names the functions and roles (:class:`LambdaNames`).
        labeling_role_arn: the job's ``RoleArn``; when given, the post-annotation Lambda
            reads as that role (``GT_ASSUME_ROLE=true``), narrowed to the output prefix. That
            role's trust policy must also allow the post-annotation role.
        output_kms_key_arn: the ARN of the job's ``OutputConfig.KmsKeyId``, when that is a
            customer-managed key: the post-annotation role, and the session it assumes, may
            decrypt the payload and answers with it (``kms:Decrypt`` via S3 only). One key
            ARN, not an alias or a wildcard.
        pre_environment: variables for the pre-annotation Lambda (``GT_LABELS``,
            ``GT_HEADER``, ``GT_LABELS_S3_URI``, ``GT_SKIP_MIN_CONFIDENCE``, ...).
        post_environment: variables for the post-annotation Lambda (``GT_IOU_THRESHOLD``,
            ``GT_MIN_SUPPORT``, ``GT_FUSION``, ``GT_QUORUM``, ``GT_WORKER_MODEL_S3_URI``,
            ...). Each function's role may read the file its ``*_S3_URI`` names.
        timeout_s: each function's timeout (Lambda allows 1-900 s); the post-annotation
            handler answers the objects it has no time left for as failed before it
            (:mod:`gt_toolkit.handlers.deadline`).
        code_s3_uri: where the zip was uploaded, for zips above the 50 MB direct limit.
        sleep: injectable for tests; used while IAM or an update settles.

    Raises:
        ValidationError: a name Lambda or IAM refuses, a wildcard or slashed bucket, a
            wildcard labeling role, a KMS key that is not one key ARN, a zip without its
            recorded target, a zip too big to upload directly, memory, timeout or variables
            outside Lambda's limits; raised before any call.
        botocore.exceptions.ClientError: AWS refused a call; the roles and functions this
            call had created by then are deleted again (ones that existed are left updated
            or not, as far as the deployment got).
    """
    from gt_toolkit.sagemaker.lambda_zip import HANDLERS

    names = LambdaNames(name_prefix)
    problems = [
        f"name {n!r} must be 1-64 letters, digits, '-' or '_'"
        for n in (names.pre, names.post, names.role(names.post))
        if not _NAME_RE.fullmatch(n)
    ]
    read_prefix = _output_prefix_uri(output_bucket, output_prefix, problems)
    problems.extend(_labeling_role_problems(labeling_role_arn or None))
    pre_env = dict(pre_environment or {})
    post_env = {**(post_environment or {}), READ_PREFIX_VARIABLE: read_prefix}
    if labeling_role_arn:
        post_env.setdefault("GT_ASSUME_ROLE", "true")
    kms_key_arn = _kms_key_arn(output_kms_key_arn, problems)
    if kms_key_arn is not None:
        post_env[OUTPUT_KMS_KEY_VARIABLE] = kms_key_arn
    problems.extend(_settings_problems(memory_mb, timeout_s, {"pre": pre_env, "post": post_env}))
    labels_uri = _cold_start_file(pre_env, "GT_LABELS_S3_URI", problems)
    table_uri = _cold_start_file(post_env, "GT_WORKER_MODEL_S3_URI", problems)
    code, target = _zip_code(zip_file, code_s3_uri, problems)
    if problems or target is None:
        raise ValidationError(problems, what="Lambda deployment")
    deployment = _Deployment(
        iam_client,
        lambda_client,
        code,
        target,
        {"Timeout": timeout_s, "MemorySize": memory_mb},
        sleep,
        wait_timeout,
    )
    try:
        pre, pre_role = deployment.function(
            names.pre,
            HANDLERS["pre"],
            pre_env,
            "Ground Truth pre-annotation (gt-toolkit)",
            read_object_uri=labels_uri,
        )
        post, post_role = deployment.function(
            names.post,
            HANDLERS["post"],
            post_env,
            "Ground Truth consolidation (gt-toolkit)",
            read_object_uri=table_uri,
            read_prefix_uri=read_prefix,
            labeling_role_arn=labeling_role_arn or None,
            kms_key_arn=kms_key_arn,
        )
    except BaseException as exc:
        deployment.undo(exc)
        raise
    return DeployedLambdas(pre, post, pre_role, post_role)


def _kms_key_arn(arn: str | None, problems: list[str]) -> str | None:
    """The key to grant (``None`` when unset); one that is not a key ARN goes to ``problems``."""
    if not arn:
        return None
    try:
        kms_decrypt_statement(arn)
    except ValidationError as exc:
        problems.extend(f"output_kms_key_arn: {p}" for p in exc.problems)
    return arn


def _cold_start_file(env: Mapping[str, str], variable: str, problems: list[str]) -> str | None:
    """The ``s3://`` file ``variable`` names (``None`` when unset): the function's role reads it.

    A malformed URI, or a wildcard (it would grant reading every object it matches), is
    added to ``problems``.
    """
    value = env.get(variable)
    uri = value.strip() or None if isinstance(value, str) else None  # else _settings_problems
    if uri is not None:
        try:
            parse_s3_uri(uri)
        except S3UriError as exc:
            problems.append(f"{variable}: {exc}")
        if any(c in uri for c in "*?"):
            problems.append(f"{variable} must name one object, no wildcards: got {uri!r}")
    return uri


def _settings_problems(
    memory_mb: int, timeout_s: int, environments: Mapping[str, Mapping[str, object]]
) -> list[str]:
    """Lambda's limits on the settings, checked before anything is created.

    Lambda refuses memory outside 128-10,240 MB, a timeout outside 1-900 s, variables that
    are not strings, names that are not ``[A-Za-z][A-Za-z0-9_]+`` and more than 4 KB of
    variables per function; caught here, no role is made for a function that cannot be.
    """
    problems = []
    if not _MEMORY_MB[0] <= memory_mb <= _MEMORY_MB[1]:
        problems.append(f"memory_mb must be {_MEMORY_MB[0]}-{_MEMORY_MB[1]}, got {memory_mb}")
    if not _TIMEOUT_S[0] <= timeout_s <= _TIMEOUT_S[1]:
        problems.append(f"timeout_s must be {_TIMEOUT_S[0]}-{_TIMEOUT_S[1]}, got {timeout_s}")
    for role, env in environments.items():
        for key, value in env.items():
            if not _VARIABLE_RE.fullmatch(key):
                problems.append(f"{role}_environment: {key!r} is not a variable name Lambda takes")
            if not isinstance(value, str):
                problems.append(f"{role}_environment: {key} must be a string, got {value!r}")
        size = sum(len(k.encode()) + len(str(v).encode()) for k, v in env.items())
        if size > _MAX_VARIABLES:
            problems.append(
                f"{role}_environment: {size} bytes of variables, over Lambda's 4 KB; put "
                "long settings in a file (GT_LABELS_S3_URI, GT_WORKER_MODEL_S3_URI)"
            )
    return problems
