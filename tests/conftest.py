"""Shared fixtures: a real local S3 (moto's server on 127.0.0.1), buckets, event files."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from gt_toolkit.storage.s3 import S3Store, make_s3_client

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SAMPLES = REPO / "samples"
REGION = "us-east-1"


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


def reset_moto(endpoint: str) -> None:
    """Drop every resource on the moto server (rarely needed: buckets are unique per test)."""
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset", method="POST"))


def load_event(name: str) -> Any:
    """Load a JSON event fixture from ``tests/data/events``."""
    return json.loads((DATA / "events" / name).read_text())


def seed_objects(bucket: str, keys: list[str], body: bytes = b"x") -> None:
    """Put many objects straight into the in-process moto server's backend.

    PUTs over HTTP cost ~6 ms each; thousands of them would dominate the suite. The server
    under test runs in this process, so its state can be seeded directly; every read the
    toolkit makes still goes over HTTP to 127.0.0.1.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for key in keys:
        backend.put_object(bucket, key, body)


class FakeTime:
    """An injectable clock and sleep: wait loops are tested without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now
