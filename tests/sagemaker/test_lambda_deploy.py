from __future__ import annotations

import io
import json
import urllib.parse
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from gt_toolkit.errors import ValidationError
from gt_toolkit.sagemaker.lambda_deploy import build_lambda_role_policy, deploy_lambdas
from gt_toolkit.sagemaker.lambda_zip import HANDLERS
from tests.helpers import REPO

TEMPLATE = REPO / "lambdas" / "template.yaml"


def tiny_zip(marker: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in (
            "lambdas/__init__.py",
            "lambdas/pre_annotation.py",
            "lambdas/post_annotation.py",
        ):
            zf.writestr(path, (REPO / path).read_text())
        zf.writestr("marker.txt", marker)
    return buf.getvalue()


def no_sleep(_: float) -> None:
    return None


def role_policy(iam: Any, role: str) -> dict[str, Any]:
    doc = iam.get_role_policy(RoleName=role, PolicyName="gt-toolkit-lambdas")["PolicyDocument"]
    return json.loads(urllib.parse.unquote(doc)) if isinstance(doc, str) else doc


def test_deploy_creates_role_and_both_functions(aws: Callable[[str], Any], bucket: str) -> None:
    iam, lam = aws("iam"), aws("lambda")
    labeling_role = iam.create_role(RoleName=f"GtExec-{bucket}", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    out = deploy_lambdas(
        tiny_zip("v1"),
        iam_client=iam,
        lambda_client=lam,
        output_bucket=bucket,
        name_prefix=bucket,
        labeling_role_arn=labeling_role,
        pre_environment={"GT_LABELS": "car,bike"},
        post_environment={"GT_MIN_SUPPORT": "2"},
        sleep=no_sleep,
    )
    assert "SageMaker" in out.pre_annotation_arn and "SageMaker" in out.post_annotation_arn
    pre = lam.get_function(FunctionName=out.pre_annotation_arn)["Configuration"]
    post = lam.get_function(FunctionName=out.post_annotation_arn)["Configuration"]
    assert (pre["Handler"], post["Handler"]) == (HANDLERS["pre"], HANDLERS["post"])
    assert pre["Role"] == post["Role"] == out.role_arn
    assert pre["Runtime"] == "python3.12"
    assert pre["Environment"]["Variables"] == {"GT_LABELS": "car,bike"}
    assert post["Environment"]["Variables"] == {"GT_MIN_SUPPORT": "2", "GT_ASSUME_ROLE": "true"}
    role_name = out.role_arn.rsplit("/", 1)[1]
    trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    policy = role_policy(iam, role_name)
    assert policy == build_lambda_role_policy(
        read_buckets=[bucket], labeling_role_arn=labeling_role
    )
    assert f"arn:aws:s3:::{bucket}/*" in json.dumps(policy)


def test_redeploy_updates_code_and_settings_in_place(
    aws: Callable[[str], Any], bucket: str
) -> None:
    iam, lam = aws("iam"), aws("lambda")
    kwargs: dict[str, Any] = {
        "iam_client": iam,
        "lambda_client": lam,
        "output_bucket": bucket,
        "name_prefix": bucket,
        "sleep": no_sleep,
    }
    first = deploy_lambdas(tiny_zip("v1"), post_environment={"GT_FUSION": "mean"}, **kwargs)
    sha1 = lam.get_function(FunctionName=first.post_annotation_arn)["Configuration"]["CodeSha256"]
    second = deploy_lambdas(
        tiny_zip("v2"), post_environment={"GT_FUSION": "median"}, memory_mb=1024, **kwargs
    )
    assert second == first
    post = lam.get_function(FunctionName=second.post_annotation_arn)["Configuration"]
    assert post["CodeSha256"] != sha1
    assert post["Environment"]["Variables"] == {"GT_FUSION": "median"}
    assert post["MemorySize"] == 1024
    role_name = first.role_arn.rsplit("/", 1)[1]
    assert "sts:AssumeRole" not in json.dumps(role_policy(iam, role_name))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"name_prefix": "bad name!"}, "function name"),
        ({"name_prefix": "x" * 60}, "function name"),
        ({"zip_file": b"0" * (50 * 1024 * 1024 + 1)}, "50 MB"),
    ],
    ids=["characters", "too-long", "zip-too-big"],
)
def test_bad_deployments_are_refused_before_any_call(kwargs: dict[str, Any], problem: str) -> None:
    args: dict[str, Any] = {
        "zip_file": b"zip",
        "iam_client": None,
        "lambda_client": None,
        "output_bucket": "b-out",
    }
    with pytest.raises(ValidationError, match=problem):
        deploy_lambdas(**{**args, **kwargs})


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


def test_template_deploys_on_cloudformation(aws: Callable[[str], Any], bucket: str) -> None:
    s3, cfn, lam = aws("s3"), aws("cloudformation"), aws("lambda")
    s3.put_object(Bucket=bucket, Key="code/fn.zip", Body=tiny_zip("cfn"))
    prefix = f"cfn-{bucket[-8:]}"
    params = {
        "NamePrefix": prefix,
        "CodeBucket": bucket,
        "CodeKey": "code/fn.zip",
        "OutputBucket": bucket,
        "Labels": "car,bike",
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
    assert post["Environment"]["Variables"]["GT_ASSUME_ROLE"] == "false"
