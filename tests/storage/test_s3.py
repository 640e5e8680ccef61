"""The S3 edge: bucket naming rules, prefixes as folders, bodies cut off mid-download."""

from __future__ import annotations

from typing import Any

import pytest

from gt_toolkit.errors import NoMatchingObjectsError, S3UriError, StorageError, ValidationError
from gt_toolkit.storage import s3
from gt_toolkit.storage.s3 import S3Store, bucket_name_problem, make_s3_client, parse_s3_uri
from tests.helpers import REGION, seed_objects
from tests.storage.fault_proxy import FaultProxy

GOOD_BUCKETS = ["abc", "my-bucket", "my.bucket.v2", "a" * 63, "1-2.3", "xn-bucket", "s3alias-b"]
# (name, what the message names): one row per documented rule.
BAD_BUCKETS = [
    pytest.param("ab", "3 to 63", id="too-short"),
    pytest.param("a" * 64, "3 to 63", id="too-long"),
    pytest.param("My-Bucket", "lowercase", id="uppercase"),
    pytest.param("my_bucket", "lowercase", id="underscore"),
    pytest.param("-bucket", "starting and ending", id="leading-hyphen"),
    pytest.param("bucket.", "starting and ending", id="trailing-dot"),
    pytest.param("bucket\n", "3 to 63", id="trailing-newline"),
    pytest.param("my..bucket", "'..'", id="double-dot"),
    pytest.param("my.-bucket", "'.-'", id="dot-hyphen"),
    pytest.param("my-.bucket", "'-.'", id="hyphen-dot"),
    pytest.param("192.168.5.4", "IP address", id="ip-address"),
    pytest.param("xn--bucket", "'xn--'", id="punycode-prefix"),
    pytest.param("sthree-bucket", "'sthree-'", id="sthree-prefix"),
    pytest.param("amzn-s3-demo-bucket", "'amzn-s3-demo-'", id="demo-prefix"),
    pytest.param("bucket-s3alias", "'-s3alias'", id="access-point-alias"),
    pytest.param("bucket--ol-s3", "'--ol-s3'", id="object-lambda-alias"),
    pytest.param("bucket.mrap", "'.mrap'", id="multi-region"),
    pytest.param("bucket--x-s3", "'--x-s3'", id="directory-bucket"),
    pytest.param("bucket--table-s3", "'--table-s3'", id="table-bucket"),
]


@pytest.mark.parametrize("name", GOOD_BUCKETS)
def test_valid_bucket_names_pass(name: str) -> None:
    assert bucket_name_problem(name) is None
    assert parse_s3_uri(f"s3://{name}/key.jpg") == (name, "key.jpg")


@pytest.mark.parametrize(("name", "named"), BAD_BUCKETS)
def test_each_bucket_naming_rule_is_enforced(name: str, named: str) -> None:
    problem = bucket_name_problem(name)
    assert problem is not None and named in problem
    with pytest.raises(S3UriError, match="bad bucket name"):
        parse_s3_uri(f"s3://{name}/key.jpg")


def test_a_prefix_without_slash_is_a_folder(store: S3Store, bucket: str) -> None:
    seed_objects(bucket, ["raw/a.jpg", "raw/sub/b.jpg", "raw-old/c.jpg", "raw.jpg", "rawx/d.jpg"])
    keys = [o.key for o in store.iter_objects(f"s3://{bucket}/raw")]
    assert keys == ["raw/a.jpg", "raw/sub/b.jpg"]
    assert [o.key for o in store.iter_objects(f"s3://{bucket}/raw/")] == keys
    with pytest.raises(NoMatchingObjectsError):
        list(store.iter_objects(f"s3://{bucket}/ra"))


def _store_through(proxy: FaultProxy) -> S3Store:
    return S3Store(make_s3_client(endpoint_url=proxy.url, region_name=REGION))


def test_a_body_cut_off_mid_download_is_resumed(
    store: S3Store, bucket: str, fault_proxy: FaultProxy
) -> None:
    data = bytes(range(256)) * 12_000  # 3 MB: the first cut falls after a whole chunk
    store.put_bytes(f"s3://{bucket}/big.bin", data)
    fault_proxy.plan("truncate", "truncate", method="GET")
    assert _store_through(fault_proxy).get_bytes(f"s3://{bucket}/big.bin") == data
    assert fault_proxy.injected["truncate"] == 2


def test_a_body_still_cut_off_after_the_retries_is_a_storage_error(
    store: S3Store, bucket: str, fault_proxy: FaultProxy
) -> None:
    store.put_bytes(f"s3://{bucket}/a.json", b'{"answers": []}' * 100)
    fault_proxy.plan(*["truncate"] * 5, method="GET")
    with pytest.raises(StorageError, match=r"a\.json: the body was cut off .* 5 time"):
        _store_through(fault_proxy).get_bytes(f"s3://{bucket}/a.json")


def test_an_object_changed_while_resuming_is_not_stitched(
    store: S3Store, bucket: str, fault_proxy: FaultProxy
) -> None:
    uri = f"s3://{bucket}/big.bin"
    store.put_bytes(uri, b"a" * 3_000_000)
    fault_proxy.plan("truncate", method="GET")
    chunks = _store_through(fault_proxy).iter_chunks(uri)
    assert next(chunks) == b"a" * (1 << 20)
    store.put_bytes(uri, b"b" * 3_000_000)  # rewritten before the resume
    with pytest.raises(StorageError, match="changed while it was read"):
        list(chunks)


@pytest.mark.parametrize(
    ("settings", "env", "message"),
    [
        ({"endpoint_url": "not-a-url"}, {}, "Invalid endpoint: not-a-url"),
        ({"region_name": "bad region"}, {}, "'bad region'"),
        ({}, {"AWS_ENDPOINT_URL": "not-a-url"}, "Invalid endpoint"),
        ({}, {"AWS_PROFILE": "no-such-profile-zz"}, "no-such-profile-zz"),
    ],
)
def test_settings_boto3_refuses_are_one_storage_error(
    settings: dict[str, str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(StorageError, match="cannot make an S3 client") as info:
        make_s3_client(**settings)
    assert message in str(info.value)


def test_a_put_asks_for_the_encryption_given(store: S3Store, bucket: str, s3_client: Any) -> None:
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    store.put_bytes(f"s3://{bucket}/kms", b"x", kms_key_id=key_arn)
    store.put_bytes(f"s3://{bucket}/s3", b"x", sse="AES256")
    store.put_bytes(f"s3://{bucket}/plain", b"x")
    kms = s3_client.head_object(Bucket=bucket, Key="kms")
    assert (kms["ServerSideEncryption"], kms["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    assert s3_client.head_object(Bucket=bucket, Key="s3")["ServerSideEncryption"] == "AES256"
    assert "ServerSideEncryption" not in s3_client.head_object(Bucket=bucket, Key="plain")
    with pytest.raises(ValidationError, match="asks for SSE-KMS, but sse is 'AES256'"):
        store.put_bytes(f"s3://{bucket}/both", b"x", sse="AES256", kms_key_id=key_arn)
    assert not store.exists(f"s3://{bucket}/both")


def test_a_copy_stays_inside_s3_and_keeps_the_content_type(
    store: S3Store, bucket: str, s3_client: Any
) -> None:
    store.put_bytes(f"s3://{bucket}/a/x.json", b"{}", content_type="application/json")
    store.copy(f"s3://{bucket}/a/x.json", f"s3://{bucket}/b/x.json", size=2)
    copied = s3_client.get_object(Bucket=bucket, Key="b/x.json")
    assert (copied["Body"].read(), copied["ContentType"]) == (b"{}", "application/json")
    with pytest.raises(StorageError, match=r"^copying s3://.*/a/gone to .*: no such object$"):
        store.copy(f"s3://{bucket}/a/gone", f"s3://{bucket}/b/gone")


def test_an_object_over_the_copy_limit_is_copied_in_parts(
    store: S3Store, bucket: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over 5 GiB one CopyObject is refused: boto3's managed copy goes part by part."""
    managed: list[str] = []
    copy = store.client.copy
    monkeypatch.setattr(s3, "_COPY_LIMIT", 3)
    monkeypatch.setattr(
        store.client, "copy", lambda src, b, k: managed.append(k) or copy(src, b, k)
    )
    store.put_bytes(f"s3://{bucket}/big", b"four")
    store.copy(f"s3://{bucket}/big", f"s3://{bucket}/big-copy", size=4)
    store.copy(f"s3://{bucket}/big", f"s3://{bucket}/small-copy", size=3)
    assert managed == ["big-copy"]
    assert store.get_bytes(f"s3://{bucket}/big-copy") == b"four"


def test_the_folders_in_a_folder_are_listed_one_level_deep(store: S3Store, bucket: str) -> None:
    seed_objects(bucket, ["ds/.a.part/x/1", "ds/.b/2", "ds/.c", "ds/d/3", "ds/.e/f/.g/4"])
    assert list(store.iter_folders_in_folder(f"s3://{bucket}/ds/.")) == [
        f"s3://{bucket}/ds/.a.part/",
        f"s3://{bucket}/ds/.b/",
        f"s3://{bucket}/ds/.e/",
    ]
    assert list(store.iter_in_folder(f"s3://{bucket}/ds/.")) == [f"s3://{bucket}/ds/.c"]


def _store_with(keys: dict[str, str], moto_endpoint: str) -> S3Store:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=keys["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"],
    )
    return S3Store(make_s3_client(session=session, endpoint_url=moto_endpoint, region_name=REGION))


def test_a_key_this_user_may_not_write_is_refused_by_the_check(
    moto_endpoint: str, store: S3Store, bucket: str, keys_denied: Any
) -> None:
    from moto.core.authorization import enable_iam_authentication

    store.put_bytes(f"s3://{bucket}/locked/s.json", b"earlier")
    writer = _store_with(keys_denied(f"arn:aws:s3:::{bucket}/locked/*"), moto_endpoint)
    with enable_iam_authentication():
        writer.check_writable(f"s3://{bucket}/open/s.json")
        with pytest.raises(StorageError, match=r"cannot write .*/locked/s.json: access denied"):
            writer.check_writable(f"s3://{bucket}/locked/s.json")
    assert store.get_bytes(f"s3://{bucket}/locked/s.json") == b"earlier"


def test_an_upload_the_check_cannot_abort_is_said_not_fatal(
    moto_endpoint: str,
    s3_client: Any,
    bucket: str,
    aws: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json

    from moto.core.authorization import enable_iam_authentication

    # allowed to write, not to abort: the check passes, and says what it left
    iam = aws("iam")
    iam.create_user(UserName=f"no-abort-{bucket}")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:AbortMultipartUpload", "Resource": "*"},
        ],
    }
    iam.put_user_policy(
        UserName=f"no-abort-{bucket}", PolicyName="s3", PolicyDocument=json.dumps(policy)
    )
    key = iam.create_access_key(UserName=f"no-abort-{bucket}")["AccessKey"]
    writer = _store_with(
        {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]},
        moto_endpoint,
    )
    with enable_iam_authentication():
        writer.check_writable(f"s3://{bucket}/s.json")
    assert "cannot abort the empty upload that checked" in caplog.text
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket)
