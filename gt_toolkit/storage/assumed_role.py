"""Act as another AWS role: the I/O edge the post-annotation Lambda uses for ``roleArn``.

Ground Truth passes the labeling job's role in each post-annotation event; when the
Lambda's own role cannot read the worker answers, it reads them as that role. STS and
boto3 sessions live here so :mod:`gt_toolkit.handlers.post_annotation` stays pure logic over an
:class:`~gt_toolkit.storage.s3.S3Store` it is handed.

The labeling role may do much more than read one job's answers, so the session can be narrowed
with a session policy (:func:`read_prefix_policy`): the credentials then read objects under the
job's output prefix and nothing else, whatever the role itself allows. A job whose output is
encrypted with a customer-managed KMS key (``OutputConfig.KmsKeyId``) also needs ``kms:Decrypt``
on that key, through S3 only (:func:`kms_decrypt_statement`), in the same session policy.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gt_toolkit.errors import S3UriError, StorageError, ValidationError
from gt_toolkit.storage.s3 import S3Store, make_s3_client, parse_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

__all__ = ["assumed_role_store_factory", "kms_decrypt_statement", "read_prefix_policy"]

# Renew cached credentials this long before they expire, so no batch starts on a key that
# dies mid-read.
_RENEW_SECONDS = 300

# One KMS key by ARN: an alias ARN, a bare id or a wildcard would widen (or break) the grant.
_KMS_KEY_ARN_RE = re.compile(
    r"arn:(aws[a-z-]*):kms:([a-z]{2}(?:-[a-z]+)+-[0-9]):[0-9]{12}:key/[A-Za-z0-9-]+"
)


def kms_decrypt_statement(kms_key_arn: str) -> dict[str, Any]:
    """``kms:Decrypt`` on one customer-managed key, only when S3 asks on the caller's behalf.

    S3 decrypts an SSE-KMS object with the reader's own permission on the key; the
    ``kms:ViaService`` condition (``s3.<region>.amazonaws.com``, the key's region: S3 uses
    keys in the bucket's region only) keeps the grant from decrypting anything directly.

    Raises:
        ValidationError: not the ARN of one KMS key (an alias ARN, a bare id, a wildcard).

    Examples:
        >>> arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        >>> kms_decrypt_statement(arn)["Condition"]
        {'StringEquals': {'kms:ViaService': 's3.eu-west-1.amazonaws.com'}}
    """
    match = _KMS_KEY_ARN_RE.fullmatch(kms_key_arn)
    if match is None:
        raise ValidationError(
            [f"{kms_key_arn!r} is not one KMS key ARN (key/<id>; no alias, no wildcard)"],
            what="KMS key",
        )
    partition, region = match.groups()
    suffix = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return {
        "Sid": "DecryptJobOutput",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": kms_key_arn,
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.{suffix}"}},
    }


def read_prefix_policy(
    prefix_uri: str, *, partition: str = "aws", kms_key_arn: str | None = None
) -> dict[str, Any]:
    """An IAM policy that reads (and lists) the objects under one S3 prefix, nothing else.

    ``s3://bucket/jobs/`` (or ``s3://bucket/jobs``: a prefix is a folder) allows
    ``s3:GetObject`` on ``bucket/jobs/*`` and ``s3:ListBucket`` for keys starting with
    ``jobs/``. Used as the post-annotation Lambda's own S3 grant and
    as the session policy of the role it assumes. With ``kms_key_arn`` (the job's output
    key) it may also decrypt those objects (:func:`kms_decrypt_statement`).

    Raises:
        S3UriError: not an ``s3://bucket/prefix`` URI, or a prefix with a ``*`` or ``?`` (a
            wildcard would widen the grant).
        ValidationError: ``kms_key_arn`` is not one KMS key ARN.

    Examples:
        >>> read_prefix_policy("s3://bkt/jobs/")["Statement"][0]["Resource"]
        'arn:aws:s3:::bkt/jobs/*'
        >>> read_prefix_policy("s3://bkt/jobs")["Statement"][0]["Resource"]
        'arn:aws:s3:::bkt/jobs/*'
    """
    bucket, prefix = parse_s3_uri(prefix_uri, require_key=False)
    if any(c in prefix for c in "*?"):
        raise S3UriError(f"a read prefix must not hold wildcards (* or ?), got {prefix_uri!r}")
    if prefix and not prefix.endswith("/"):  # a folder: "jobs" must not read "jobs-old/"
        prefix += "/"
    decrypt = [] if kms_key_arn is None else [kms_decrypt_statement(kms_key_arn)]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadJobOutput",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:{partition}:s3:::{bucket}/{prefix}*",
            },
            {
                "Sid": "ListJobOutput",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:{partition}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            },
            *decrypt,
        ],
    }


def assumed_role_store_factory(
    sts_client: STSClient,
    *,
    read_prefix: str | None = None,
    kms_key_arn: str | None = None,
    session_name: str = "gt-toolkit-post-annotation",
    endpoint_url: str | None = None,
    region_name: str | None = None,
) -> Callable[[str], S3Store]:
    """A store factory (role ARN -> :class:`S3Store`) that assumes the role with STS.

    With ``read_prefix`` (``s3://bucket/prefix/``), every session carries
    :func:`read_prefix_policy` as its session policy, in the role's partition: it reads under
    that prefix only, and decrypts with ``kms_key_arn`` (the job's output key) when one is
    given; without ``read_prefix`` there is no session policy and the role's own grants
    apply, its key permission included. Credentials are cached per role and reused until 5
    minutes before they expire, so a warm Lambda does not call STS on every batch.

    Raises:
        S3UriError: ``read_prefix`` is not a usable prefix (at once, not per call).
        ValidationError: ``kms_key_arn`` is not one KMS key ARN (at once, too).
        StorageError: from the returned factory, when STS refuses credentials for the role.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if read_prefix is not None:  # a bad prefix or key fails at cold start, not per batch
        read_prefix_policy(read_prefix)
    if kms_key_arn is not None:
        kms_decrypt_statement(kms_key_arn)
    cache: dict[str, tuple[float, S3Store]] = {}

    def factory(role_arn: str) -> S3Store:
        hit = cache.get(role_arn)
        if hit is not None and hit[0] - time.time() > _RENEW_SECONDS:
            return hit[1]
        try:
            if read_prefix is None:
                response = sts_client.assume_role(RoleArn=role_arn, RoleSessionName=session_name)
            else:
                partition = role_arn.split(":")[1] if role_arn.count(":") >= 5 else "aws"
                policy = read_prefix_policy(
                    read_prefix, partition=partition, kms_key_arn=kms_key_arn
                )
                response = sts_client.assume_role(
                    RoleArn=role_arn, RoleSessionName=session_name, Policy=json.dumps(policy)
                )
            creds = response["Credentials"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot assume role {role_arn}: {exc}") from exc
        session = boto3.session.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region_name,
        )
        store = S3Store(make_s3_client(session=session, endpoint_url=endpoint_url))
        cache[role_arn] = (creds["Expiration"].timestamp(), store)
        return store

    return factory
