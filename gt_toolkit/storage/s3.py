"""The one place that talks to S3.

Everything else takes an :class:`S3Store`, which wraps an injected boto3 client. Tests point
that client at moto's server on 127.0.0.1; users get a client that honours ``AWS_ENDPOINT_URL``,
their profile and botocore's *standard* retry mode.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from gt_toolkit.errors import NoMatchingObjectsError, S3UriError, StorageError, ValidationError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_s3 import S3Client

__all__ = [
    "DEFAULT_IMAGE_EXTENSIONS",
    "S3Object",
    "S3Store",
    "ServerSideEncryption",
    "bucket_name_problem",
    "is_s3_uri",
    "make_s3_client",
    "parse_s3_uri",
    "prefix_problem",
]

DEFAULT_IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")
ServerSideEncryption = Literal["AES256", "aws:kms"]
"""S3's ``ServerSideEncryption``: SSE-S3 (``AES256``) or SSE-KMS (``aws:kms``)."""
_CHUNK = 1 << 20
# General-purpose bucket naming rules: 3-63 characters of lowercase letters, digits, dots and
# hyphens, a letter or digit at both ends, no ".." and no dot beside a hyphen (not
# DNS-compatible), not an IPv4 address, and none of the prefixes and suffixes S3 reserves
# for its own names (punycode, access-point aliases, Object Lambda, Multi-Region and
# directory buckets, S3 Tables).
_BUCKET_CHARS = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_BUCKET_BAD_PAIRS = ("..", ".-", "-.")
_IPV4_FORM = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# How often a cut-off object body is resumed (with a ranged GET) before the read fails.
_BODY_ATTEMPTS = 5
# The largest object one CopyObject request copies; a larger one is copied in parts.
_COPY_LIMIT = 5 * 1024**3

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _AwsErrors:
    """boto3's and botocore's exception classes the store catches."""

    call: tuple[type[Exception], ...]  # a refused or failed request (ClientError, BotoCoreError)
    client: type[Exception]  # ClientError: a response with an error code
    transfer: tuple[type[Exception], ...]  # the transfer manager's wrappers of the above
    body: tuple[type[Exception], ...]  # a response body cut off in the middle


@functools.cache
def _aws() -> _AwsErrors:
    """The exception classes, imported on first use.

    boto3 costs about 0.2 s to import; a command that never reaches S3 (``--help``, local
    files only) should not pay it, and by the time one of these can be raised a client exists.
    """
    from boto3.exceptions import S3TransferFailedError, S3UploadFailedError
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    return _AwsErrors(
        call=(ClientError, BotoCoreError),
        client=ClientError,
        transfer=(S3UploadFailedError, S3TransferFailedError),
        body=(IncompleteReadError, ResponseStreamingError, ReadTimeoutError),
    )


T = TypeVar("T")


def is_s3_uri(value: object) -> bool:
    """True for a string starting with ``s3://`` (whether or not it is well formed)."""
    return isinstance(value, str) and value.startswith("s3://")


def bucket_name_problem(name: str) -> str | None:
    """What breaks S3's bucket naming rules in ``name``, or ``None`` for a valid name."""
    if not _BUCKET_CHARS.fullmatch(name):
        return (
            "3 to 63 lowercase letters, digits, dots or hyphens, "
            "starting and ending with a letter or digit"
        )
    pair = next((p for p in _BUCKET_BAD_PAIRS if p in name), None)
    if pair is not None:
        return f"{pair!r} inside the name"
    if _IPV4_FORM.fullmatch(name):
        return "formatted as an IP address"
    start = next((p for p in _BUCKET_RESERVED_PREFIXES if name.startswith(p)), None)
    if start is not None:
        return f"the prefix {start!r} is reserved"
    end = next((s for s in _BUCKET_RESERVED_SUFFIXES if name.endswith(s)), None)
    if end is not None:
        return f"the suffix {end!r} is reserved"
    return None


def parse_s3_uri(uri: str, *, require_key: bool = True) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``.

    Raises:
        S3UriError: not an ``s3://`` URI, a bucket name that breaks S3's naming rules
            (:func:`bucket_name_problem`), or (with ``require_key``) no key after the bucket.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise S3UriError(f"expected an s3://bucket/key URI, got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    problem = bucket_name_problem(bucket)
    if problem is not None:
        raise S3UriError(f"bad bucket name {bucket!r} in {uri!r}: {problem}")
    if require_key and not key:
        raise S3UriError(f"no object key after the bucket in {uri!r}")
    return bucket, key


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot turn file names into source-refs (``None``: it can).

    It must be ``s3://bucket/`` or ``s3://bucket/folder/`` with a valid bucket name: joined
    to ``s3://b/``, every image's source-ref was one the manifest readers reject.
    """
    if not prefix.startswith("s3://"):
        return f"must be an s3://bucket/folder/ prefix, got {prefix!r}"
    try:
        parse_s3_uri(prefix, require_key=False)
    except S3UriError as exc:
        return str(exc)
    return None


def make_s3_client(
    *,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
    region_name: str | None = None,
    max_pool_connections: int = 32,
) -> S3Client:
    """Build an S3 client with standard retries and a pool big enough for our thread pools.

    ``endpoint_url=None`` lets boto3 use ``AWS_ENDPOINT_URL`` when it is set.

    Raises:
        StorageError: boto3 refused the settings (an endpoint that is not a URL, a malformed
            region, an unknown ``AWS_PROFILE``), from flags or from the environment alike.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max_pool_connections,
    )
    refused: tuple[type[Exception], ...] = (ValueError, *_aws().call)
    try:
        session = session or boto3.session.Session()
        return session.client(
            "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
        )
    except refused as exc:  # botocore's own errors, and a bare ValueError for a bad URL
        raise StorageError(f"cannot make an S3 client: {exc}") from exc


@dataclass(frozen=True, slots=True)
class S3Object:
    """One listed object."""

    bucket: str
    key: str
    size: int
    modified: datetime | None = None  # S3's LastModified, by S3's clock

    @property
    def uri(self) -> str:
        """The ``s3://bucket/key`` URI."""
        return f"s3://{self.bucket}/{self.key}"


def _translate(exc: Exception, what: str) -> StorageError:
    """Turn a botocore error into one clear :class:`StorageError` line."""
    if isinstance(exc, _aws().client):
        err = getattr(exc, "response", {}).get("Error", {})
        code = str(err.get("Code", ""))
        if code in ("NoSuchBucket",):
            return StorageError(f"{what}: the bucket does not exist")
        if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId"):
            return StorageError(f"{what}: access denied ({code})")
        if code in ("NoSuchKey", "404", "NotFound"):
            return StorageError(f"{what}: no such object")
        if code in ("PreconditionFailed", "412"):
            return StorageError(f"{what}: the object changed while it was read")
        return StorageError(f"{what}: {code or 'error'}: {err.get('Message', exc)}")
    return StorageError(f"{what}: {exc}")


class S3Store:
    """S3 operations the toolkit needs, over one injected boto3 client.

    Args:
        client: a boto3 S3 client; ``None`` builds one with :func:`make_s3_client`.
    """

    def __init__(self, client: S3Client | None = None) -> None:
        self._client = client

    @property
    def client(self) -> S3Client:
        """The boto3 client, created on first use so offline work never needs credentials."""
        if self._client is None:
            self._client = make_s3_client()
        return self._client

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        aws = _aws()
        try:
            return fn()
        except aws.call as exc:
            raise _translate(exc, what) from exc
        except aws.transfer as exc:
            # boto3's transfer manager wraps the ClientError in its own exception.
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, aws.call):
                raise _translate(cause, what) from exc
            detail = str(exc)
            if "NoSuchBucket" in detail:
                raise StorageError(f"{what}: the bucket does not exist") from exc
            raise StorageError(f"{what}: {detail}") from exc

    # -- listing -------------------------------------------------------------------------
    def iter_objects(
        self,
        uri: str,
        *,
        extensions: Iterable[str] | None = DEFAULT_IMAGE_EXTENSIONS,
        exclude: Iterable[str] = (),
        page_size: int | None = None,
    ) -> Iterator[S3Object]:
        """Stream every object under a prefix, recursively, in key order, page by page.

        Args:
            uri: ``s3://bucket/prefix/`` (a prefix of ``""`` lists the whole bucket). A
                prefix is a folder: ``s3://bucket/raw`` lists ``raw/...``, not ``raw-old/``.
            extensions: suffixes to keep, case-insensitive; ``None`` keeps everything.
            exclude: glob patterns matched against the key relative to the prefix and against
                the full key; a match drops the object.
            page_size: keys per ``list_objects_v2`` page (S3's default is 1,000).

        Raises:
            StorageError: missing bucket or access denied.
            NoMatchingObjectsError: nothing under the prefix matches.
        """
        bucket, prefix = parse_s3_uri(uri, require_key=False)
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        exts = tuple(e.lower() for e in extensions) if extensions is not None else None
        patterns = tuple(exclude)
        paginator = self.client.get_paginator("list_objects_v2")
        pages = (
            paginator.paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
            )
            if page_size
            else paginator.paginate(Bucket=bucket, Prefix=prefix)
        )
        found = 0
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue
                    if exts is not None and not key.lower().endswith(exts):
                        continue
                    rel = key[len(prefix) :].lstrip("/")
                    if any(
                        fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(key, p) for p in patterns
                    ):
                        continue
                    found += 1
                    yield S3Object(bucket, key, int(obj.get("Size", 0)), obj.get("LastModified"))
        except _aws().call as exc:
            raise _translate(exc, f"listing {uri}") from exc
        if not found:
            raise NoMatchingObjectsError(
                f"no object under {uri} matches extensions {list(exts or ['*'])}"
                + (f" minus exclusions {list(patterns)}" if patterns else "")
            )

    def iter_in_folder(self, uri: str) -> Iterator[str]:
        """The objects whose keys start as ``uri``'s does, in its folder only (not recursive).

        ``s3://b/ds/.`` lists the hidden objects directly in ``ds/``, without listing what
        its folders hold (``Delimiter="/"``).
        """
        for bucket, page in self._folder_pages(uri):
            for obj in page.get("Contents", []):
                yield f"s3://{bucket}/{obj['Key']}"

    def iter_folders_in_folder(self, uri: str) -> Iterator[str]:
        """The folders whose names start as ``uri``'s does, in its folder only, ending in ``/``.

        ``s3://b/ds/.`` lists the hidden folders directly in ``ds/`` (S3's common prefixes).
        """
        for bucket, page in self._folder_pages(uri):
            for folder in page.get("CommonPrefixes", []):
                yield f"s3://{bucket}/{folder['Prefix']}"

    def _folder_pages(self, uri: str) -> Iterator[tuple[str, Any]]:
        """The bucket and each ``list_objects_v2`` page of ``uri``'s prefix, one level deep."""
        bucket, prefix = parse_s3_uri(uri, require_key=False)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                yield bucket, page
        except _aws().call as exc:
            raise _translate(exc, f"listing {uri}") from exc

    # -- reading -------------------------------------------------------------------------
    def iter_chunks(self, uri: str, chunk_size: int = _CHUNK) -> Iterator[bytes]:
        """Stream an object's bytes in chunks (constant memory).

        botocore retries throttling, 5xx answers and broken connections before a response
        starts, but not a body cut off in the middle. Such a body is resumed here with a
        ranged GET from the first missing byte, pinned to the first response's ETag so a
        changed object is never stitched together, up to ``_BODY_ATTEMPTS`` times in all.

        Raises:
            StorageError: the object cannot be read, changed while it was read, or its body
                was still cut off after the retries.
        """
        bucket, key = parse_s3_uri(uri)
        offset = 0
        etag: str | None = None
        for attempt in range(1, _BODY_ATTEMPTS + 1):
            request: dict[str, Any] = {"Bucket": bucket, "Key": key}
            if etag:
                request.update(Range=f"bytes={offset}-", IfMatch=etag)
            resp = self._call(
                f"reading {uri}", functools.partial(self.client.get_object, **request)
            )
            etag = etag or resp.get("ETag")
            body = resp["Body"]
            try:
                while chunk := body.read(chunk_size):
                    offset += len(chunk)
                    yield chunk
                return
            except _aws().body as exc:
                if attempt == _BODY_ATTEMPTS or etag is None:
                    raise StorageError(
                        f"reading {uri}: the body was cut off after {offset} bytes "
                        f"{attempt} time(s): {exc}"
                    ) from exc
            except _aws().call as exc:
                raise _translate(exc, f"reading {uri}") from exc
            finally:
                body.close()
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))

    def get_bytes(self, uri: str) -> bytes:
        """Read a whole (small) object."""
        return b"".join(self.iter_chunks(uri))

    def exists(self, uri: str) -> bool:
        """True when the object exists and is readable."""
        bucket, key = parse_s3_uri(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except _aws().call as exc:  # also no credentials, endpoint unreachable, ...
            error = getattr(exc, "response", {}).get("Error", {})
            if str(error.get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _translate(exc, f"checking {uri}") from exc
        return True

    def presign(self, uri: str, *, expires_in: int = 3600) -> str:
        """A presigned GET URL, as Ground Truth's ``grant_read_access`` makes for workers."""
        bucket, key = parse_s3_uri(uri)
        return self._call(
            f"presigning {uri}",
            lambda: self.client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            ),
        )

    def download_file(self, uri: str, path: str | Path) -> None:
        """Download an object to a local path (parent folders are created)."""
        bucket, key = parse_s3_uri(uri)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._call(f"downloading {uri}", lambda: self.client.download_file(bucket, key, str(path)))

    # -- writing -------------------------------------------------------------------------
    def put_bytes(
        self,
        uri: str,
        data: bytes,
        *,
        content_type: str | None = None,
        sse: ServerSideEncryption | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        """Write a whole object in one request.

        Args:
            sse: the server-side encryption to ask for; a bucket whose policy requires it
                refuses a put that does not.
            kms_key_id: the SSE-KMS key (id, alias or ARN); implies ``sse="aws:kms"``.

        Raises:
            ValidationError: a KMS key with ``sse="AES256"``, which S3 would refuse.
        """
        bucket, key = parse_s3_uri(uri)
        if kms_key_id is not None and sse == "AES256":
            raise ValidationError(
                [f"kms_key_id {kms_key_id!r} asks for SSE-KMS, but sse is 'AES256'"],
                what=f"write to {uri}",
            )
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        if kms_key_id is not None:
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key_id)
        elif sse is not None:
            extra["ServerSideEncryption"] = sse
        self._call(
            f"writing {uri}",
            lambda: self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra),
        )

    def check_writable(self, uri: str) -> None:
        """Refuse, before a run, an object it could only fail to write once its output moved.

        The write's own permission is asked of the very key: a multipart upload is started
        there and aborted. Starting one needs what a put needs (``s3:PutObject`` on the key,
        the bucket, its KMS key) and makes no object: no version, no event, nothing to list.
        ``HeadBucket`` would ask for ``s3:ListBucket``, which a writer need not have and which
        says nothing of the key; a probe object would fire the bucket's notifications and
        stay behind where deleting is not allowed. An upload that cannot be aborted holds
        no parts (it costs nothing) and is only said.

        Raises:
            StorageError: the bucket does not exist, or the key may not be written.
        """
        bucket, key = parse_s3_uri(uri)
        started = self._call(
            f"cannot write {uri}",
            lambda: self.client.create_multipart_upload(Bucket=bucket, Key=key),
        )
        try:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=started["UploadId"])
        except _aws().call as exc:
            logger.warning(
                "warning: %s",
                _translate(exc, f"cannot abort the empty upload that checked {uri}"),
            )

    def upload_file(self, path: str | Path, uri: str) -> None:
        """Upload a local file (multipart for large files, handled by boto3's transfer)."""
        bucket, key = parse_s3_uri(uri)
        self._call(f"uploading to {uri}", lambda: self.client.upload_file(str(path), bucket, key))

    def copy(self, src: str, dst: str, *, size: int | None = None) -> None:
        """Copy an object inside S3: no byte passes through this machine.

        One ``CopyObject`` request copies up to 5 GiB, S3's limit; a larger object (its
        ``size`` known from a listing) goes through boto3's managed copy, in parts. The copy
        keeps the object's content type and metadata and gets the bucket's default encryption.
        """
        src_bucket, src_key = parse_s3_uri(src)
        bucket, key = parse_s3_uri(dst)
        source: Any = {"Bucket": src_bucket, "Key": src_key}
        what = f"copying {src} to {dst}"
        if size is not None and size > _COPY_LIMIT:
            self._call(what, lambda: self.client.copy(source, bucket, key))
        else:
            self._call(
                what, lambda: self.client.copy_object(CopySource=source, Bucket=bucket, Key=key)
            )

    def delete_objects(self, uris: Iterable[str]) -> None:
        """Delete objects (1,000 keys per request, S3's limit); missing keys are no error.

        Raises:
            StorageError: a request failed, or S3 refused some keys (the first few named).
        """
        by_bucket: dict[str, list[str]] = {}
        for uri in uris:
            bucket, key = parse_s3_uri(uri)
            by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), 1000):
                self._delete_batch(bucket, keys[start : start + 1000])

    def _delete_batch(self, bucket: str, keys: list[str]) -> None:
        objects: list[Any] = [{"Key": k} for k in keys]
        resp = self._call(
            f"deleting from s3://{bucket}/",
            lambda: self.client.delete_objects(
                Bucket=bucket, Delete={"Objects": objects, "Quiet": True}
            ),
        )
        errors = resp.get("Errors") or []
        if errors:
            shown = ", ".join(f"{e.get('Key')}: {e.get('Code')}" for e in errors[:3])
            raise StorageError(f"S3 refused {len(errors)} deletes in {bucket}: {shown}")
