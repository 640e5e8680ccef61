"""AWS resource tags: the one builder of the ``Tags`` list and the reserved-prefix rule."""

from __future__ import annotations

import pytest

from gt_toolkit.sagemaker.service_validation import problems_as_strings, validate_request
from gt_toolkit.sagemaker.tags import reserved_tag_key, tag_list


def test_tag_list_keeps_the_mapping_order_and_every_value() -> None:
    tags = {"project": "balls", "team": "", "cost:centre": "cv/2"}
    assert tag_list(tags) == [
        {"Key": "project", "Value": "balls"},
        {"Key": "team", "Value": ""},
        {"Key": "cost:centre", "Value": "cv/2"},
    ]
    assert tag_list({}) == []


RESERVED = [
    ("aws:cloudformation:stack-name", True),
    ("AWS:Owner", True),
    ("Aws:x", True),
    ("awsome", False),
    ("my-aws:key", False),
    ("project", False),
]


@pytest.mark.parametrize(("key", "reserved"), RESERVED)
def test_keys_with_the_aws_prefix_are_reserved(key: str, reserved: bool) -> None:
    assert reserved_tag_key(key) is reserved


@pytest.mark.parametrize(("key", "reserved"), RESERVED)
@pytest.mark.parametrize(
    ("service", "operation", "request_"),
    [
        ("sagemaker", "CreateEndpoint", {"EndpointName": "ep", "EndpointConfigName": "c"}),
        ("iam", "CreateRole", {"RoleName": "r", "AssumeRolePolicyDocument": "{}"}),
    ],
)
def test_every_request_check_refuses_reserved_tag_keys(
    key: str, reserved: bool, service: str, operation: str, request_: dict[str, object]
) -> None:
    request = {**request_, "Tags": tag_list({"project": "balls", key: "v"})}
    problems = problems_as_strings(validate_request(operation, request, service=service))
    expected = f"Tags[1].Key: {key!r}: the prefix 'aws:' is reserved for AWS"
    assert problems == ([expected] if reserved else [])


def test_lambda_tag_maps_are_checked_too() -> None:
    request = {
        "FunctionName": "f",
        "Role": "arn:aws:iam::123456789012:role/r",
        "Code": {"ZipFile": b"zip"},
        "Tags": {"aws:x": "v"},
    }
    problems = problems_as_strings(validate_request("CreateFunction", request, service="lambda"))
    assert problems == ["Tags key 'aws:x': 'aws:x': the prefix 'aws:' is reserved for AWS"]
