"""The built zip, unpacked into an empty folder, served by the real Lambda runtime emulator.

Proof that the artifact is self-contained and speaks the Runtime API: the emulator
(``.cache/rie/aws-lambda-rie``, from ``scripts/install-system-deps.sh``) runs ``python -S -m
awslambdaric <handler>`` with only the unpacked zip and a folder holding boto3 + awslambdaric
importable (no site-packages), and boto3's Lambda client invokes it, with S3 on moto's server.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config

from gt_toolkit.handlers.lambda_response import runtime_size
from gt_toolkit.sagemaker.lambda_zip import HANDLERS, build_lambda_zip
from gt_toolkit.storage.s3 import S3Store
from tests.helpers import DATA, REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("lambda_runtime")]

RIE = REPO / ".cache" / "rie" / "aws-lambda-rie"
PYVER = f"{sys.version_info.major}.{sys.version_info.minor}"
MACHINE = {"x86_64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}[platform.machine()]
# What the AWS runtime provides besides the zip: boto3 (and its deps) and the runtime client.
RUNTIME_DISTS = ("boto3", "awslambdaric")


def copy_distributions(roots: tuple[str, ...], target: Path) -> None:
    """Copy installed distributions and their (non-extra) requirements into ``target``."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        dist = md.distribution(name)
        for file in dist.files or ():
            src = Path(str(dist.locate_file(file)))
            if "__pycache__" in file.parts or ".." in file.parts or not src.is_file():
                continue
            dest = target / file
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        for req in dist.requires or ():
            if "extra ==" not in req:
                match = re.match(r"[A-Za-z0-9._-]+", req)
                assert match is not None
                todo.append(match.group(0))


@pytest.fixture(scope="module")
def runtime_dir() -> Path:
    """boto3 + awslambdaric copied from this venv (offline), cached under .cache/."""
    versions = "-".join(md.version(d) for d in RUNTIME_DISTS)
    target = REPO / ".cache" / "lambda-runtime" / f"py{PYVER}-{versions}"
    if not (target / ".complete").is_file():
        shutil.rmtree(target, ignore_errors=True)
        copy_distributions(RUNTIME_DISTS, target)
        (target / ".complete").write_text("ok\n")
    return target


@pytest.fixture(scope="module")
def task_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zip built for this machine's Python and CPU, unpacked into an empty folder."""
    build = tmp_path_factory.mktemp("build")
    built = build_lambda_zip(
        build / "fn.zip",
        arch="x86_64" if MACHINE == "x86_64" else "arm64",
        python=PYVER,
        cache_dir=REPO / ".cache" / "lambda",
        platforms=[f"manylinux_2_28_{MACHINE}", f"manylinux2014_{MACHINE}"],
    )
    root = tmp_path_factory.mktemp("task")
    assert not any(root.iterdir())
    with zipfile.ZipFile(built.path) as zf:
        zf.extractall(root)
    assert (root / "lambdas" / "post_annotation.py").is_file()
    assert (root / "numpy").is_dir()
    assert not (root / "PIL").exists() and not (root / "boto3").exists()
    return root


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated_env(
    task_root: Path, runtime_dir: Path, moto_endpoint: str, extra: dict[str, str]
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LAMBDA_TASK_ROOT": str(task_root),
        "PYTHONPATH": f"{task_root}:{runtime_dir}",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "60",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        **extra,
    }


@pytest.fixture(scope="module")
def serve(
    task_root: Path, runtime_dir: Path, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str, dict[str, str]], Any]]:
    """Start one emulator per handler on free 127.0.0.1 ports; yield a Lambda client factory."""
    if not RIE.is_file():
        pytest.fail(f"{RIE} is missing: run `bash scripts/install-system-deps.sh` (make test does)")
    procs: list[subprocess.Popen[bytes]] = []
    logs = tmp_path_factory.mktemp("rie-logs")

    def start(handler: str, env_extra: dict[str, str]) -> Any:
        port, api_port = free_port(), free_port()
        log = (logs / f"{handler}.log").open("wb")
        proc = subprocess.Popen(
            [
                str(RIE),
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{port}",
                "--runtime-api-address",
                f"127.0.0.1:{api_port}",
                sys.executable,
                "-S",
                "-m",
                "awslambdaric",
                handler,
            ],
            cwd=task_root,
            env=isolated_env(task_root, runtime_dir, moto_endpoint, env_extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"emulator did not start: {(logs / f'{handler}.log').read_text()}")
                time.sleep(0.05)
        return boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 0}, read_timeout=90),
        )

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def invoke(client: Any, event: Any) -> Any:
    response = client.invoke(FunctionName="function", Payload=json.dumps(event).encode())
    assert response["StatusCode"] == 200
    return json.loads(response["Payload"].read())


def test_this_module_runs_on_one_worker(request: pytest.FixtureRequest) -> None:
    # the module fixtures build shared folders under .cache/: two workers racing on them
    # made the runtime lose boto3 mid-test (pytest 9.2 broke the grouping, pytest-xdist#1386)
    grouped = getattr(request.config.option, "loadgroup", False)  # make test: --dist loadgroup
    assert not grouped or request.node.nodeid.endswith("@lambda_runtime")


def test_only_the_zip_and_the_runtime_are_importable(
    task_root: Path, runtime_dir: Path, moto_endpoint: str
) -> None:
    env = isolated_env(task_root, runtime_dir, moto_endpoint, {})
    names = ("PIL", "jinja2", "liquid", "shapely", "pytest", "numpy", "boto3")
    probe = (
        "import json, sys, importlib.util as u;"
        f"print(json.dumps([sys.path, [m for m in {names!r} if u.find_spec(m)]]))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    path, found = json.loads(out.stdout)
    assert found == ["numpy", "boto3"]
    assert not [p for p in path if "site-packages" in p]


def test_pre_annotation_handler_in_the_emulator(
    serve: Callable[[str, dict[str, str]], Any],
) -> None:
    client = serve(
        HANDLERS["pre"], {"GT_LABELS": '["car", "bike"]', "GT_HEADER": "Box every vehicle"}
    )
    event = json.loads((DATA / "events" / "pre_chained.json").read_text())
    out = invoke(client, event)
    assert out["isHumanAnnotationRequired"] is True
    assert out["taskInput"]["taskObject"] == event["dataObject"]["source-ref"]
    assert out["taskInput"]["labels"] == ["car", "bike"]
    assert [b["label"] for b in out["taskInput"]["initialValue"]] == ["car", "bike"]


def test_pre_annotation_answers_a_line_the_runtime_reads_oddly_in_the_emulator(
    serve: Callable[[str, dict[str, str]], Any],
) -> None:
    # the runtime reads 1e400 as infinity, and "\\ud800" as a lone surrogate;
    # sent back, its encoder wrote Infinity (no JSON reader takes it) or, as the deployed 3.12
    # runtime, failed to encode the surrogate as UTF-8: the object failed
    env = {"GT_LABELS": "car", "GT_PASS_THROUGH_KEYS": "site,meta"}
    # the template's runtime: its encoder keeps text unescaped (AWS_EXECUTION_ENV tells it)
    client = serve(HANDLERS["pre"], {**env, "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"})
    line = (
        '{"source-ref": "s3://b/\\ud800.jpg", "site": 1e400, '
        '"meta": {"score": -1e400, "name": "x\\udc00y"}}'
    )
    payload = b'{"version": "2018-10-16", "dataObject": ' + line.encode() + b"}"
    response = client.invoke(FunctionName="function", Payload=payload)
    body = response["Payload"].read()
    assert "FunctionError" not in response, body
    out = orjson.loads(body)  # strict JSON: NaN and Infinity are refused
    assert out["taskInput"]["taskObject"] == "s3://b/?.jpg"
    assert out["taskInput"]["metadata"] == {"site": None, "meta": {"score": None, "name": "x?y"}}
    assert out["isHumanAnnotationRequired"] is True


def test_post_annotation_handler_in_the_emulator(
    serve: Callable[[str, dict[str, str]], Any], store: S3Store, bucket: str
) -> None:
    client = serve(HANDLERS["post"], {"GT_IOU_THRESHOLD": "0.5"})
    events = DATA / "events"
    event = json.loads((events / "post_event.json").read_text().replace("{bucket}", bucket))
    payload = json.loads((events / "post_payload_5_workers.json").read_text()) + json.loads(
        (events / "post_payload_broken.json").read_text()
    )
    # an answer kept in S3 as a worker-response file, content null beside its s3Uri: read
    # through a module the handler imports only then, so the zip must hold it
    answer = json.loads((events / "post_answer_s3uri_w0.json").read_text())
    stored = f"s3://{bucket}/answers/13/response.json"
    response = {"answers": [{"workerId": "w0", "answerContent": answer}]}
    store.put_bytes(stored, json.dumps(response).encode())
    annotation = {"workerId": "w0", "annotationData": {"content": None, "s3Uri": stored}}
    payload.append({"datasetObjectId": "13", "annotations": [annotation]})
    store.put_bytes(event["payload"]["s3Uri"], json.dumps(payload).encode())
    raw = client.invoke(FunctionName="function", Payload=json.dumps(event).encode())
    body = raw["Payload"].read()
    out = json.loads(body)
    assert len(body) <= runtime_size(out)  # the budget counts at least what is sent
    assert [r["datasetObjectId"] for r in out] == ["0", "1", "2", "10", "11", "12", "13"]
    last = out[6]["consolidatedAnnotation"]["content"]
    assert last["boxes"]["annotations"][0]["left"] == 14
    assert "failure-reason" not in last["boxes-metadata"]
    first = out[0]["consolidatedAnnotation"]["content"]
    assert len(first["boxes"]["annotations"]) == 2
    assert first["boxes-metadata"]["class-map"] == {"0": "car", "1": "bike"}
    assert "failure-reason" in out[4]["consolidatedAnnotation"]["content"]["boxes-metadata"]
    # a call that cannot be answered fails loudly (Ground Truth retries it)
    error = invoke(client, {**event, "payload": {}})
    assert error["errorType"] == "ValidationError"
    assert "payload.s3Uri" in error["errorMessage"]


def crowded_answer(rng: random.Random, spots: list[tuple[float, float]]) -> dict[str, Any]:
    """One worker boxing a dense crowd: every spot, a few pixels off."""
    boxes = [
        {"label": "car", "left": round(x + rng.gauss(0, 3)), "top": round(y + rng.gauss(0, 3))}
        | {"width": 40, "height": 40}
        for x, y in spots
    ]
    answer = {"boundingBoxes": boxes, "inputImageProperties": {"width": 640, "height": 480}}
    return {"boundingBox": answer}


def test_post_annotation_answers_every_object_before_the_emulator_times_out(
    serve: Callable[[str, dict[str, str]], Any], store: S3Store, bucket: str
) -> None:
    # 60 dense objects (12 MB) take several times the 3 s timeout to consolidate: without the
    # deadline guard the emulator ends the call and no object is answered
    client = serve(HANDLERS["post"], {"AWS_LAMBDA_FUNCTION_TIMEOUT": "3"})
    rng = random.Random(7)
    payload = []
    for i in range(60):
        spots = [(rng.uniform(0, 200), rng.uniform(0, 200)) for _ in range(500)]
        annotations = [
            {
                "workerId": f"w{k}",
                "annotationData": {"content": json.dumps(crowded_answer(rng, spots))},
            }
            for k in range(5)
        ]
        payload.append({"datasetObjectId": str(i), "annotations": annotations})
    event = json.loads(
        (DATA / "events" / "post_event.json").read_text().replace("{bucket}", bucket)
    )
    # a first call starts the runtime, so a slow cold start under load does not eat the 3 s
    store.put_bytes(event["payload"]["s3Uri"], json.dumps(payload[:1]).encode())
    assert [r["datasetObjectId"] for r in invoke(client, event)] == ["0"]
    store.put_bytes(event["payload"]["s3Uri"], json.dumps(payload).encode())
    raw = client.invoke(FunctionName="function", Payload=json.dumps(event).encode())
    body = raw["Payload"].read()
    assert "FunctionError" not in raw, body[:500]
    out = json.loads(body)
    assert [r["datasetObjectId"] for r in out] == [str(i) for i in range(60)]
    metadata = [r["consolidatedAnnotation"]["content"]["boxes-metadata"] for r in out]
    reasons = [m.get("failure-reason") for m in metadata]
    consolidated = reasons.count(None)
    assert 1 <= consolidated < 60, reasons[0]
    assert reasons[:consolidated] == [None] * consolidated
    assert all(r.startswith("deadline: ") for r in reasons[consolidated:])
