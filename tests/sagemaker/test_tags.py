"""AWS resource tags: the one builder of the ``Tags`` list and the reserved-prefix rule."""

from __future__ import annotations

import pytest

from gt_toolkit.sagemaker.tags import tag_list, tag_problems


def test_tag_list_keeps_the_mapping_order_and_every_value() -> None:
    tags = {"project": "balls", "team": "", "cost:centre": "cv/2"}
    assert tag_list(tags) == [
        {"Key": "project", "Value": "balls"},
        {"Key": "team", "Value": ""},
        {"Key": "cost:centre", "Value": "cv/2"},
    ]
    assert tag_list({}) == []


@pytest.mark.parametrize(
    ("key", "reserved"),
    [
        ("aws:cloudformation:stack-name", True),
        ("AWS:Owner", True),
        ("Aws:x", True),
        ("awsome", False),
        ("my-aws:key", False),
        ("project", False),
    ],
)
def test_keys_with_the_aws_prefix_are_refused(key: str, reserved: bool) -> None:
    problems = tag_problems({key: "v", "project": "balls"})
    assert problems == (
        [f"tag key {key!r}: the prefix 'aws:' is reserved for AWS"] if reserved else []
    )


def test_no_tags_no_problems() -> None:
    assert tag_problems(None) == []
