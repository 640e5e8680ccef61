from __future__ import annotations

import ast
import io
import json
import re
import urllib.parse
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from gt_toolkit.errors import ValidationError
from gt_toolkit.sagemaker.lambda_deploy import (
    OUTPUT_KMS_KEY_VARIABLE,
    READ_PREFIX_VARIABLE,
    LambdaNames,
    build_lambda_role_policy,
    deploy_lambdas,
)
from gt_toolkit.sagemaker.lambda_zip import HANDLERS, TARGET_ENTRY
from gt_toolkit.storage.assumed_role import assumed_role_store_factory, read_prefix_policy
from tests.helpers import REPO

TEMPLATE = REPO / "lambdas" / "template.yaml"


def tiny_zip(marker: str, *, architecture: str = "x86_64", python: str = "3.12") -> bytes:
    """The handlers and the target record a real build writes, without the dependencies."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in (
            "lambdas/__init__.py",
            "lambdas/pre_annotation.py",
            "lambdas/post_annotation.py",
        ):
            zf.writestr(path, (REPO / path).read_text())
        zf.writestr("marker.txt", marker)
        zf.writestr(TARGET_ENTRY, json.dumps({"architecture": architecture, "python": python}))
    return buf.getvalue()


def no_sleep(_: float) -> None:
    return None


def role_policy(iam: Any, role_arn: str) -> dict[str, Any]:
    role = role_arn.rsplit("/", 1)[1]
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert len(names) == 1, names
    doc = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
    if isinstance(doc, str):
        text = urllib.parse.unquote(doc)
        # moto's CloudFormation stores an inline policy as a Python repr, not JSON
        doc = json.loads(text) if text.startswith('{"') else ast.literal_eval(text)
    # ... and keeps an `!If [..., !Ref AWS::NoValue]` statement as null, which AWS drops
    return {**doc, "Statement": [st for st in doc["Statement"] if st is not None]}


def statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def deploy(aws: Callable[[str], Any], bucket: str, zip_file: bytes, **kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "iam_client": aws("iam"),
        "lambda_client": aws("lambda"),
        "output_bucket": bucket,
        "name_prefix": bucket,
        "sleep": no_sleep,
    }
    return deploy_lambdas(zip_file, **(args | kwargs))


def test_each_function_gets_its_own_least_privilege_role(
    aws: Callable[[str], Any], bucket: str
) -> None:
    iam, lam = aws("iam"), aws("lambda")
    labeling_role = iam.create_role(RoleName=f"GtExec-{bucket}", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    labels_uri = f"s3://{bucket}/config/labels.json"
    table_uri = f"s3://{bucket}/models/worker-model.json"  # outside the job's output prefix
    out = deploy(
        aws,
        bucket,
        tiny_zip("v1"),
        output_prefix="jobs/run-1",
        labeling_role_arn=labeling_role,
        pre_environment={"GT_LABELS_S3_URI": labels_uri},
        post_environment={"GT_MIN_SUPPORT": "2", "GT_WORKER_MODEL_S3_URI": table_uri},
    )
    assert "SageMaker" in out.pre_annotation_arn and "SageMaker" in out.post_annotation_arn
    pre = lam.get_function(FunctionName=out.pre_annotation_arn)["Configuration"]
    post = lam.get_function(FunctionName=out.post_annotation_arn)["Configuration"]
    assert (pre["Handler"], post["Handler"]) == (HANDLERS["pre"], HANDLERS["post"])
    assert (pre["Role"], post["Role"]) == (
        out.pre_annotation_role_arn,
        out.post_annotation_role_arn,
    )
    assert out.pre_annotation_role_arn != out.post_annotation_role_arn
    assert post["Environment"]["Variables"] == {
        "GT_MIN_SUPPORT": "2",
        "GT_WORKER_MODEL_S3_URI": table_uri,
        "GT_ASSUME_ROLE": "true",
        READ_PREFIX_VARIABLE: f"s3://{bucket}/jobs/run-1/",
    }
    for arn in (out.pre_annotation_role_arn, out.post_annotation_role_arn):
        trust = iam.get_role(RoleName=arn.rsplit("/", 1)[1])["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}

    pre_policy = statements(role_policy(iam, out.pre_annotation_role_arn))
    assert set(pre_policy) == {"OwnLogGroup", "ReadColdStartFile"}  # no answers, no AssumeRole
    labels_arn = f"arn:aws:s3:::{bucket}/config/labels.json"
    assert pre_policy["ReadColdStartFile"]["Resource"] == labels_arn
    assert pre_policy["OwnLogGroup"]["Resource"] == [
        f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{pre['FunctionName']}",
        f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{pre['FunctionName']}:*",
    ]

    post_policy = statements(role_policy(iam, out.post_annotation_role_arn))
    assert set(post_policy) == {
        "OwnLogGroup",
        "ReadColdStartFile",
        "ReadJobOutput",
        "ListJobOutput",
        "ReadAsTheLabelingRole",
    }
    assert post_policy["ReadColdStartFile"]["Resource"] == (
        f"arn:aws:s3:::{bucket}/models/worker-model.json"
    )
    assert post_policy["ReadJobOutput"]["Resource"] == f"arn:aws:s3:::{bucket}/jobs/run-1/*"
    assert post_policy["ListJobOutput"]["Condition"] == {
        "StringLike": {"s3:prefix": ["jobs/run-1/*"]}
    }
    assert post_policy["ReadAsTheLabelingRole"]["Resource"] == labeling_role
    assert all(
        f"/aws/lambda/{post['FunctionName']}" in r for r in post_policy["OwnLogGroup"]["Resource"]
    )


def test_the_assumed_session_reads_only_the_output_prefix(
    aws: Callable[[str], Any], bucket: str, moto_endpoint: str
) -> None:
    iam, lam = aws("iam"), aws("lambda")
    labeling_role = iam.create_role(RoleName=f"GtLabel-{bucket}", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    out = deploy(
        aws, bucket, tiny_zip("v1"), output_prefix="jobs/", labeling_role_arn=labeling_role
    )
    env = lam.get_function(FunctionName=out.post_annotation_arn)["Configuration"]["Environment"]
    sts = aws("sts")
    sent: list[dict[str, Any]] = []
    sts.meta.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: sent.append(dict(params))
    )
    factory = assumed_role_store_factory(
        sts, read_prefix=env["Variables"][READ_PREFIX_VARIABLE], endpoint_url=moto_endpoint
    )
    factory(labeling_role)
    assert len(sent) == 1
    session_policy = json.loads(sent[0]["Policy"])
    assert session_policy == read_prefix_policy(f"s3://{bucket}/jobs/")
    assert {s["Resource"] for s in session_policy["Statement"]} == {
        f"arn:aws:s3:::{bucket}/jobs/*",
        f"arn:aws:s3:::{bucket}",
    }


def test_the_post_annotation_role_and_its_session_decrypt_with_the_output_key(
    aws: Callable[[str], Any], bucket: str, moto_endpoint: str
) -> None:
    iam, lam = aws("iam"), aws("lambda")
    key_arn = aws("kms").create_key(Description=f"gt output {bucket}")["KeyMetadata"]["Arn"]
    labeling_role = iam.create_role(RoleName=f"GtKms-{bucket}", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    out = deploy(
        aws,
        bucket,
        tiny_zip("v1"),
        output_prefix="jobs/",
        labeling_role_arn=labeling_role,
        output_kms_key_arn=key_arn,
    )
    decrypt = {
        "Sid": "DecryptJobOutput",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": key_arn,
        "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
    }
    assert statements(role_policy(iam, out.post_annotation_role_arn))["DecryptJobOutput"] == decrypt
    assert "DecryptJobOutput" not in statements(role_policy(iam, out.pre_annotation_role_arn))
    variables = lam.get_function(FunctionName=out.post_annotation_arn)["Configuration"][
        "Environment"
    ]["Variables"]
    assert variables[OUTPUT_KMS_KEY_VARIABLE] == key_arn
    pre = lam.get_function(FunctionName=out.pre_annotation_arn)["Configuration"]
    assert OUTPUT_KMS_KEY_VARIABLE not in pre.get("Environment", {}).get("Variables", {})

    # The handler's cold start passes both variables on; the session policy decrypts too.
    sts = aws("sts")
    sent: list[dict[str, Any]] = []
    sts.meta.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: sent.append(dict(params))
    )
    factory = assumed_role_store_factory(
        sts,
        read_prefix=variables[READ_PREFIX_VARIABLE],
        kms_key_arn=variables[OUTPUT_KMS_KEY_VARIABLE],
        endpoint_url=moto_endpoint,
    )
    factory(labeling_role)
    session_policy = json.loads(sent[0]["Policy"])
    assert session_policy["Statement"] == [
        *read_prefix_policy(f"s3://{bucket}/jobs/")["Statement"],
        decrypt,
    ]


def test_without_an_output_key_nothing_decrypts(aws: Callable[[str], Any], bucket: str) -> None:
    iam, lam = aws("iam"), aws("lambda")
    out = deploy(aws, bucket, tiny_zip("v1"), output_prefix="jobs/", output_kms_key_arn="")
    post_policy = role_policy(iam, out.post_annotation_role_arn)
    assert not any("kms" in json.dumps(st) for st in post_policy["Statement"])
    config = lam.get_function(FunctionName=out.post_annotation_arn)["Configuration"]
    assert OUTPUT_KMS_KEY_VARIABLE not in config["Environment"]["Variables"]


def test_functions_get_the_architecture_and_runtime_the_zip_records(
    aws: Callable[[str], Any], bucket: str
) -> None:
    lam = aws("lambda")
    out = deploy(aws, bucket, tiny_zip("arm", architecture="arm64", python="3.11"))
    for arn in (out.pre_annotation_arn, out.post_annotation_arn):
        config = lam.get_function(FunctionName=arn)["Configuration"]
        assert (config["Architectures"], config["Runtime"]) == (["arm64"], "python3.11")


def test_redeploy_updates_code_and_settings_in_place(
    aws: Callable[[str], Any], bucket: str
) -> None:
    iam, lam = aws("iam"), aws("lambda")
    first = deploy(aws, bucket, tiny_zip("v1"), post_environment={"GT_FUSION": "mean"})
    sha1 = lam.get_function(FunctionName=first.post_annotation_arn)["Configuration"]["CodeSha256"]
    second = deploy(
        aws, bucket, tiny_zip("v2"), post_environment={"GT_FUSION": "median"}, memory_mb=1024
    )
    assert second == first
    post = lam.get_function(FunctionName=second.post_annotation_arn)["Configuration"]
    assert post["CodeSha256"] != sha1
    assert post["Environment"]["Variables"] == {
        "GT_FUSION": "median",
        READ_PREFIX_VARIABLE: f"s3://{bucket}/",
    }
    assert post["MemorySize"] == 1024
    assert "sts:AssumeRole" not in json.dumps(role_policy(iam, first.post_annotation_role_arn))


def _fail_creating(lam: Any, function_name: str) -> None:
    """Make Lambda refuse to create ``function_name`` (as a quota or a throttle would)."""

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params.get("FunctionName") == function_name:
            error = {"Error": {"Code": "CodeStorageExceededException", "Message": "quota"}}
            raise ClientError(error, "CreateFunction")  # type: ignore[arg-type]

    lam.meta.events.register("before-parameter-build.lambda.CreateFunction", refuse)


def _our_roles(iam: Any, bucket: str) -> list[str]:
    roles = iam.get_paginator("list_roles").paginate().build_full_result()["Roles"]
    return sorted(r["RoleName"] for r in roles if r["RoleName"].startswith(f"{bucket}-"))


def _our_functions(lam: Any, bucket: str) -> list[str]:
    functions = lam.get_paginator("list_functions").paginate().build_full_result()["Functions"]
    return sorted(f["FunctionName"] for f in functions if f["FunctionName"].startswith(bucket))


def test_a_deployment_failing_halfway_deletes_what_it_created(
    aws: Callable[[str], Any], bucket: str
) -> None:
    iam, lam = aws("iam"), aws("lambda")
    names = LambdaNames(bucket)
    _fail_creating(lam, names.post)
    with pytest.raises(ClientError, match="quota"):
        deploy(aws, bucket, tiny_zip("v1"), lambda_client=lam)
    assert _our_functions(lam, bucket) == []
    assert _our_roles(iam, bucket) == []


def test_a_failing_redeploy_keeps_what_existed(aws: Callable[[str], Any], bucket: str) -> None:
    iam, lam = aws("iam"), aws("lambda")
    first = deploy(aws, bucket, tiny_zip("v1"))
    missing = f"s3://{bucket}-no-such-bucket/fn.zip"
    with pytest.raises(ClientError):
        # the roles and functions exist: the code update from a missing bucket fails
        deploy(aws, bucket, tiny_zip("v1"), code_s3_uri=missing)
    names = LambdaNames(bucket)
    assert _our_functions(lam, bucket) == sorted([names.pre, names.post])
    assert _our_roles(iam, bucket) == sorted(map(names.role, [names.pre, names.post]))
    assert lam.get_function(FunctionName=names.post)["Configuration"]["FunctionArn"] == (
        first.post_annotation_arn
    )


NO_TARGET = io.BytesIO()
with zipfile.ZipFile(NO_TARGET, "w") as _zf:
    _zf.writestr("lambdas/__init__.py", "")


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"name_prefix": "bad name!"}, "name 'bad name!-SageMaker-pre-annotation'"),
        ({"name_prefix": "x" * 40}, "-SageMaker-post-annotation-role' must be 1-64"),
        ({"zip_file": b"0" * (50 * 1024 * 1024 + 1)}, "50 MB"),
        ({"zip_file": NO_TARGET.getvalue()}, "the zip has no gt-toolkit-lambda.json"),
        ({"output_bucket": "*"}, "bad bucket name '*'"),
        ({"output_bucket": "b-out/jobs"}, "output_bucket must be a bucket name alone"),
        ({"output_prefix": "jobs/*/"}, "must not hold wildcards"),
        ({"labeling_role_arn": "*"}, "labeling_role_arn must be one IAM role ARN"),
        (
            {"labeling_role_arn": "arn:aws:iam::123456789012:role/*"},
            "labeling_role_arn must be one IAM role ARN",
        ),
        ({"output_kms_key_arn": "*"}, "output_kms_key_arn: '*' is not one KMS key ARN"),
        (
            {"output_kms_key_arn": "arn:aws:kms:us-east-1:123456789012:alias/gt-output"},
            "output_kms_key_arn: 'arn:aws:kms:us-east-1:123456789012:alias/gt-output' is not",
        ),
        (
            {"output_kms_key_arn": "arn:aws:kms:us-east-1:123456789012:key/*"},
            "is not one KMS key ARN",
        ),
        ({"pre_environment": {"GT_LABELS_S3_URI": "labels.json"}}, "GT_LABELS_S3_URI:"),
        (
            {"post_environment": {"GT_WORKER_MODEL_S3_URI": "s3://bkt/models/*"}},
            "GT_WORKER_MODEL_S3_URI must name one object",
        ),
        ({"memory_mb": 64}, "memory_mb must be 128-10240, got 64"),
        ({"timeout_s": 901}, "timeout_s must be 1-900, got 901"),
        ({"timeout_s": 0}, "timeout_s must be 1-900, got 0"),
        ({"post_environment": {"GT_IOU_THRESHOLD": 0.5}}, "GT_IOU_THRESHOLD must be a string"),
        (
            {"pre_environment": {"GT_LABELS_S3_URI": None}},
            "GT_LABELS_S3_URI must be a string",
        ),
        ({"pre_environment": {"GT-LABELS": "a"}}, "'GT-LABELS' is not a variable name"),
        ({"pre_environment": {"GT_LABELS": "x" * 4096}}, "over Lambda's 4 KB"),
    ],
    ids=[
        "characters",
        "too-long",
        "zip-too-big",
        "zip-without-target",
        "wildcard-bucket",
        "slashed-bucket",
        "wildcard-prefix",
        "wildcard-role",
        "wildcard-role-name",
        "wildcard-kms-key",
        "kms-alias-arn",
        "kms-key-wildcard",
        "labels-not-s3",
        "wildcard-worker-table",
        "memory-too-small",
        "timeout-too-long",
        "timeout-zero",
        "variable-not-a-string",
        "cold-start-file-not-a-string",
        "variable-name",
        "variables-over-4kb",
    ],
)
def test_bad_deployments_are_refused_before_any_call(kwargs: dict[str, Any], problem: str) -> None:
    args: dict[str, Any] = {
        "zip_file": tiny_zip("v1"),
        "iam_client": None,
        "lambda_client": None,
        "output_bucket": "b-out",
    }
    with pytest.raises(ValidationError, match=re.escape(problem)):
        deploy_lambdas(**(args | kwargs))


def test_code_over_lambdas_unzipped_limit_is_refused_before_any_call() -> None:
    buf = io.BytesIO(tiny_zip("v1"))
    with (
        zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as zf,
        zf.open("big.bin", "w", force_zip64=True) as fh,
    ):
        for _ in range(251):  # zeros: 251 MiB unzipped, a few hundred KB zipped
            fh.write(bytes(1024 * 1024))
    assert len(buf.getvalue()) < 50 * 1024 * 1024
    with pytest.raises(ValidationError, match="over Lambda's limit of 262,144,000"):
        deploy_lambdas(buf.getvalue(), iam_client=None, lambda_client=None, output_bucket="b-out")  # type: ignore[arg-type]


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as plain values."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


CfnLoader.add_multi_constructor("!", _tag)


def test_template_matches_the_package() -> None:
    template = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    resources = template["Resources"]
    assert resources["PreAnnotationFunction"]["Properties"]["Handler"] == HANDLERS["pre"]
    assert resources["PostAnnotationFunction"]["Properties"]["Handler"] == HANDLERS["post"]
    for name in ("PreAnnotationFunction", "PostAnnotationFunction"):
        assert "SageMaker" in resources[name]["Properties"]["FunctionName"]["Sub"]
    names = LambdaNames("${NamePrefix}")
    for role, function in (("PreAnnotationRole", names.pre), ("PostAnnotationRole", names.post)):
        assert resources[role]["Properties"]["RoleName"] == {"Sub": names.role(function)}


@pytest.mark.parametrize(
    ("parameter", "value", "allowed"),
    [
        ("OutputBucket", "my-gt-output", True),
        ("OutputBucket", "*", False),
        ("OutputBucket", "my-gt-output/jobs", False),
        ("OutputPrefix", "", True),
        ("OutputPrefix", "jobs/run-1/", True),
        ("OutputPrefix", "jobs", False),
        ("OutputPrefix", "jobs/*/", False),
        ("OutputPrefix", "/jobs/", False),
        ("LabelsS3Uri", "", True),
        ("LabelsS3Uri", "s3://bkt/labels.json", True),
        ("LabelsS3Uri", "s3://bkt/*", False),
        ("WorkerModelS3Uri", "s3://bkt/models/worker-model.json", True),
        ("WorkerModelS3Uri", "s3://bkt/models/*", False),
        ("LabelingRoleArn", "", True),
        ("LabelingRoleArn", "arn:aws:iam::123456789012:role/service-role/GtExec", True),
        ("LabelingRoleArn", "arn:aws-cn:iam::123456789012:role/GtExec", True),
        ("LabelingRoleArn", "arn:aws:iam::123456789012:role/*", False),
        ("LabelingRoleArn", "arn:aws:iam::*:role/GtExec", False),
        ("LabelingRoleArn", "*", False),
        ("OutputKmsKeyArn", "", True),
        (
            "OutputKmsKeyArn",
            "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            True,
        ),
        ("OutputKmsKeyArn", "arn:aws-cn:kms:cn-north-1:123456789012:key/mrk-1a2b", True),
        ("OutputKmsKeyArn", "arn:aws:kms:eu-west-1:123456789012:key/*", False),
        ("OutputKmsKeyArn", "arn:aws:kms:eu-west-1:123456789012:alias/gt-output", False),
        ("OutputKmsKeyArn", "arn:aws:kms:*:123456789012:key/1234abcd", False),
        ("OutputKmsKeyArn", "1234abcd-12ab-34cd-56ef-1234567890ab", False),
        ("OutputKmsKeyArn", "*", False),
    ],
)
def test_template_parameters_refuse_wildcards_and_slashed_buckets(
    parameter: str, value: str, allowed: bool
) -> None:
    pattern = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)["Parameters"][parameter][
        "AllowedPattern"
    ]
    assert (re.fullmatch(pattern, value) is not None) is allowed


@pytest.mark.parametrize(
    "with_labeling_role", [True, False], ids=["labeling-role-and-key", "label-file"]
)
def test_template_deploys_on_cloudformation(
    aws: Callable[[str], Any], bucket: str, with_labeling_role: bool
) -> None:
    s3, cfn, lam, iam = aws("s3"), aws("cloudformation"), aws("lambda"), aws("iam")
    s3.put_object(Bucket=bucket, Key="code/fn.zip", Body=tiny_zip("cfn"))
    labeling_role = iam.create_role(RoleName=f"GtCfn-{bucket}", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    prefix = f"cfn-{bucket[-8:]}"
    params = {
        "NamePrefix": prefix,
        "CodeBucket": bucket,
        "CodeKey": "code/fn.zip",
        "OutputBucket": bucket,
        "OutputPrefix": "jobs/",
        "Labels": "car,bike",
        **(
            {
                "LabelingRoleArn": labeling_role,
                "OutputKmsKeyArn": aws("kms").create_key()["KeyMetadata"]["Arn"],
            }
            if with_labeling_role
            else {
                "LabelsS3Uri": f"s3://{bucket}/config/labels.json",
                "WorkerModelS3Uri": f"s3://{bucket}/models/worker-model.json",
            }
        ),
    }
    cfn.create_stack(
        StackName=f"gt-{bucket}",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cfn.describe_stacks(StackName=f"gt-{bucket}")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    pre = lam.get_function(FunctionName=outputs["PreAnnotationLambdaArn"])["Configuration"]
    post = lam.get_function(FunctionName=outputs["PostAnnotationLambdaArn"])["Configuration"]
    assert pre["FunctionName"] == f"{prefix}-SageMaker-pre-annotation"
    assert pre["Environment"]["Variables"]["GT_LABELS"] == "car,bike"
    assert post["Handler"] == HANDLERS["post"]
    assert post["Environment"]["Variables"]["GT_ASSUME_ROLE"] == str(with_labeling_role).lower()
    assert post["Environment"]["Variables"][READ_PREFIX_VARIABLE] == f"s3://{bucket}/jobs/"
    assert post["Environment"]["Variables"][OUTPUT_KMS_KEY_VARIABLE] == params.get(
        "OutputKmsKeyArn", ""
    )
    assert (pre["Role"], post["Role"]) == (
        outputs["PreAnnotationRoleArn"],
        outputs["PostAnnotationRoleArn"],
    )
    # The same policies deploy_lambdas writes (CloudFormation names the statements alike).
    account = pre["Role"].split(":")[4]
    for config, grants in (
        (pre, {"read_object_uri": params.get("LabelsS3Uri")}),
        (
            post,
            {
                "read_object_uri": params.get("WorkerModelS3Uri"),
                "read_prefix_uri": f"s3://{bucket}/jobs/",
                "labeling_role_arn": params.get("LabelingRoleArn"),
                "kms_key_arn": params.get("OutputKmsKeyArn"),
            },
        ),
    ):
        expected = build_lambda_role_policy(
            function_name=config["FunctionName"], region="us-east-1", account=account, **grants
        )
        assert role_policy(iam, config["Role"]) == expected
