from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gt_toolkit.errors import S3UriError, ValidationError
from gt_toolkit.storage.assumed_role import (
    assumed_role_store_factory,
    kms_decrypt_statement,
    read_prefix_policy,
)

_FOLDER = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}(/[a-z0-9_.-]{1,20}){0,3}", fullmatch=True)


@given(_FOLDER)
def test_a_read_prefix_is_a_folder_with_or_without_its_slash(folder: str) -> None:
    # "jobs" must not grant "jobs-old/...": the policy always ends the prefix with "/"
    with_slash = read_prefix_policy(f"s3://bkt/{folder}/")
    assert read_prefix_policy(f"s3://bkt/{folder}") == with_slash
    get, listing = with_slash["Statement"]
    assert get["Resource"] == f"arn:aws:s3:::bkt/{folder}/*"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [f"{folder}/*"]}}


def test_the_whole_bucket_and_wildcards() -> None:
    assert read_prefix_policy("s3://bkt/")["Statement"][0]["Resource"] == "arn:aws:s3:::bkt/*"
    with pytest.raises(S3UriError, match="wildcards"):
        read_prefix_policy("s3://bkt/jobs*")


KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("key_arn", "via"),
    [
        (KEY_ARN, "s3.eu-west-1.amazonaws.com"),
        (
            "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            "s3.us-east-1.amazonaws.com",
        ),
        (
            "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "s3.cn-north-1.amazonaws.com.cn",
        ),
        (
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/1234abcd-12ab",
            "s3.us-gov-west-1.amazonaws.com",
        ),
    ],
    ids=["key", "multi-region-key", "china", "govcloud"],
)
def test_the_output_key_is_decrypted_through_s3_only(key_arn: str, via: str) -> None:
    without = read_prefix_policy("s3://bkt/jobs/")
    with_key = read_prefix_policy("s3://bkt/jobs/", kms_key_arn=key_arn)
    assert with_key["Statement"][:2] == without["Statement"]  # the reads are unchanged
    assert with_key["Statement"][2:] == [
        {
            "Sid": "DecryptJobOutput",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": key_arn,
            "Condition": {"StringEquals": {"kms:ViaService": via}},
        }
    ]
    assert not any("kms" in str(st) for st in without["Statement"])


@pytest.mark.parametrize(
    "key_arn",
    [
        "*",
        "arn:aws:kms:eu-west-1:123456789012:key/*",
        "arn:aws:kms:eu-west-1:123456789012:alias/gt-output",
        "arn:aws:kms:*:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:*:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "alias/gt-output",
        f"{KEY_ARN},arn:aws:kms:eu-west-1:123456789012:key/other",
        f" {KEY_ARN}",
        "",
    ],
    ids=[
        "star",
        "key-wildcard",
        "alias-arn",
        "wildcard-region",
        "wildcard-account",
        "bare-id",
        "alias",
        "two-keys",
        "leading-space",
        "empty",
    ],
)
def test_a_key_that_is_not_one_key_arn_is_refused(key_arn: str) -> None:
    with pytest.raises(ValidationError, match="not one KMS key ARN"):
        kms_decrypt_statement(key_arn)
    with pytest.raises(ValidationError, match="not one KMS key ARN"):
        read_prefix_policy("s3://bkt/jobs/", kms_key_arn=key_arn)
    with pytest.raises(ValidationError, match="not one KMS key ARN"):  # at cold start
        assumed_role_store_factory(None, read_prefix="s3://bkt/jobs/", kms_key_arn=key_arn)  # type: ignore[arg-type]
