"""Shared fixtures: a real local S3 (moto's server on 127.0.0.1), buckets, event files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from gt_toolkit.storage.s3 import S3Store, make_s3_client
from tests.helpers import REGION, SAMPLES
from tests.storage.fault_proxy import FaultProxy


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start moto's server on 127.0.0.1 on a free port; yield its URL (one per xdist worker)."""
    from moto.server import ThreadedMotoServer

    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
    )
    os.environ.pop("AWS_PROFILE", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str) -> Callable[[str], Any]:
    """A factory of boto3 clients bound to moto's server: ``aws("s3")``, ``aws("sagemaker")``."""

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=moto_endpoint, region_name=REGION)

    return client


@pytest.fixture
def s3_client(moto_endpoint: str) -> Any:
    """An S3 client on moto's server, built the way the toolkit builds its own."""
    return make_s3_client(endpoint_url=moto_endpoint, region_name=REGION)


@pytest.fixture
def store(s3_client: Any) -> S3Store:
    """An :class:`S3Store` over the moto S3 client."""
    return S3Store(s3_client)


@pytest.fixture
def bucket(s3_client: Any) -> str:
    """A fresh, empty bucket with a unique name (tests never share state)."""
    name = f"gt-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A proxy in front of moto that injects S3 faults (none until planned or shared)."""
    with FaultProxy(moto_endpoint) as proxy:
        yield proxy


@pytest.fixture
def jumpstart(s3_client: Any, store: S3Store) -> S3Store:
    """The region's JumpStart bucket on moto: ``models_manifest.json`` and each hand-written
    spec (``samples/jumpstart/``, the published shape) under its ``spec_key``."""
    import json

    from gt_toolkit.sagemaker.jumpstart import MANIFEST_KEY, jumpstart_bucket

    specs = SAMPLES / "jumpstart"
    name = jumpstart_bucket(REGION)
    if name not in {b["Name"] for b in s3_client.list_buckets()["Buckets"]}:
        s3_client.create_bucket(Bucket=name)
    store.put_bytes(f"s3://{name}/{MANIFEST_KEY}", (specs / MANIFEST_KEY).read_bytes())
    for entry in json.loads((specs / MANIFEST_KEY).read_text()):
        body = (specs / f"{entry['model_id']}.json").read_bytes()
        store.put_bytes(f"s3://{name}/{entry['spec_key']}", body)
    return store


@pytest.fixture
def keys_denied(aws: Callable[[str], Any]) -> Callable[..., dict[str, str]]:
    """Access keys of a new IAM user on moto, allowed all of S3 but the ARNs it is given.

    Use them inside ``moto.core.authorization.enable_iam_authentication()`` (moto checks IAM
    only then, in this process, where its server runs), as ``AWS_ACCESS_KEY_ID`` and
    ``AWS_SECRET_ACCESS_KEY``. The denial is of ``s3:*`` on those keys: moto names the
    action of a request after its operation (``s3:CreateMultipartUpload``) where AWS asks
    for ``s3:PutObject``, so a denial of writes alone would differ between the two.
    """
    import json

    def make(*denied: str) -> dict[str, str]:
        iam = aws("iam")
        name = f"writer-{uuid.uuid4().hex[:12]}"
        iam.create_user(UserName=name)
        statements = [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]
        statements.append({"Effect": "Deny", "Action": "s3:*", "Resource": list(denied)})
        policy = {"Version": "2012-10-17", "Statement": statements}
        iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }

    return make
