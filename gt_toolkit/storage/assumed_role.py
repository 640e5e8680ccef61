"""Act as another AWS role: the I/O edge the post-annotation Lambda uses for ``roleArn``.

Ground Truth passes the labeling job's role in each post-annotation event; when the
Lambda's own role cannot read the worker answers, it reads them as that role. STS and
boto3 sessions live here so :mod:`gt_toolkit.handlers.post_annotation` stays pure logic over an
:class:`~gt_toolkit.storage.s3.S3Store` it is handed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gt_toolkit.errors import StorageError
from gt_toolkit.storage.s3 import S3Store, make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

__all__ = ["assumed_role_store_factory"]

# Renew cached credentials this long before they expire, so no batch starts on a key that
# dies mid-read.
_RENEW_SECONDS = 300


def assumed_role_store_factory(
    sts_client: STSClient,
    *,
    session_name: str = "gt-toolkit-post-annotation",
    endpoint_url: str | None = None,
    region_name: str | None = None,
) -> Callable[[str], S3Store]:
    """A store factory (role ARN -> :class:`S3Store`) that assumes the role with STS.

    Credentials are cached per role and reused until 5 minutes before they expire, so a
    warm Lambda does not call STS on every batch.

    Raises (from the returned factory):
        StorageError: STS refused to hand out credentials for the role.
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    cache: dict[str, tuple[float, S3Store]] = {}

    def factory(role_arn: str) -> S3Store:
        hit = cache.get(role_arn)
        if hit is not None and hit[0] - time.time() > _RENEW_SECONDS:
            return hit[1]
        try:
            creds = sts_client.assume_role(RoleArn=role_arn, RoleSessionName=session_name)[
                "Credentials"
            ]
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
